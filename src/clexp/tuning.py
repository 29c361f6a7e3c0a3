"""Choosing an experiment's settings on a validation split carved from the training split.

The evaluation split (MNIST's official test split) gives every reported number and never
chooses anything. A setting such as EWC's lambda is chosen instead on the *validation split*: a
class-balanced `tuning.validation_fraction` (default 10 %) of the training split, drawn per
class with numpy's `default_rng(tuning.validation_seed)` (default 0, independent of the run
seeds; `round(fraction * count)` images of each class). A grid point trains on the training
split without these images and is measured on them only.

Grid syntax (`config.yaml`): an experiment entry may hold

    class_online_ewc:
      method: ewc
      ewc_online: true
      tune: {ewc_lambda: [1, 100, 1e4], ewc_gamma: [0.5, 0.9, 1.0]}

Every training setting of an experiment may be tuned (two values or more, each checked
against that setting's schema), except `base`, `tune`, the evaluation-only settings
(`probe_unseen`, `probe_all_classes`, `tsne_h1`) and the settings that decide the shape of the
run's DAG before anything is chosen (`tasks`, `joint`, `method`, `ogd`, `scenario`).
Several settings form the full product grid. `tune` is inherited through `base:` like any
key (`tune: null` in the derived entry switches it off); a setting cannot be both given a
value and tuned.

Point names (folder names under `results/tuning/<experiment>/`): `<setting>-<value>` joined
by `__`, settings in the order written, e.g. `ewc_lambda-1e4__ewc_gamma-0.9`. A value is
written as `f"{v:g}"` with the exponent shortened (1e+06 -> `1e6`, 1e-05 -> `1e-5`), and in
exponent form wherever that is at least two characters shorter (10000 -> `1e4`, 0.0001 ->
`1e-4`; but `100`, `1000`, `0.001`, `0.01` stay); booleans are `true`/`false`, null `null`.

Selection (`select_setting`): the point with the highest mean validation ACC (mean over tasks
of each task's validation accuracy after the last task, in the run's scenario) over
`tuning.selection_seeds`; a tie goes to the first point in grid order (the order of the
product: the first setting varies slowest). The chosen point lying at the smallest or largest
value of a setting is flagged (`at_edge`): the grid should then be widened.

The tuned experiment itself trains on the whole training split at the chosen values, through
the DAG: its resolved settings hold `None` for each tuned setting and `tuned` (the settings,
the selection file, the grid), and `with_selection` fills the chosen values in at job time.

Files: `results/tuning/<experiment>/<point>/seed<seed>/validation.json` (`experiment`,
`point`, `seed`, `settings` (the point's resolved settings), `values` (the tuned settings'
values), `per_task_acc` (validation accuracy of each task after the last task), `acc` (their
mean), `epochs_run` (per task), `validation_images`, `training_images`);
`results/tuning/<experiment>/selection.csv` (`SELECTION_COLUMNS` described in
`selection_table`); `results/tuning/<experiment>/sweep.png`.
"""

from __future__ import annotations

import copy
import csv
import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from clexp.errors import ConfigError

# The selection file of a tuned experiment: named in its resolved settings (so the workflow's
# pattern in common.smk is this one).
SELECTION_FILE = "results/tuning/{experiment}/selection.csv"
TUNING_DEFAULTS = {"validation_fraction": 0.1, "validation_seed": 0, "selection_seeds": [0]}
# Settings that cannot be tuned, and why.
UNTUNABLE = {
    "base": "names another experiment",
    "tune": "holds the grid itself",
    "probe_unseen": "only changes what the evaluation measures",
    "probe_all_classes": "only changes what the evaluation measures",
    "tsne_h1": "only changes what the evaluation measures",
    "tasks": "decides the run's checkpoints before anything is chosen",
    "joint": "decides the run's checkpoints before anything is chosen",
    "method": "decides which options the run has before anything is chosen",
    "ogd": "decides which options the run has before anything is chosen",
    "ogd_directions": "decides which options the run has before anything is chosen",
    "scenario": "decides the network's outputs and what every number measures",
}
POINT_SEPARATOR = "__"


def format_value(value) -> str:
    """A grid value as it appears in a point name (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        text = _short_exponent(f"{value:g}")
        if value != 0 and math.isfinite(value):
            exponent = _short_exponent(f"{value:e}".split("e")[0].rstrip("0").rstrip(".")
                                       + "e" + f"{value:e}".split("e")[1])
            if len(exponent) <= len(text) - 2:
                return exponent
        return text
    return str(value)


def _short_exponent(text: str) -> str:
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def point_name(values: Mapping) -> str:
    """`<setting>-<value>` joined by `__`, in the order of `values`."""
    return POINT_SEPARATOR.join(f"{k}-{format_value(v)}" for k, v in values.items())


def grid_points(grid: Mapping) -> dict[str, dict]:
    """Point name -> the tuned settings' values, for the product of `grid` (setting -> values),
    in grid order (the first setting varies slowest)."""
    settings = list(grid)
    points = {}
    for combination in itertools.product(*(grid[s] for s in settings)):
        values = dict(zip(settings, combination, strict=True))
        name = point_name(values)
        if name in points:
            raise ConfigError(f"tune: the values {points[name]} and {values} have the same point "
                              f"name {name!r}; give values that differ in their first 6 "
                              "significant digits.")
        points[name] = values
    return points


def tuned_placeholder(name: str, grid: Mapping) -> dict:
    """The `tuned` entry of a tuned experiment's resolved settings."""
    return {"settings": list(grid), "selection": SELECTION_FILE.format(experiment=name),
            "grid": {k: list(v) for k, v in grid.items()}}


def expand_grid(config: Mapping, name: str) -> dict[str, dict]:
    """Point name -> the resolved settings of experiment `name` at that point (its `name`:
    `<experiment>.<point>`); empty when the experiment has no `tune`."""
    from clexp.config import resolve_experiment, tune_grid

    grid = tune_grid(config, name)
    if not grid:
        return {}
    return {point: resolve_experiment(config, name, point=(point, values))
            for point, values in grid_points(grid).items()}


def tuning_settings(config: Mapping) -> dict:
    """The config's `tuning` block with its defaults."""
    return {**TUNING_DEFAULTS, **(config.get("tuning") or {})}


# ---- the validation split ----

def validation_indices(train_labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the validation images: `round(fraction * count)` of each class, drawn
    with `default_rng(seed)` class by class in increasing class order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(train_labels):
        members = np.flatnonzero(train_labels == cls)
        count = round(fraction * len(members))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def validation_data(data: Mapping, fraction: float, seed: int) -> dict:
    """The data a grid point sees: `train_*` the training split without the validation
    images, `eval_*` the validation images. The evaluation split is not in it."""
    held_out = validation_indices(data["train_labels"], fraction, seed)
    keep = np.ones(len(data["train_labels"]), dtype=bool)
    keep[held_out] = False
    return {
        "train_images": data["train_images"][keep], "train_labels": data["train_labels"][keep],
        "eval_images": data["train_images"][held_out],
        "eval_labels": data["train_labels"][held_out],
    }


# ---- one grid point ----

def validation_accuracy(model, run: Mapping, images: np.ndarray, labels: np.ndarray,
                        target) -> list[float]:
    """Accuracy of each task of `run` on the validation images of its classes, in the run's
    scenario, with the model in evaluation mode."""
    import torch

    from clexp.scenario import correct_np
    from clexp.training import to_tensors

    model.eval()
    with torch.no_grad():
        x, _ = to_tensors(images, labels, target)
        logits = model(x)[0].cpu().numpy()
    correct = correct_np(run, logits, labels)
    result = []
    for task in run["tasks"]:
        mask = np.isin(labels, task)
        result.append(float(correct[mask].mean()) if mask.any() else float("nan"))
    return result


def train_point(settings: Mapping, values: Mapping, seed: int, data: Mapping,
                device: str = "auto") -> dict:
    """Train every task of a grid point (`settings`: one of `expand_grid`'s values; `values`:
    its tuned settings' values) on `data` (from `validation_data`) and measure it on the
    validation images: the validation.json dict. Raises DivergenceError naming the point,
    seed and task."""
    import torch

    from clexp.config import training_config
    from clexp.training import new_run, resolve_device, train_run_task

    run = training_config(settings)
    where = f"experiment {run['name']} seed {seed}"
    target = resolve_device(device)
    torch.set_flush_denormal(True)  # as clexp.training.run_training_task: same numbers, faster
    state = new_run(run, seed, data, target)
    epochs = []
    for task in range(1, len(run["tasks"]) + 1):
        result, _ = train_run_task(state, run, task, data, target, where, instruments=False)
        epochs.append(int(result["epochs_run"]))
    per_task = validation_accuracy(state.model, run, data["eval_images"], data["eval_labels"],
                                   target)
    experiment, point = run["name"].split(".", 1)
    return {
        "experiment": experiment, "point": point, "seed": seed, "settings": dict(settings),
        "values": dict(values),
        "per_task_acc": per_task, "acc": float(np.mean(per_task)), "epochs_run": epochs,
        "validation_images": int(len(data["eval_labels"])),
        "training_images": int(len(data["train_labels"])),
    }


def tune_point(settings: Mapping, values: Mapping, seed: int, data_path, tuning: Mapping,
               device: str = "auto") -> dict:
    """`train_point` on the dataset file's validation split (`tuning`: the config's block)."""
    from clexp.data import load_dataset

    data = validation_data(load_dataset(data_path), tuning["validation_fraction"],
                           tuning["validation_seed"])
    return train_point(settings, values, seed, data, device)


# ---- the selection ----

def selection_table(grid: Mapping, results: Mapping[str, Mapping[int, float]]):
    """The selection as a DataFrame, one row per point in grid order: `point`, one column per
    tuned setting, `acc_seed<s>` (validation ACC) per selection seed, `mean`, `chosen`
    (true for exactly one row: the highest mean, the first in grid order on a tie) and
    `at_edge` (on the chosen row: the settings, `;`-joined, at whose smallest or largest grid
    value it lies; empty otherwise). `results`: point -> seed -> validation ACC."""
    import pandas as pd

    points = grid_points(grid)
    seeds = sorted({s for by_seed in results.values() for s in by_seed})
    rows = []
    for point, values in points.items():
        if point not in results:
            raise ConfigError(f"selection: no validation result for grid point {point!r}")
        row = {"point": point, **values}
        row.update({f"acc_seed{s}": float(results[point][s]) for s in seeds})
        row["mean"] = float(np.mean([results[point][s] for s in seeds]))
        rows.append(row)
    table = pd.DataFrame(rows)
    means = table["mean"].to_numpy()
    if np.isnan(means).all():
        raise ConfigError("selection: every grid point's validation ACC is NaN")
    best = int(np.nanargmax(means))  # the first of equal maxima: grid order
    table["chosen"] = [i == best for i in range(len(table))]
    chosen = points[table.loc[best, "point"]]
    edges = [s for s in grid if _at_edge(chosen[s], grid[s])]
    table["at_edge"] = ["" if i != best else ";".join(edges) for i in range(len(table))]
    return table


def _at_edge(value, values) -> bool:
    if len(values) < 2:
        return False
    try:
        ordered = sorted(values)
    except TypeError:  # values that have no order (mixed types): the listed ends
        ordered = list(values)
    return value == ordered[0] or value == ordered[-1]


def chosen_point(path) -> str:
    """The name of the chosen point in a selection file."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("chosen") == "True"]
    if len(rows) != 1:
        raise ConfigError(f"{path}: expected exactly one row with chosen True, found "
                          f"{len(rows)}; delete the file and rerun the workflow to rebuild it.")
    return rows[0]["point"]


def with_selection(run: Mapping, root=".") -> dict:
    """`run`'s settings with the chosen values filled in from its selection file (`root`:
    the folder the file's path is relative to); `tuned` then also names the `chosen` point.
    A run without `tuned` (or already filled) is returned as it is."""
    tuned = run.get("tuned")
    if not tuned or "chosen" in tuned:
        return run
    path = Path(root) / tuned["selection"]
    if not path.is_file():
        raise ConfigError(f"{path}: the selection of experiment {run['name']} is missing; "
                          "build it first (snakemake ... " + tuned["selection"] + ").")
    point = chosen_point(path)
    points = grid_points(tuned["grid"])
    if point not in points:
        raise ConfigError(f"{path}: the chosen point {point!r} is not in the grid of "
                          f"experiment {run['name']} (the grid changed); delete the file and "
                          "rerun the workflow.")
    filled = copy.deepcopy(dict(run))
    filled.update(points[point])
    filled["tuned"] = {**filled["tuned"], "chosen": point}
    return dict(sorted(filled.items()))


def sweep_series(table) -> dict:
    """What the sweep figure draws, from a selection table: `x` (the first tuned setting),
    `series` (one per value of the second tuned setting, or one: label -> (x values, mean
    validation ACC)), `chosen` (x, ACC), `log_x`."""
    settings = [c for c in table.columns
                if c not in ("point", "mean", "chosen", "at_edge") and not c.startswith("acc_seed")]
    x = settings[0]
    groups = ([(f"{settings[1]} = {format_value(v)}", table[table[settings[1]] == v])
               for v in dict.fromkeys(table[settings[1]])] if len(settings) > 1
              else [("validation ACC", table)])
    series = {label: (list(rows[x]), list(rows["mean"])) for label, rows in groups}
    values = [v for v in table[x] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    log_x = (len(values) == len(table) and min(values) > 0 and max(values) > 10 * min(values))
    chosen = table[table["chosen"]].iloc[0]
    return {"x": x, "series": series, "chosen": (chosen[x], float(chosen["mean"])),
            "log_x": bool(log_x)}
