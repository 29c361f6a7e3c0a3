"""A new user's first hour: data settings, a failed download, the demo, the benchmark's
defaults, a quiet console, and tests that skip without their data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from clexp import bench
from clexp.data import EXPECTED_FILES, load_dataset, prepare_dataset, write_dataset_file
from clexp.errors import DataError

from conftest import REPO, SHARED_DATA, make_project, require_data, snakemake, tiny_config
from helpers import write_synthetic_dataset

SMALL = {"train_images_per_class": 50, "eval_images_per_class": 20}
DATASET = "results/data/dataset.npz"


def data_project(tmp_path: Path, **overrides) -> Path:
    """A project copy whose dataset file is built (50 + 20 images per class)."""
    require_data()
    project = make_project(tmp_path / "project", tiny_config(data_subset=SMALL, **overrides))
    result = snakemake(project, DATASET)
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def nothing_to_do(project: Path, *args: str, env: dict | None = None) -> bool:
    command = [sys.executable, "-m", "snakemake", "-n", DATASET, *args]
    environment = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"}
    result = subprocess.run(command, cwd=project, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return "Nothing to be done" in result.stdout + result.stderr


# ---- where the data is found never makes the dataset stale ----


@pytest.mark.slow
def test_moving_data_root_or_switching_download_reruns_nothing(tmp_path):
    project = data_project(tmp_path)
    relative = os.path.relpath(SHARED_DATA, project)
    assert nothing_to_do(project)
    assert nothing_to_do(project, "--config", f"data_root={relative}")
    assert nothing_to_do(project, "--config", f"data_root={SHARED_DATA}/../data", "download=True")
    environment = dict(os.environ, CLEXP_DATA_ROOT=str(tmp_path / "elsewhere"))
    assert nothing_to_do(project, env=environment)
    # What the content depends on still counts: another subset is another dataset file.
    assert not nothing_to_do(project, "--config", "dataset=fashion_mnist")


@pytest.mark.slow
def test_an_offline_rebuild_uses_the_kept_copy_and_never_loses_the_dataset(tmp_path):
    project = data_project(tmp_path)
    before = load_dataset(project / DATASET)
    with open(project / "src/clexp/data.py", "a") as code:  # changed code: a rebuild
        code.write("# edited\n")
    empty = tmp_path / "no-data"
    result = snakemake(project, DATASET, "--config", f"data_root={empty}", "download=False")
    assert result.returncode == 0, result.stdout + result.stderr
    after = load_dataset(project / DATASET)
    assert before.keys() == after.keys()
    for name in before:
        assert np.array_equal(before[name], after[name])
    log = (project / "results/logs/prepare_data.log").read_text()
    assert "results/data/kept/mnist-train50-eval20.npz" in log


def test_the_data_root_variable_gives_way_to_the_command_line():
    from clexp.config import apply_data_root_variable

    config = {"data_root": "data"}
    apply_data_root_variable(config, {}, {"CLEXP_DATA_ROOT": "/datasets"})
    assert config["data_root"] == "/datasets"
    config = {"data_root": "mine"}
    apply_data_root_variable(config, {"data_root": "mine"}, {"CLEXP_DATA_ROOT": "/datasets"})
    assert config["data_root"] == "mine"
    apply_data_root_variable(config, {}, {})
    assert config["data_root"] == "mine"


def test_without_raw_files_or_a_kept_copy_the_error_stands(tmp_path):
    with pytest.raises(DataError, match="download is off"):
        write_dataset_file(tmp_path / "d.npz", "mnist", tmp_path / "none", False,
                           keep_dir=tmp_path / "kept")
    assert not (tmp_path / "d.npz").exists()


# ---- a failed download ----


class FailingDownload:
    """Does what torchvision does when offline: makes the raw folder, then fails."""

    def __init__(self, root, train=True, download=False):
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://x, "
                           "got:\n<urlopen error [Errno -3] Temporary failure>")


def test_a_failed_download_says_so_in_one_line_and_leaves_no_empty_folders(tmp_path,
                                                                             monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", FailingDownload)
    root = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        prepare_dataset("mnist", root, download=True)
    message = str(caught.value)
    assert "\n" not in message
    assert f"download into {root / 'MNIST' / 'raw'} failed" in message
    assert "Temporary failure" in message
    assert "download: true" not in message  # it was on: the advice is to copy the files
    assert all(name in message for name in EXPECTED_FILES)
    assert not root.exists()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.slow
def test_a_job_error_is_printed_once_as_one_line_through_the_default_profile(tmp_path):
    require_data()
    config = tiny_config(data_root=str(tmp_path / "empty"), data_subset=SMALL)
    project = make_project(tmp_path / "project", config)
    shutil.copytree(REPO / "profiles", project / "profiles")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "snakemake", DATASET], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("DataError: download is off") == 1, output
    assert "Traceback" not in output
    # The console is quiet: no job's input listing of library files.
    assert "src/clexp/" not in output


def test_the_default_profile_shows_progress_and_errors_only():
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert set(profile["quiet"]) == {"host", "rules"}
    # A failed job prints its error itself; Snakemake printing its log would repeat it.
    assert not profile.get("show-failed-logs")
    readme = (REPO / "README.md").read_text()
    assert "--quiet host" in readme  # how to see every job's rule and inputs again


# ---- the demo ----


@pytest.mark.slow
def test_the_demo_shows_the_studys_phenomena(tmp_path):
    """The demo as a new user runs it: every task is learned (so that forgetting means
    something), and its first findings show forgetting instead of contradicting it."""
    require_data()
    project = make_project(tmp_path / "project", yaml.safe_load(
        (REPO / "config.yaml").read_text()) | {"data_root": str(SHARED_DATA)})
    shutil.copytree(REPO / "profiles", project / "profiles")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/demo"]
    result = subprocess.run([*command, "-n"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    stats = dict(line.split() for line in output.splitlines()
                 if line.split() and line.split()[0] in ("train_task", "plot_run",
                                                         "evaluate_untrained"))
    # joint 1 + seq 5 + seq_bn 5 tasks, three seeds
    assert stats == {"train_task": "33", "plot_run": "9", "evaluate_untrained": "9"}
    demo = yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text())
    assert demo["data_subset"]["train_images_per_class"] <= 500

    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    results = project / "results"
    for experiment, tasks in (("joint", 1), ("seq", 5), ("seq_bn", 5)):
        for seed in (0, 1, 2):
            for task in range(1, tasks + 1):
                log = pd.read_csv(results / experiment / f"seed{seed}/task{task}/train_log.csv")
                assert log["train_acc"].iloc[-1] >= 0.9, (experiment, seed, task, log)
    found = pd.read_csv(results / "study/findings.csv").set_index("key")
    # the first finding reads as the study's phenomenon: never "does not hold"
    assert set(found.loc[[k for k in found.index if k.startswith("seq_forgets")],
                         "claim_verdict"]) <= {"holds", "inconclusive"}
    assert found.loc["seq_forgets.1", "verdict"] == "holds"  # earlier tasks below 0.05
    assert (found["n"].max()) == 3
    assert (results / "report.html").stat().st_size > 100_000


# ---- the loop benchmark's defaults ----


def test_bench_loop_without_a_dataset_file_fails_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "REPO", tmp_path)
    with pytest.raises(SystemExit) as exited:
        bench.main(["loop"])
    assert exited.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert f"no dataset file at {tmp_path / DATASET}" in error
    assert "snakemake --cores 2 results/data/dataset.npz" in error


def test_bench_loop_uses_the_projects_dataset_and_prints_units(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "REPO", tmp_path)
    monkeypatch.delenv("CLEXP_DATA_ROOT", raising=False)
    write_synthetic_dataset(tmp_path / "results/data/dataset.npz", per_class=40)
    (tmp_path / "data/MNIST/raw").mkdir(parents=True)  # what a failed download leaves
    (tmp_path / "config.yaml").write_text("data_root: data\ndataset: mnist\n")
    bench.main(["loop", "--repeats", "1", "--epochs", "1"])
    printed = capsys.readouterr().out
    assert "reference loop is left out" in printed and "lacks train-images-idx3-ubyte" in printed
    lines = {line.split(":")[0].strip(): line for line in printed.splitlines() if ":" in line}
    assert lines["clexp"].endswith(" images/s")
    assert lines["ratio_clexp_vs_dataloader_tensors"].endswith(" x")
    assert lines["images_per_run"].endswith(" images")
    assert (tmp_path / "results/benchmarks/bench.json").is_file()


# ---- tests that need the data skip without it (and fail in CI) ----

NEEDS_DATA = [
    "tests/test_faults.py::test_divergence_fails_the_job_naming_the_run_and_writes_no_checkpoint",
    "tests/test_faults.py::test_killed_run_resumes_from_the_last_checkpoint_with_identical_metrics",
    "tests/test_workflow.py::test_fashion_mnist_study_with_two_seeds",
]


@pytest.mark.parametrize("required, outcome", [("0", "3 skipped"), ("1", "3 failed")])
def test_data_tests_skip_without_the_data_and_fail_when_it_is_required(tmp_path, required,
                                                                        outcome):
    env = dict(os.environ, CLEXP_TEST_DATA=str(tmp_path / "nothing"),
               CLEXP_TESTS_REQUIRE_DATA=required)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-n", "0", *NEEDS_DATA], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert outcome in result.stdout.splitlines()[-1], result.stdout[-3000:]
