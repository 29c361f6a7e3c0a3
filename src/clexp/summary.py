"""Tables across runs, built from `metrics.json` files only (no torch).

`results/summary.csv`: one row per experiment and seed with `experiment`, `seed`, `num_tasks`,
`final_val_acc`, `final_val_loss`, `final_probe_acc`, `final_sparsity`, `avg_acc`, `bwt`,
`fwt`, `avg_forgetting`, `final_ogd_basis_size`, `total_epochs`, and the task-incremental
`avg_acc_til`, `bwt_til` (from the
`per_task_acc_til` matrix; empty for metrics written before it existed).
`results/summary_by_experiment.csv`: per experiment, `seeds` (count) and `<metric>_mean`,
`<metric>_sd` (sample standard deviation; empty with one seed) of each numeric column above.
"""

from __future__ import annotations

import pandas as pd

from clexp.metrics import (
    accuracy_matrix,
    average_accuracy,
    average_forgetting,
    backward_transfer,
    forward_transfer,
)

SUMMARY_METRICS = [
    "final_val_acc", "final_val_loss", "final_probe_acc", "final_sparsity",
    "avg_acc", "bwt", "fwt", "avg_forgetting", "final_ogd_basis_size", "total_epochs",
    "avg_acc_til", "bwt_til",
]


def run_summary(metrics_rows: list[dict]) -> dict:
    """Summarise one run from its checkpoints' metrics, ordered by task."""
    rows = sorted(metrics_rows, key=lambda m: m["task"])
    matrix = accuracy_matrix([m["per_task_acc"] for m in rows])
    last = rows[-1]
    til = None
    if all(m.get("per_task_acc_til") is not None for m in rows):
        til = accuracy_matrix([m["per_task_acc_til"] for m in rows])
    nan = float("nan")
    return {
        "experiment": last["experiment"],
        "seed": last["seed"],
        "num_tasks": last["num_tasks"],
        "final_val_acc": last["val_acc"],
        "final_val_loss": last["val_loss"],
        "final_probe_acc": last["probe_acc"],
        "final_sparsity": last["population_sparsity"],
        "avg_acc": average_accuracy(matrix),
        "bwt": backward_transfer(matrix),
        "fwt": forward_transfer(matrix, last["init_per_task_acc"]),
        "avg_forgetting": average_forgetting(matrix),
        "final_ogd_basis_size": last["ogd_basis_size"],
        "total_epochs": sum(m["epochs_run"] for m in rows),
        "avg_acc_til": average_accuracy(til) if til is not None else nan,
        "bwt_til": backward_transfer(til) if til is not None else nan,
    }


def summary_table(all_metrics: list[dict]) -> pd.DataFrame:
    """One summary row per (experiment, seed), in the order the runs first appear."""
    runs: dict[tuple, list[dict]] = {}
    for m in all_metrics:
        runs.setdefault((m["experiment"], m["seed"]), []).append(m)
    return pd.DataFrame([run_summary(rows) for rows in runs.values()])


def summary_by_experiment(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each summary metric."""
    grouped = summary.groupby("experiment", sort=False)
    table = pd.DataFrame({"seeds": grouped["seed"].count()})
    for metric in SUMMARY_METRICS:
        values = grouped[metric].agg(["mean", "std"]).astype(float)
        table[f"{metric}_mean"] = values["mean"]
        table[f"{metric}_sd"] = values["std"]
    return table.reset_index()


def accuracy_table(metrics_rows: list[dict], key: str = "per_task_acc") -> pd.DataFrame:
    """The accuracy matrix of one run as a table: a row per checkpoint, a column per task.

    `key` picks the scenario: `per_task_acc` (class-incremental, with `val_acc`, `probe_acc`
    and `sparsity` columns) or `per_task_acc_til` (the task columns only).
    """
    rows = sorted(metrics_rows, key=lambda m: m["task"])
    table = pd.DataFrame(
        [m[key] for m in rows],
        columns=[f"task{j + 1} {m}" for j, m in enumerate(_task_names(rows[0]["tasks"]))],
    )
    table.insert(0, "after_task", [m["task"] for m in rows])
    if key != "per_task_acc":
        return table  # the columns below are class-incremental measurements
    table["val_acc"] = [m["val_acc"] for m in rows]
    table["probe_acc"] = [m["probe_acc"] for m in rows]
    table["sparsity"] = [m["population_sparsity"] for m in rows]
    return table


def _task_names(tasks) -> list[str]:
    return ["[" + ",".join(str(c) for c in task) + "]" for task in tasks]


def probe_table(metrics_rows: list[dict]) -> pd.DataFrame:
    """Linear-probe accuracy per class (rows, 'Class 3') after each task (columns)."""
    rows = sorted(metrics_rows, key=lambda m: m["task"])
    classes = rows[-1]["classes_seen"]
    table = pd.DataFrame({"class": [f"Class {c}" for c in classes]})
    for m in rows:
        per_class = m["probe_per_class_acc"] or {}
        table[f"after task {m['task']}"] = [per_class.get(str(c)) for c in classes]
    return table


def run_curves(metrics_rows: list[dict]) -> pd.DataFrame:
    """Per checkpoint of one run: accuracies, loss, sparsity, bias statistics, basis size.

    Columns: experiment, seed, task, val_acc, val_loss, probe_acc, population_sparsity, sparsity_h1,
    sparsity_h2, ogd_basis_size, and `<layer>_bias_<mean|median|std>` where measured.
    """
    records = []
    for m in sorted(metrics_rows, key=lambda m: m["task"]):
        record = {key: m[key] for key in (
            "experiment", "seed", "task", "val_acc", "val_loss", "probe_acc",
            "population_sparsity", "sparsity_h1", "sparsity_h2", "ogd_basis_size")}
        for layer, stats in (m.get("bias_stats") or {}).items():
            for name, value in stats.items():
                record[f"{layer}_bias_{name}"] = value
        records.append(record)
    return pd.DataFrame(records)
