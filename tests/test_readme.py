"""Every command the README shows, run exactly as written, in order, as a new user would.

The project is copied (the files git knows) into a scratch folder whose `config.yaml` is a
small study (three experiments, two tasks, a few hundred images per class), so that commands
that take minutes on the real study take seconds. The README's first command creates its own
virtual environment and installs clexp into it; every later command runs with that
environment active, as in the user's shell. `$HOME/datasets` (the README's example data
folder) holds the test data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, SHARED_DATA, require_data, tiny_config

pytestmark = pytest.mark.slow

FENCED = re.compile(r"```bash\n(.*?)```", re.S)
INLINE = re.compile(r"`((?:snakemake|python3?|pip|ruff|export) [^`]*)`")
COMMENT = re.compile(r"(^|\s+)#.*$")

# Commands shown but not run here, each with the reason. The test fails when this list and
# the README disagree, so a new command is never silently left out.
NOT_RUN = {
    "python -m pytest": "the test suite itself; .ci/run runs it, read from the README",
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu":
        "needs PyTorch's wheel index on the internet",
    "snakemake --workflow-profile profiles/slurm results/report.html":
        "needs a SLURM cluster; tests/test_slurm.py runs this profile on a one-node cluster",
}
# Installing the SLURM plugin makes every later Snakemake start probe for SLURM: run it last.
RUN_LAST = ['pip install -e ".[slurm]"']
# Where the data was found is not part of the results: these commands rerun no data
# preparation and no training (the job table lists every rule that runs).
DATA_COMMANDS = [
    "snakemake --cores 4 results/report.html --config data_root=$HOME/datasets download=false",
    "export CLEXP_DATA_ROOT=$HOME/datasets && snakemake --cores 4 results/report.html",
]


# The literature profile's study (24 experiments, three seeds, 2,000 steps per task: about an
# hour and a half) shrunk as config.yaml is: two of its experiments, one seed, two tasks of
# five steps, on the tiny config's data subset. Its command runs as written.
LITERATURE_PROFILE = "profiles/vdv2019/vdv2019.yaml"
LITERATURE_RUN = "runs/vdv2019/results"


def shrink_literature_profile(project) -> None:
    """Rewrite the project copy's literature profile settings to a few seconds of training
    (its anchors written out: every experiment keeps its own settings)."""
    path = project / LITERATURE_PROFILE
    settings = yaml.safe_load(path.read_text())
    settings.update(selected_experiments=["vdv_class_lwf", "vdv_task_joint"], seeds=[0])
    for entry in settings["experiments"].values():
        entry.update(iterations=5, tasks=[[0, 1], [2, 3]])
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


# The OGD-GTL profile (five OGD-GTL experiments beside the notebook's OGD, hours on a CPU)
# shrunk the same way: one OGD-GTL experiment of five images per task beside seq, one seed.
GTL_PROFILE = "profiles/ogd_gtl/ogd_gtl.yaml"
GTL_RUN = "runs/ogd_gtl/results"


def shrink_gtl_profile(project) -> None:
    """Rewrite the project copy's OGD-GTL profile to one small OGD-GTL run beside seq (the
    tiny config has none of the notebook's OGD experiments its entries start from)."""
    path = project / GTL_PROFILE
    settings = yaml.safe_load(path.read_text())
    assert {"ogd_gtl_sgd", "ogd_gtl_adam", "task_ogd_gtl"} <= set(settings["experiments"])
    settings.update(selected_experiments=["seq", "ogd_gtl_adam"], seeds=[0], experiments={
        "ogd_gtl_adam": {"ogd": True, "ogd_directions": "gtl", "ogd_memory": 5, "lr": 0.0001}})
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def readme_commands(text: str) -> list[str]:
    """The commands of the README, in order: every line of a ```bash block (comments and
    blank lines aside) and every inline code span that starts with a command."""
    commands = []
    position = 0
    for block in FENCED.finditer(text):
        commands += INLINE.findall(text[position : block.start()])
        for line in block.group(1).splitlines():
            command = COMMENT.sub("", line).strip()  # bash ignores a trailing comment too
            if command:
                commands.append(command)
        position = block.end()
    commands += INLINE.findall(text[position:])
    return list(dict.fromkeys(commands))


def test_readme_commands_are_found_in_order():
    text = "intro `snakemake --profile p` then\n```bash\npip install x  # why\n\nruff check .\n" \
           "```\nand `--config a=b` and `python -m m` and `snakemake --profile p`\n"
    assert readme_commands(text) == [
        "snakemake --profile p", "pip install x", "ruff check .", "python -m m"]


def test_the_readme_starts_with_the_install_and_study_command_and_the_test_command():
    first = FENCED.search((REPO / "README.md").read_text()).group(1).splitlines()
    assert first[0].startswith("python3 -m venv .venv && ")
    assert first[0].endswith("snakemake --cores 4 results/report.html")
    assert first[1] == "python -m pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert "README.md" in ci  # CI runs the test command it reads from the README


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    return [name for name in listed if name and (REPO / name).is_file()]


def test_every_readme_command_runs_as_written(tmp_path):
    require_data()
    commands = readme_commands((REPO / "README.md").read_text())
    assert set(NOT_RUN) <= set(commands), set(NOT_RUN) - set(commands)
    assert set(DATA_COMMANDS) <= set(commands), set(DATA_COMMANDS) - set(commands)

    project = tmp_path / "clexp"
    for name in tracked_files():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, project / name)
    config = tiny_config(
        tasks=[[1, 2], [3, 4]],
        data_subset={"train_images_per_class": 200, "eval_images_per_class": 50},
    )
    # The README's experiments (seq and seq_bn in its commands) and the joint reference; the
    # tiny study's tuned and scenario experiments are built by the tests of tiny_run.
    config["experiments"] = {name: config["experiments"][name]
                             for name in ("joint", "seq", "seq_bn")}
    (project / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shrink_literature_profile(project)
    shrink_gtl_profile(project)
    home = tmp_path / "home"
    home.mkdir()
    (home / "datasets").symlink_to(SHARED_DATA)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CLEXP_DATA_ROOT")}
    env["HOME"] = str(home)

    # Never the test suite from inside itself, whatever its arguments.
    assert not [c for c in commands if "pytest" in c and c not in NOT_RUN]
    install = commands[0]
    ordered = [install] + [c for c in commands[1:] if c not in RUN_LAST] + RUN_LAST
    ran = []
    for command in ordered:
        if command in NOT_RUN:
            continue
        script = command if command == install else f". .venv/bin/activate && {command}"
        result = subprocess.run(["bash", "-c", script], cwd=project, env=env,
                                capture_output=True, text=True, timeout=1200)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"README command failed: {command}\n{output[-5000:]}"
        if command in DATA_COMMANDS:
            assert "prepare_data" not in output and "train_task" not in output, output
        ran.append(command)
    assert (project / "results" / "report.html").stat().st_size > 10_000
    # the literature profile wrote its own folder, with the table beside the paper
    assert "Against the published numbers" in (
        project / LITERATURE_RUN / "report.html").read_text()
    assert (project / LITERATURE_RUN / "study" / "published.csv").is_file()
    # the OGD-GTL profile wrote its own folder: after task 1, a basis of 5 rows (m = 5)
    gtl_metrics = json.loads(
        (project / GTL_RUN / "ogd_gtl_adam" / "seed0" / "task1" / "metrics.json").read_text())
    assert gtl_metrics["ogd_basis_size"] == 5
    assert len(ran) == len(set(commands) - set(NOT_RUN))
