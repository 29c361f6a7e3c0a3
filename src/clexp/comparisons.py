"""Experiments compared on one axis: the checkpoint table, the series behind each comparison
figure (mean, sd and n over seeds) and the figures themselves (no torch).

`checkpoint_table` turns every checkpoint's `metrics.json` into one tidy row (experiment,
seed, task), so comparisons and findings read one file, `results/study/checkpoints.csv`.
A comparison puts a section's experiments beside plain sequential training (`seq`). A run of
one task (joint training) has no "after each task" axis: it is drawn as a dashed reference
line, never as a single point.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

BASELINE = "seq"

# The study's sections and the experiments each one compares against `seq`. The names are the
# default config's (and those the methods add); any other experiment of a run is compared in
# "other". An experiment absent from the run is left out of the figures.
COMPARISON_GROUPS = {
    "bounds": ["joint", "joint_bn"],
    "normalisation": ["seq_bn", "seq_ln"],
    "dropout": ["seq_dropout05", "seq_dropout02", "seq_bn_dropout02"],
    "weight_decay": ["seq_wd001", "seq_wd01", "seq_wd1", "seq_wd5"],
    "sparsity": ["seq_l1_1", "seq_bn", "seq_bn_l1_1", "seq_bn_dropout02_l1_1"],
    "representation": ["seq_bn", "seq_ln", "ogd_adam", "ogd_adam_bn"],
    "forward_transfer": ["seq_bn", "seq_bn_order38", "seq_bn_order14"],
    "ogd": [
        "seq_bn", "ogd_sgd", "ogd_adam", "ogd_sgd_bn", "ogd_adam_bn", "ogd_adam_bn_l1_1",
        "ogd_adam_bn_dropout02", "ogd_sgd_bn_t095", "ogd_sgd_bn_t095_l1_5",
        "ogd_sgd_bn_t095_dropout02", "ogd_sgd_bn_t095_dropout02_l1_5",
    ],
    # the published OGD-GTL beside the notebook's mean-loss OGD at the same four protocols
    "ogd_gtl": [
        "seq_bn", "ogd_sgd", "ogd_adam", "ogd_sgd_bn", "ogd_adam_bn",
        "ogd_gtl_sgd", "ogd_gtl_adam", "ogd_gtl_sgd_bn", "ogd_gtl_adam_bn",
    ],
    "baselines": ["ewc", "online_ewc", "si", "lwf", "er", "agem", "er_bn"],
    # the reference methods in each scenario, strengths chosen on the validation split
    "scenario_class": ["joint", "class_ewc", "class_online_ewc", "class_si", "class_lwf", "er",
                       "agem"],
    "scenario_task": ["task_joint", "task_ewc", "task_online_ewc", "task_si", "task_lwf",
                      "task_er", "task_agem", "task_ogd_gtl"],
    "scenario_domain": ["domain_joint", "domain_ewc", "domain_online_ewc", "domain_si",
                        "domain_lwf", "domain_er", "domain_agem"],
}
# A section's reference run, when not `seq`: plain sequential training in its scenario.
SECTION_BASELINES = {"scenario_task": "task_seq", "scenario_domain": "domain_seq"}
BASELINES = {BASELINE, *SECTION_BASELINES.values()}

# Experiments a section shows only beside its own: the section is not drawn for them alone.
COMPARATORS = {"sparsity": {"seq_bn"}, "ogd": {"seq_bn"},
               "ogd_gtl": {"seq_bn", "ogd_sgd", "ogd_adam", "ogd_sgd_bn", "ogd_adam_bn"},
               "scenario_class": {"joint", "er", "agem"}}

# The comparison figures of every section: name -> (checkpoint-table column, y label).
COMPARISON_FIGURES = {
    "accuracy": ("val_acc", "accuracy on the seen classes"),
    "retention": (None, "accuracy on the task's evaluation images"),
    "old_tasks": ("old_acc", "mean accuracy on the earlier tasks"),
    "probe": ("probe_acc", "linear-probe accuracy on h2 (seen classes)"),
    "sparsity": ("population_sparsity", "population sparsity (fraction of exact zeros)"),
    "matrices": (None, "accuracy"),
    # drawn only for the sections of EXTRA_FIGURES
    "bias_mean": ("bias_mean", "mean hidden-layer bias (fc1, fc2)"),
    "bias_median": ("bias_median", "median hidden-layer bias (fc1, fc2)"),
    "val_loss": ("val_loss", "evaluation loss on the seen classes"),
    "probe_unseen": ("probe_unseen_acc", "probe accuracy on the not-yet-trained digits"),
    "acc_til": ("acc_til", "task-incremental accuracy on the seen tasks"),
}
COMMON_FIGURES = ["accuracy", "old_tasks", "retention", "probe", "sparsity", "matrices"]
EXTRA_FIGURES = {
    "bounds": ["acc_til"],  # plain sequential training in both scenarios, beside joint
    "normalisation": ["bias_mean", "bias_median"],
    "sparsity": ["val_loss"],
    "forward_transfer": ["probe_unseen"],
    "baselines": ["acc_til"],
}


def section_figures(section: str) -> list[str]:
    """The comparison figures drawn for a section, in the order the report shows them."""
    return COMMON_FIGURES + EXTRA_FIGURES.get(section, [])


def comparison_groups(experiments: list[str]) -> dict[str, list[str]]:
    """Per section, `seq` (when run) and the section's experiments of this run; sections with
    nothing of their own to compare (see COMPARATORS) are dropped. Experiments in no section
    form the section "other"."""
    listed = {e for members in COMPARISON_GROUPS.values() for e in members} | BASELINES
    groups = dict(COMPARISON_GROUPS, other=[e for e in experiments if e not in listed])
    chosen = {}
    for section, members in groups.items():
        present = [e for e in members if e in experiments]
        baseline = SECTION_BASELINES.get(section, BASELINE)
        # a scenario's own plain run opens its section by itself (the scenario's claims
        # about it point there)
        alone = section in SECTION_BASELINES and baseline in experiments
        if set(present) - COMPARATORS.get(section, set()) or alone:
            chosen[section] = ([baseline] if baseline in experiments else []) + present
    return chosen


def _mean(values) -> float:
    values = [v for v in values if v is not None and not _isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _task_classes(m: dict, upto: int) -> list:
    return [c for t in (m.get("tasks") or [])[:upto] for c in t]


def _class_mean(per_class: dict | None, classes) -> float:
    """Mean of a per-class dict (keys: the class as a string) over `classes`."""
    if not per_class:
        return float("nan")
    return _mean([per_class.get(str(c)) for c in classes])


def _log10(value) -> float:
    return math.log10(value) if value is not None and value > 0 else float("nan")


# Batches into a task after which checkpoints.csv reads the previous task's accuracy
# (`clexp.training.ONSET_BATCHES` records it at these and others).
ONSET_COLUMN_BATCHES = (10, 50)


def checkpoint_table(metrics: list[dict]) -> pd.DataFrame:
    """One row per checkpoint (experiment, seed, task) of every run (task 0 rows: the
    untrained control, see `untrained_table`).

    Columns: experiment, seed, task, num_tasks, val_acc, val_loss, probe_acc,
    population_sparsity, sparsity_h1, sparsity_h2, dead_units (+ _h1, _h2: fraction of
    hidden units zero on every evaluation image), bias_mean and bias_median (over the hidden
    layers fc1 and fc2), probe_unseen_acc, probe_all_acc, probe_old_acc (the probe's mean
    per-class accuracy on the earlier tasks' classes), probe_min_class_acc (its lowest
    per-class accuracy), untrained_acc (mean accuracy of the untrained network on tasks
    2..T), old_acc (mean accuracy on the earlier tasks; empty after task 1), task_share (the
    current task's share of the seen classes' evaluation images), current_task_mass (softmax
    mass the earlier tasks' images put on the current task's classes), epochs_run,
    previous_acc_before / previous_acc_b<k> / previous_acc_mid / previous_acc_end (accuracy on
    the previous task before this task, after k of its batches, after the middle and the last
    epoch), log_update_fc1..3 (log10 of the relative weight change of each layer over the
    task), acc_til (task-incremental accuracy on the seen tasks, where measured),
    ogd_update_alignment_mean / _max (OGD runs: |cos| of the applied updates with the span of
    the basis over the task's steps; empty elsewhere and after task 1), ogd_projection_rows /
    ogd_basis_bytes (OGD runs: the rows and the float64 bytes of the basis that constrained the
    task) and acc_task<j>, the
    accuracy on task j's evaluation images (one column per task of the longest run).
    """
    records = []
    for m in sorted(metrics, key=lambda m: (m["experiment"], m["seed"], m["task"])):
        task, per_task = m["task"], list(m["per_task_acc"])
        hidden = [stats for layer, stats in (m.get("bias_stats") or {}).items()
                  if layer in ("fc1", "fc2")]
        til = m.get("per_task_acc_til")
        by_epoch = list(m.get("previous_task_acc_by_epoch") or [])
        by_batch = m.get("previous_task_acc_by_batch") or {}
        changes = m.get("relative_weight_change") or {}
        probe_classes = m.get("probe_per_class_acc") or {}
        record = {
            "experiment": m["experiment"], "seed": m["seed"], "task": task,
            "num_tasks": m["num_tasks"], "val_acc": m["val_acc"], "val_loss": m["val_loss"],
            "probe_acc": m["probe_acc"], "population_sparsity": m["population_sparsity"],
            "sparsity_h1": m.get("sparsity_h1"), "sparsity_h2": m.get("sparsity_h2"),
            "dead_units": m.get("dead_units"), "dead_units_h1": m.get("dead_units_h1"),
            "dead_units_h2": m.get("dead_units_h2"),
            "bias_mean": _mean([s["mean"] for s in hidden]),
            "bias_median": _mean([s["median"] for s in hidden]),
            "probe_unseen_acc": m.get("probe_unseen_acc"),
            "probe_all_acc": m.get("probe_all_acc"),
            "probe_old_acc": (_class_mean(probe_classes, _task_classes(m, task - 1))
                              if task > 1 else float("nan")),
            "probe_min_class_acc": (min(probe_classes.values()) if probe_classes
                                    else float("nan")),
            "untrained_acc": _mean(list(m.get("init_per_task_acc") or [])[1:]),
            "old_acc": _mean(per_task[: task - 1]) if task > 1 else float("nan"),
            "task_share": m.get("task_share"),
            "current_task_mass": m.get("current_task_mass"),
            "epochs_run": m.get("epochs_run"),
            "previous_acc_before": m.get("previous_task_acc_before"),
            **{f"previous_acc_b{k}": by_batch.get(str(k)) for k in ONSET_COLUMN_BATCHES},
            "previous_acc_mid": by_epoch[(len(by_epoch) - 1) // 2] if by_epoch else None,
            "previous_acc_end": by_epoch[-1] if by_epoch else None,
            **{f"log_update_{layer}": _log10(changes.get(layer))
               for layer in ("fc1", "fc2", "fc3")},
            "acc_til": _mean(list(til)[:task]) if til else float("nan"),
            "ogd_update_alignment_mean": m.get("ogd_update_alignment_mean"),
            "ogd_update_alignment_max": m.get("ogd_update_alignment_max"),
            "ogd_projection_rows": m.get("ogd_projection_rows"),
            "ogd_basis_bytes": m.get("ogd_basis_bytes"),
        }
        record.update({f"acc_task{j + 1}": value for j, value in enumerate(per_task)})
        records.append(record)
    return pd.DataFrame(records)


def untrained_table(metrics: list[dict]) -> pd.DataFrame:
    """One row per run: its untrained network (task 0), with the checkpoint table's columns
    plus probe_acc_after<t> and probe_old_acc_after<t>, the untrained network's probe on the
    classes seen after task t (all and the earlier tasks' ones): the control of a trained
    checkpoint's probe_acc and probe_old_acc after task t."""
    table = checkpoint_table(metrics)
    for index, m in enumerate(sorted(metrics, key=lambda m: (m["experiment"], m["seed"]))):
        by_task = list(m.get("probe_acc_by_task") or [])
        per_class = list(m.get("probe_per_class_acc_by_task") or [])
        for t, value in enumerate(by_task, start=1):
            table.loc[index, f"probe_acc_after{t}"] = value
            table.loc[index, f"probe_old_acc_after{t}"] = (
                _class_mean(per_class[t - 1], _task_classes(m, t - 1))
                if t > 1 and t - 1 < len(per_class) else float("nan"))
    return table


def task_columns(table: pd.DataFrame) -> list[str]:
    """The `acc_task<j>` columns of a checkpoint table, in task order."""
    columns = [c for c in table.columns if c.startswith("acc_task")]
    return sorted(columns, key=lambda c: int(c.removeprefix("acc_task")))


def series_over_seeds(table: pd.DataFrame, experiments: list[str], column: str) -> pd.DataFrame:
    """`column` after each task, per experiment: mean, sample sd (nan with one seed) and the
    number of seeds n. Rows: experiment, task, num_tasks, mean, sd, n (experiments in the
    given order; absent ones left out)."""
    rows = table[table["experiment"].isin(experiments)].dropna(subset=[column])
    grouped = rows.groupby(["experiment", "task"], sort=False)
    series = grouped[column].agg(mean="mean", sd="std", n="count").reset_index()
    series["num_tasks"] = grouped["num_tasks"].first().to_numpy()
    order = {e: i for i, e in enumerate(experiments)}
    series = series.sort_values(["experiment", "task"], key=lambda c: c.map(order)
                                if c.name == "experiment" else c)
    return series[["experiment", "task", "num_tasks", "mean", "sd", "n"]].reset_index(drop=True)


def _draw_series(axis, series: pd.DataFrame, colors: dict) -> None:
    """Lines with a ±sd band for multi-task runs; a dashed level for one-task runs."""
    for experiment, rows in series.groupby("experiment", sort=False):
        color = colors[experiment]
        n = int(rows["n"].min())
        label = f"{experiment} (n={n})"
        if rows["num_tasks"].iloc[0] == 1:
            axis.axhline(rows["mean"].iloc[0], color=color, linestyle="--", linewidth=1.2,
                         label=f"{experiment}, one task (n={n})")
            continue
        axis.plot(rows["task"], rows["mean"], marker="o", color=color, label=label,
                  linewidth=2.2 if experiment in BASELINES else 1.5)
        if n > 1:
            axis.fill_between(rows["task"], rows["mean"] - rows["sd"].fillna(0),
                              rows["mean"] + rows["sd"].fillna(0), color=color, alpha=0.2)


def _colors(experiments: list[str]) -> dict:
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10" if len(experiments) <= 10 else "tab20")
    colors = {e: palette(i % palette.N) for i, e in enumerate(experiments)}
    for baseline in BASELINES & set(colors):
        colors[baseline] = "black"
    return colors


# Columns whose comparison figure also draws the untrained control (task 0) of the section's
# first experiment: the probe at each task's classes, the others as one reference level.
CONTROL_COLUMNS = ("probe_acc", "probe_unseen_acc", "population_sparsity", "probe_all_acc")


def control_series(untrained: pd.DataFrame | None, experiment: str, column: str,
                   tasks: int) -> pd.DataFrame:
    """The untrained control of `experiment` for `column` after each task 1..`tasks`: rows
    task, mean, n (over seeds). The probe reads the untrained network at each task's seen
    classes (`probe_acc_after<t>`); other columns are the same at every task."""
    empty = pd.DataFrame(columns=["task", "mean", "n"])
    if untrained is None or untrained.empty or column not in CONTROL_COLUMNS:
        return empty
    rows = untrained[untrained["experiment"] == experiment]
    records = []
    for t in range(1, tasks + 1):
        name = f"probe_acc_after{t}" if column == "probe_acc" else column
        if name not in rows:
            continue
        values = pd.to_numeric(rows[name], errors="coerce").dropna()
        if len(values):
            records.append({"task": t, "mean": float(values.mean()), "n": len(values)})
    return pd.DataFrame(records, columns=["task", "mean", "n"]) if records else empty


def plot_comparison(table: pd.DataFrame, experiments: list[str], column: str, ylabel: str,
                    title: str, path: str | Path,
                    untrained: pd.DataFrame | None = None) -> pd.DataFrame:
    """One quantity after each task, one series per experiment on one axis (band: ±1 sd over
    seeds), and for the columns of CONTROL_COLUMNS the untrained network of the first
    experiment as a dotted grey line. Returns the plotted series (see `series_over_seeds`;
    the control's rows have experiment `untrained <name>`)."""
    from clexp.figures import _figure, save_figure

    series = series_over_seeds(table, experiments, column)
    figure, axis = _figure(figsize=(7, 4))
    if series.empty:
        axis.text(0.5, 0.5, "not measured in this run", ha="center", va="center",
                  transform=axis.transAxes)
    else:
        _draw_series(axis, series, _colors(experiments))
        reference = experiments[0]
        tasks = int(series["task"].max())
        control = control_series(untrained, reference, column, max(tasks, 1))
        if not control.empty:
            n = int(control["n"].min())
            label = f"untrained {reference} (task 0, n={n})"
            if tasks > 1:
                axis.plot(control["task"], control["mean"], color="grey", linestyle=":",
                          marker=".", label=label)
            else:
                axis.axhline(control["mean"].iloc[0], color="grey", linestyle=":",
                             label=label)
            series = pd.concat([series, control.assign(
                experiment=f"untrained {reference}", num_tasks=tasks, sd=float("nan"))[
                series.columns]], ignore_index=True)
        tasks = sorted(series.loc[series["num_tasks"] > 1, "task"].unique())
        if tasks:
            axis.set_xticks(tasks)
        axis.legend(fontsize=7, loc="best")
    axis.set_xlabel("after task")
    axis.set_ylabel(ylabel)
    if "acc" in column or "sparsity" in column:
        axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    save_figure(figure, path)
    return series


def retention_series(table: pd.DataFrame, experiments: list[str]) -> pd.DataFrame:
    """Accuracy on each earlier task j over the run (after tasks j..T), per experiment: rows
    experiment, eval_task, task, num_tasks, mean, sd, n. Tasks j < T of multi-task runs."""
    parts = []
    multi = table[(table["num_tasks"] > 1) & table["experiment"].isin(experiments)]
    for column in task_columns(multi):
        j = int(column.removeprefix("acc_task"))
        rows = multi[(multi["task"] >= j) & (j < multi["num_tasks"])]
        series = series_over_seeds(rows, experiments, column)
        series.insert(1, "eval_task", j)
        parts.append(series)
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["experiment", "eval_task", "task", "num_tasks", "mean",
                                     "sd", "n"])
    return pd.concat(parts, ignore_index=True)


def plot_retention(table: pd.DataFrame, experiments: list[str], title: str,
                   path: str | Path) -> pd.DataFrame:
    """One panel per earlier task j: accuracy on task j after each task from j on, every
    experiment on the panel's axis. Returns the plotted series (see `retention_series`)."""
    from clexp.figures import _figure, save_figure

    series = retention_series(table, experiments)
    panels = sorted(series["eval_task"].unique()) or [1]
    last = int(series["task"].max()) if not series.empty else 1
    figure, axes = _figure(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.6), sharey=True,
                           sharex=True, squeeze=False)
    colors = _colors(experiments)
    for axis, j in zip(axes[0], panels, strict=True):
        rows = series[series["eval_task"] == j]
        if rows.empty:
            axis.text(0.5, 0.5, "no multi-task run", ha="center", va="center",
                      transform=axis.transAxes)
        else:
            _draw_series(axis, rows, colors)
        axis.set_xticks(range(1, last + 1))
        axis.set_xlim(0.7, last + 0.3)
        axis.set_title(f"task {j}")
        axis.set_xlabel("after task")
        axis.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("accuracy on the task")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, fontsize=7, loc="lower center",
                      ncol=min(len(handles), 5))
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 * math.ceil(len(handles) / 5) if handles else 0, 1, 1))
    save_figure(figure, path)
    return series


def mean_matrices(table: pd.DataFrame, experiments: list[str]) -> dict[str, np.ndarray]:
    """The accuracy matrix of each multi-task experiment, averaged over seeds."""
    matrices = {}
    for experiment in experiments:
        rows = table[(table["experiment"] == experiment) & (table["num_tasks"] > 1)]
        if rows.empty:
            continue
        count = int(rows["num_tasks"].iloc[0])
        means = rows.groupby("task")[[f"acc_task{j}" for j in range(1, count + 1)]].mean()
        matrices[experiment] = means.to_numpy(dtype=float)
    return matrices


def plot_matrix_grid(table: pd.DataFrame, experiments: list[str], title: str,
                     path: str | Path) -> dict[str, np.ndarray]:
    """Small multiples: the mean accuracy matrix of each multi-task experiment, one colour
    scale. Returns the matrices drawn."""
    from clexp.figures import _figure, save_figure

    matrices = mean_matrices(table, experiments)
    count = max(len(matrices), 1)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure, axes = _figure(rows, columns, figsize=(max(2.6 * columns + 0.6, 5), 2.6 * rows + 0.8),
                           squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    image = None
    for index, (axis, (experiment, matrix)) in enumerate(
            zip(axes.flat, matrices.items(), strict=False)):
        axis.axis("on")
        axis.grid(False)
        image = axis.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
        size = matrix.shape[0]
        if size <= 6:
            for i in range(size):
                for j in range(size):
                    axis.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                              color="white" if matrix[i, j] < 0.6 else "black")
        axis.set_xticks(range(size), [str(j + 1) for j in range(size)])
        axis.set_yticks(range(size), [str(t + 1) for t in range(size)])
        axis.set_title(experiment, fontsize=9)
        axis.set_xlabel("evaluated task", fontsize=8)
        if index % columns == 0:
            axis.set_ylabel("after task", fontsize=8)
    if image is not None:
        figure.colorbar(image, ax=list(axes.flat), shrink=0.8, label="accuracy")
    else:
        axes[0][0].text(0.5, 0.5, "no multi-task run", ha="center", va="center")
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)
    return matrices


def plot_section(table: pd.DataFrame, experiments: list[str], section: str,
                 paths: dict[str, str], untrained: pd.DataFrame | None = None) -> dict:
    """Every comparison figure of one section (`paths`: figure name -> file), with the
    untrained control where it applies (`plot_comparison`); returns the data behind each
    figure by name."""
    label = section.replace("_", " ")
    drawn = {}
    for name, path in paths.items():
        column, ylabel = COMPARISON_FIGURES[name]
        if name == "retention":
            drawn[name] = plot_retention(
                table, experiments, f"Retention of each earlier task: {label}", path)
        elif name == "matrices":
            drawn[name] = plot_matrix_grid(
                table, experiments, f"Accuracy matrices (mean over seeds): {label}", path)
        else:
            drawn[name] = plot_comparison(
                table, experiments, column, ylabel, f"{ylabel.capitalize()}: {label}", path,
                untrained)
    return drawn
