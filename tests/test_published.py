"""The literature profile (profiles/vdv2019) and the table of measured vs published numbers."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config, validate

from clexp.config import (
    SCHEMA_PATH,
    check_config,
    normalize_config,
    resolve_experiment,
    selected_experiments,
    validate_config,
)
from clexp.errors import ConfigError
from clexp.published import published_comparison, read_published
from clexp.report import StudyFiles, published_html
from clexp.study import method_key

from conftest import REPO, make_project

PROFILE = REPO / "profiles" / "vdv2019"


def profile_config() -> dict:
    """config.yaml with the profile's settings merged over it, as Snakemake merges them."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load((PROFILE / "vdv2019.yaml").read_text()))
    normalize_config(config)
    validate_config(config)
    validate(config, str(SCHEMA_PATH))
    check_config(config)
    return config


def test_the_profile_resolves_every_method_in_every_scenario_at_the_papers_protocol():
    config = profile_config()
    names = selected_experiments(config)
    assert len(names) == 24
    cells = set()
    for name in names:
        run = resolve_experiment(config, name)
        cells.add((method_key(run), run.get("scenario", "class")))
        assert run["hidden"] == [400, 400] and run["iterations"] == 2000
        assert (run["optimizer"], run["weight_decay"], run["lr"], run["batch_size"]) == (
            "adam", 0.0, 0.001, 128)
        if run.get("method") == "lwf":
            assert run["lwf_weighting"] == "paper"
    methods = {"none", "joint", "ewc", "online_ewc", "si", "lwf", "er", "agem"}
    assert cells == {(m, s) for m in methods for s in ("class", "task", "domain")}
    # the study's own experiments keep their settings under the profile
    study = yaml.safe_load((REPO / "config.yaml").read_text())
    assert resolve_experiment(config, "seq") == resolve_experiment(study, "seq")


def test_the_published_table_names_every_cell_of_the_profile_and_a_source_for_each():
    table = read_published(PROFILE / "published.csv")
    config = profile_config()
    runs = [resolve_experiment(config, n) for n in selected_experiments(config)]
    assert {(r.method, r.scenario) for r in table.itertuples()} == {
        (method_key(run), run.get("scenario", "class")) for run in runs}
    assert table["source"].str.len().min() > 20


def test_the_profile_writes_outside_the_studys_results(tmp_path):
    project = make_project(tmp_path / "project", yaml.safe_load(
        (REPO / "config.yaml").read_text()))
    (project / "profiles").mkdir()
    for folder in ("vdv2019", "default"):
        (project / "profiles" / folder).mkdir()
        for file in (REPO / "profiles" / folder).iterdir():
            (project / "profiles" / folder / file.name).write_bytes(file.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/vdv2019", "-n"],
        cwd=project, env=env, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "runs" / "vdv2019" / ".snakemake").is_dir()
    assert not (project / "results").exists() and not (project / ".snakemake").exists()
    assert "published_table" in result.stdout + result.stderr


def test_a_relative_data_root_names_the_project_folder_in_the_profiles_directory(tmp_path):
    project = make_project(tmp_path / "project", dict(yaml.safe_load(
        (REPO / "config.yaml").read_text()), data_root="data", download=False))
    (project / "workflow" / "rules" / "show.smk").write_text(
        'print("DATA_ROOT=" + config["data_root"])\n')
    with open(project / "Snakefile", "a") as snakefile:
        snakefile.write('\ninclude: "workflow/rules/show.smk"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLEXP_DATA_ROOT")}
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "-n", "--directory",
               "runs/elsewhere", "--config", "selected_experiments=[seq]"]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DATA_ROOT=../../data" in result.stdout + result.stderr


SUMMARY = pd.DataFrame({
    "experiment": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0],
    "avg_acc": [0.20, 0.22, 0.24, 0.985]})
SETTINGS = {"a": {"method": "lwf", "joint": False},
            "b": {"joint": True, "scenario": "task"},
            "c": {"ogd": True, "joint": False}}


def published(tmp_path, rows: str):
    path = tmp_path / "published.csv"
    path.write_text("method,scenario,mean,sd,source\n" + rows)
    return path


def test_measured_numbers_sit_beside_the_published_ones_in_percent(tmp_path):
    path = published(tmp_path, "lwf,class,24.0,0.5,paper v9 Table 2 row LwF\n"
                               "lwf,task,,,not found: looked in X\n")
    table = published_comparison(SUMMARY, SETTINGS, read_published(path))
    lwf = table.set_index(["method", "scenario"]).loc[("lwf", "class")]
    assert lwf["experiment"] == "a" and lwf["n"] == 3
    assert lwf["measured_mean"] == pytest.approx(22.0)
    assert lwf["measured_sd"] == pytest.approx(2.0)  # sample sd over seeds
    assert lwf["difference"] == pytest.approx(-2.0)
    task = table.set_index(["method", "scenario"]).loc[("lwf", "task")]
    assert task["experiment"] == "" and math.isnan(task["published_mean"])
    # the run's joint task-IL run has no published row: it is listed after the published ones
    assert list(zip(table["method"], table["scenario"], strict=True)) == [
        ("lwf", "class"), ("lwf", "task"), ("joint", "task")]


@pytest.mark.parametrize(("rows", "message"), [
    ("ewc2,class,1,1,x\n", "unknown method 'ewc2'"),
    ("ewc,cls,1,1,x\n", "unknown scenario 'cls'"),
    ("ewc,class,about 20,1,x\n", r"mean 'about 20' is not a number"),
    ("ewc,class,1,1,\n", "source is empty"),
    ("ewc,class,1,1,x\newc,class,2,1,y\n", "listed twice"),
])
def test_a_bad_published_table_is_named_with_its_line(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message):
        read_published(published(tmp_path, rows))


def test_the_report_shows_a_missing_published_number_as_not_found(tmp_path):
    path = published(tmp_path, "lwf,class,24.0,0.5,paper v9 Table 2 row LwF\n"
                               "lwf,domain,,,not found: looked in X\n")
    table_path = tmp_path / "comparison.csv"
    published_comparison(SUMMARY, SETTINGS, read_published(path)).to_csv(table_path,
                                                                          index=False)
    files = StudyFiles(experiments=["a", "b"], seeds=[0, 1, 2], tasks={"a": 5, "b": 1},
                       paths={"published": str(table_path), "published_source": str(path)})
    page = published_html(files)
    cells = page.split("<tr><td>LwF</td>")[1].split("</tr>")[0]
    assert "22.00 ± 2.00" in cells and "24.00 ± 0.50" in cells and "-2.00" in cells
    assert cells.count(">not found</td>") == 1  # domain-IL
    assert "not run" in cells  # lwf in domain-IL: no experiment
    assert "paper v9 Table 2 row LwF" in page and "not found: looked in X" in page
    assert published_html(StudyFiles(experiments=[], seeds=[0], tasks={}, paths={})) == ""
