"""End-to-end: the tiny study through Snakemake, its outputs and what a rerun does."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATA, make_project, require_data, snakemake, tiny_config

pytestmark = pytest.mark.slow

METRICS_KEYS = {
    "experiment", "seed", "task", "classes_seen", "val_acc", "val_loss", "per_class_acc",
    "per_task_acc", "population_sparsity", "probe_acc", "probe_per_class_acc", "epochs_run",
}


def planned_jobs(project: Path, *args: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would execute."""
    result = snakemake(project, "-n", "results/report.html", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = []
    for line in result.stdout.splitlines():
        rule = re.match(r"^(?:local)?rule (\w+):$", line)
        if rule:
            jobs.append((rule.group(1), {}))
        wildcards = re.match(r"^\s+wildcards: (.*)$", line)
        if wildcards and jobs:
            jobs[-1][1].update(item.split("=", 1) for item in wildcards.group(1).split(", "))
    return jobs


def test_every_checkpoint_has_a_metrics_file_with_the_documented_keys(tiny_run):
    for experiment, tasks in (("joint", 1), ("seq", 5), ("seq_bn", 5)):
        for task in range(1, tasks + 1):
            folder = tiny_run / f"results/{experiment}/seed0/task{task}"
            assert (folder / "checkpoint.pt").stat().st_size > 100_000
            metrics = json.loads((folder / "metrics.json").read_text())
            assert METRICS_KEYS <= set(metrics)
            assert metrics["task"] == task and metrics["experiment"] == experiment
            assert len(metrics["per_task_acc"]) == tasks
            assert set(metrics["per_class_acc"]) == {str(c) for c in metrics["classes_seen"]}
            assert 0.0 <= metrics["population_sparsity"] <= 1.0
            log = pd.read_csv(folder / "train_log.csv")
            assert len(log) == metrics["epochs_run"] == 2


def test_seen_classes_grow_task_by_task(tiny_run):
    seen = [
        json.loads((tiny_run / f"results/seq/seed0/task{t}/metrics.json").read_text())[
            "classes_seen"
        ]
        for t in range(1, 6)
    ]
    assert seen[0] == [1, 2] and seen[-1] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert [len(s) for s in seen] == [2, 4, 6, 8, 10]


def test_summary_has_one_row_per_run_and_the_report_embeds_the_figures(tiny_run):
    summary = pd.read_csv(tiny_run / "results/summary.csv")
    assert sorted(summary["experiment"]) == ["class_si", "domain_lwf", "joint", "seq", "seq_bn",
                                             "task_seq"]
    for column in ("final_val_acc", "final_probe_acc", "final_sparsity", "avg_acc", "bwt",
                   "avg_forgetting"):
        assert column in summary
    seq = summary.set_index("experiment").loc["seq"]
    last = json.loads((tiny_run / "results/seq/seed0/task5/metrics.json").read_text())
    assert seq["final_val_acc"] == pytest.approx(last["val_acc"])
    page = (tiny_run / "results/report.html").read_text()
    runs, multi_task_runs, checkpoints = 6, 5, 1 + 5 * 5
    # L1 sweep (joint) and eval-loss comparison; no weight-decay sweep: seq trains fixed
    # epochs, not the sweep's early-stopping protocol, and an empty table is not shown; the
    # tuned class_si's sweep
    study_figures = 2 + 1
    # bounds 6 + 1 task-IL, normalisation 6 + 2 bias, representation 6, forward transfer
    # 6 + 1 probe, and 6 for each scenario: class-IL (the tuned class_si), task-IL (task_seq
    # on its own) and domain-IL (domain_lwf)
    comparison_figures = 46
    # details (learning curves per run, five per-task figures per multi-task run, seven
    # per checkpoint) are WebP; comparison and study figures PNG
    assert page.count("data:image/webp;base64,") == runs + 5 * multi_task_runs + 7 * checkpoints
    assert page.count("data:image/png;base64,") == comparison_figures + study_figures
    assert len(list((tiny_run / "results/study/comparisons").rglob("*.png"))) == (
        comparison_figures)
    selection = pd.read_csv(tiny_run / "results/tuning/class_si/selection.csv")
    chosen = selection[selection["chosen"]].iloc[0]["point"]
    assert f"Chosen: <strong>{chosen}</strong>" in page
    for heading in ("Bounds", "Normalisation", "Representation strength", "Summary",
                    "Choosing settings on the validation split"):
        assert f"<h2>{heading}</h2>" in page


def test_a_second_run_has_nothing_to_do(tiny_run):
    assert planned_jobs(tiny_run) == []


def test_editing_one_experiment_reruns_only_that_experiment_and_the_aggregates(tiny_run):
    config_path = tiny_run / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["experiments"]["seq"]["lr"] = 0.002
    try:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        jobs = planned_jobs(tiny_run)
    finally:
        config_path.write_text(original)
    experiments = {w["experiment"] for _, w in jobs if "experiment" in w}
    assert experiments == {"seq"}
    rules = sorted(rule for rule, _ in jobs)
    assert rules.count("train_task") == 5 and rules.count("evaluate_checkpoint") == 5
    assert {"plot_run", "summarize", "report"} <= set(rules)
    assert "prepare_data" not in rules


def test_editing_a_probe_setting_reevaluates_without_retraining(tiny_run):
    config_path = tiny_run / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["experiments"]["seq"]["probe_all_classes"] = True
    try:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        rules = [rule for rule, _ in planned_jobs(tiny_run)]
    finally:
        config_path.write_text(original)
    assert "train_task" not in rules and rules.count("evaluate_checkpoint") == 5


@pytest.mark.parametrize(
    ("module", "expected", "untouched"),
    [
        ("report.py", {"report"}, {"train_task", "evaluate_checkpoint", "summarize"}),
        ("ogd.py", {"train_task", "evaluate_checkpoint", "report"}, {"prepare_data"}),
        # a claim edited: the findings and the page, no figure
        ("findings.py", {"findings", "report"},
         {"plot_comparisons", "plot_run", "checkpoint_table", "evaluate_untrained"}),
    ],
)
def test_editing_library_code_reruns_the_jobs_that_use_it(tiny_run, module, expected, untouched):
    path = tiny_run / "src" / "clexp" / module
    source, before = path.read_text(), path.stat()
    try:
        # Snakemake reruns for input that is newer *and* whose checksum changed: edit it.
        path.write_text(source + "\n# edited\n")
        rules = {rule for rule, _ in planned_jobs(tiny_run)}
    finally:
        path.write_text(source)
        os.utime(path, (before.st_atime, before.st_mtime))
    assert expected <= rules, rules
    assert not rules & untouched


def test_touching_library_code_without_changing_it_reruns_nothing(tiny_run):
    path = tiny_run / "src" / "clexp" / "training.py"
    before = path.stat()
    try:
        os.utime(path)  # newer, same content
        assert planned_jobs(tiny_run) == []
    finally:
        os.utime(path, (before.st_atime, before.st_mtime))


def test_jobs_depend_on_one_digest_of_their_library_code(tiny_run):
    digests = sorted((tiny_run / "results" / "code").glob("*.sha256"))
    assert [d.stem for d in digests] == ["data", "evaluate", "figures", "findings", "report",
                                         "select", "train", "tune"]
    train = (tiny_run / "results/code/train.sha256").read_text().split()
    assert len(train) == 1 and train[0].startswith("sha256:") and len(train[0]) == 7 + 64


def test_fashion_mnist_study_with_two_seeds(tmp_path):
    require_data("FashionMNIST")
    config = tiny_config(
        dataset="fashion_mnist", seeds=[0, 1],
        data_subset={"train_images_per_class": 100, "eval_images_per_class": 50},
        experiments={"seq": {}, "seq_bn": {"norm": "batch"}},
    )
    project = make_project(tmp_path / "project", config)
    result = snakemake(project, "results/report.html")
    assert result.returncode == 0, result.stdout + result.stderr
    with np.load(project / "results/data/dataset.npz") as data:
        raw = (SHARED_DATA / "FashionMNIST/raw/train-images-idx3-ubyte").read_bytes()
        first = np.frombuffer(raw[16 : 16 + 784], dtype=np.uint8)
        assert np.array_equal(data["train_images"][0], first)  # Fashion-MNIST, not MNIST
        assert len(data["train_labels"]) == 1000
    summary = pd.read_csv(project / "results/summary.csv")
    assert sorted(zip(summary["experiment"], summary["seed"], strict=True)) == [
        ("seq", 0), ("seq", 1), ("seq_bn", 0), ("seq_bn", 1)
    ]
    by_experiment = pd.read_csv(project / "results/summary_by_experiment.csv").set_index(
        "experiment"
    )
    seq = summary[summary["experiment"] == "seq"]["final_probe_acc"]
    assert by_experiment.loc["seq", "seeds"] == 2
    assert by_experiment.loc["seq", "final_probe_acc_mean"] == pytest.approx(seq.mean())
    assert by_experiment.loc["seq", "final_probe_acc_sd"] == pytest.approx(seq.std())
    assert seq.iloc[0] != seq.iloc[1]  # the seeds really differ
    page = (project / "results/report.html").read_text()
    assert f"{seq.mean():.3f} ± {seq.std():.3f}" in page


def test_metrics_do_not_depend_on_whether_a_seed_is_analysed(tmp_path):
    require_data()
    base = tiny_config(
        seeds=[0, 1], tasks=[[1, 2], [3, 4]], experiments={"seq": {}},
        data_subset={"train_images_per_class": 100, "eval_images_per_class": 50},
    )
    runs = {}
    for analysed in (0, 1):
        config = dict(base, analysis=dict(base["analysis"], seeds=[analysed]))
        project = make_project(tmp_path / f"analysed{analysed}", config)
        result = snakemake(project, "results/report.html")
        assert result.returncode == 0, result.stdout + result.stderr
        runs[analysed] = project
    for task in (1, 2):
        folder = f"results/seq/seed0/task{task}"
        with_analysis = runs[0] / folder
        without = runs[1] / folder
        for name in ("metrics.json", "checkpoint.pt"):
            assert (with_analysis / name).read_bytes() == (without / name).read_bytes(), name
        assert (with_analysis / "analysis.npz").exists() and not (without / "analysis.npz").exists()
        assert (with_analysis / "figures/latent_map.png").exists()
        assert not (without / "figures").exists()
        assert len(pd.read_csv(with_analysis / "forgetting_curve.csv")) > 0
        assert len(pd.read_csv(without / "forgetting_curve.csv")) == 0
    # The summary (every seed) is the same in both projects.
    assert (runs[0] / "results/summary.csv").read_text() == (
        runs[1] / "results/summary.csv").read_text()
