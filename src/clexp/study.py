"""Tables across experiments: the sweeps and comparisons of the study (no torch).

Each table is built from the experiments of the run that fit it, chosen by their settings
(not by name), so a user's own experiments join the comparisons they belong to.

- `l1_sweep`: joint training without normalisation or dropout, by L1 lambda;
- `weight_decay_sweep`: plain sequential training with early stopping, one protocol, by weight
  decay;
- `eval_loss_comparison`: evaluation loss per task of plain, BN and OGD + BN sequential runs;
- `forward_transfer_table`: the probe on not-yet-trained classes after every task;
- `representation_table`: per class, saliency norm, probe coefficient norm and probe accuracy;
- `scenario_table`: the reference methods in the three scenarios (van de Ven & Tolias 2019,
  Table 4's layout), ACC mean and sd over seeds.
"""

from __future__ import annotations

import pandas as pd

# `method` is absent from the settings of plain sequential (and OGD) runs.
PLAIN = {"norm": "none", "dropout": 0.0, "l1_activation": 0.0, "ogd": False, "method": None}


def _variant(settings: dict) -> bool:
    """A continual-learning method other than OGD, an OGD/optimizer variant (OGD-GTL
    included), a scenario other than class-incremental, or another protocol (other hidden
    widths, an iteration budget, Adam): such runs form their own comparisons and stay out of
    the intervention sweeps."""
    return bool(settings.get("method") or settings.get("reset_optimizer")
                or settings.get("ogd_project", "gradient") != "gradient"
                or settings.get("ogd_directions", "mean_loss") != "mean_loss"
                or settings.get("scenario", "class") != "class"
                or _other_protocol(settings))


def _other_protocol(settings: dict) -> bool:
    """Trained at a protocol other than the study's: other hidden widths, an iteration budget
    per task or the Adam optimizer (settings absent from the study's runs)."""
    return bool(settings.get("hidden") or settings.get("iterations") is not None
                or settings.get("optimizer") == "adam")


def _matches(settings: dict, **wanted) -> bool:
    return all(settings.get(key) == value for key, value in wanted.items())


def _final_means(summary: pd.DataFrame) -> pd.DataFrame:
    numeric = summary.drop(columns=["seed"]).groupby("experiment", sort=False).mean()
    return numeric.reset_index()


def l1_sweep(summary: pd.DataFrame, settings: dict[str, dict]) -> pd.DataFrame:
    """Lambda vs final accuracy, sparsity and evaluation loss (means over seeds)."""
    chosen = [e for e, s in settings.items()
              if _matches(s, joint=True, norm="none", dropout=0.0, ogd=False)
              and not _variant(s)]
    table = _final_means(summary[summary["experiment"].isin(chosen)])
    table.insert(1, "l1_activation", [settings[e]["l1_activation"] for e in table["experiment"]])
    columns = ["experiment", "l1_activation", "final_val_acc", "final_sparsity",
               "final_val_loss", "final_probe_acc"]
    return table[columns].sort_values("l1_activation").reset_index(drop=True)


# Settings a weight-decay sweep point may differ in: the knob itself, the name, what only the
# evaluation reads, and `epochs`, which early stopping replaces by `max_epochs`.
SWEEP_FREE_KEYS = {"name", "weight_decay", "epochs", "probe_unseen", "probe_all_classes",
                   "tsne_h1"}


def weight_decay_sweep_experiments(settings: dict[str, dict]) -> list[str]:
    """The experiments of the weight-decay sweep, in config order: one protocol only.

    Candidates are plain sequential AdamW runs with early stopping on training accuracy (the
    study's sweep: stop at 0.98, up to `max_epochs`); a run with a fixed number of epochs
    (`seq`) trains for a different time and does not join. Of the candidates, those sharing
    every other training setting with the most others form the sweep (ties: the protocol of
    the first in config order), so no line joins two protocols.
    """
    groups: dict[str, list[str]] = {}
    for experiment, s in settings.items():
        if not (_matches(s, joint=False, optimizer="adamw", **PLAIN)
                and s.get("stop_at_train_acc") is not None):
            continue
        protocol = repr(sorted((k, v) for k, v in s.items() if k not in SWEEP_FREE_KEYS))
        groups.setdefault(protocol, []).append(experiment)
    return max(groups.values(), key=len) if groups else []


def weight_decay_sweep(summary: pd.DataFrame, settings: dict[str, dict]) -> pd.DataFrame:
    """Weight decay vs final accuracy, probe, sparsity and forgetting (means over seeds), over
    the experiments of `weight_decay_sweep_experiments`."""
    chosen = weight_decay_sweep_experiments(settings)
    table = _final_means(summary[summary["experiment"].isin(chosen)])
    table.insert(1, "weight_decay", [settings[e]["weight_decay"] for e in table["experiment"]])
    table.insert(2, "stop_at_train_acc",
                 [settings[e]["stop_at_train_acc"] for e in table["experiment"]])
    columns = ["experiment", "weight_decay", "stop_at_train_acc", "final_val_acc",
               "final_probe_acc", "final_sparsity", "avg_forgetting", "total_epochs"]
    return table[columns].sort_values(["weight_decay", "experiment"]).reset_index(drop=True)


def eval_loss_groups(settings: dict[str, dict]) -> dict[str, str]:
    """experiment -> 'plain', 'BN' or 'OGD + BN' for the evaluation-loss comparison."""
    groups = {}
    for experiment, s in settings.items():
        if s["joint"] or s["dropout"] or s["l1_activation"] or _variant(s):
            continue
        if s["ogd"] and s["norm"] == "batch":
            groups[experiment] = "OGD + BN"
        elif not s["ogd"] and s["norm"] == "batch" and s["stop_at_train_acc"] is None:
            groups[experiment] = "BN"
        elif (not s["ogd"] and s["norm"] == "none" and s["stop_at_train_acc"] is None
              and s["weight_decay"] == 0.01):
            groups[experiment] = "plain"
    return groups


def eval_loss_comparison(curves: pd.DataFrame, settings: dict[str, dict]) -> pd.DataFrame:
    """Evaluation loss on the seen classes after each task, mean over seeds.

    `curves` holds the run curves of every run with `experiment` and `seed` columns.
    """
    groups = eval_loss_groups(settings)
    chosen = curves[curves["experiment"].isin(groups)]
    table = chosen.groupby(["experiment", "task"], sort=False)["val_loss"].mean().reset_index()
    table.insert(1, "group", table["experiment"].map(groups))
    return table


def forward_transfer_table(metrics: list[dict]) -> pd.DataFrame:
    """The probe on the not-yet-trained classes after every task, where it was asked."""
    records = [
        {"experiment": m["experiment"], "seed": m["seed"], "task": m["task"],
         "first_task": str(m["tasks"][0]), "unseen_classes": str(m["probe_unseen_classes"]),
         "probe_unseen_acc": m["probe_unseen_acc"], "probe_all_acc": m.get("probe_all_acc")}
        for m in metrics if m.get("probe_unseen_acc") is not None
    ]
    columns = ["experiment", "seed", "task", "first_task", "unseen_classes",
               "probe_unseen_acc", "probe_all_acc"]
    return pd.DataFrame(records, columns=columns)


def representation_table(metrics: list[dict]) -> pd.DataFrame:
    """Representation strength three ways, per experiment, seed, task and seen class."""
    records = []
    for m in metrics:
        for cls in m["classes_seen"]:
            key = str(cls)
            records.append({
                "experiment": m["experiment"], "seed": m["seed"], "task": m["task"],
                "class": cls,
                "saliency_norm": (m.get("saliency_norm") or {}).get(key),
                "probe_coef_norm": (m.get("probe_coef_norm") or {}).get(key),
                "probe_acc": (m.get("probe_per_class_acc") or {}).get(key),
            })
    return pd.DataFrame(records)


SCENARIO_COLUMNS = {"task": "Task-IL", "domain": "Domain-IL", "class": "Class-IL"}
# Rows of the scenario table, in Table 4's order: (label, group).
METHOD_ROWS = {
    "none": ("None (lower bound)", "Baselines"),
    "joint": ("Joint (upper bound)", "Baselines"),
    "ewc": ("EWC", "Regularisation"),
    "online_ewc": ("Online EWC", "Regularisation"),
    "si": ("SI", "Regularisation"),
    "lwf": ("LwF", "Distillation"),
    "er": ("ER (500 images)", "Replay"),
    "agem": ("A-GEM (500 images)", "Replay"),
}


def method_key(settings: dict) -> str | None:
    """The reference method a run's settings train, as a key of METHOD_ROWS (`none`, `joint`,
    `ewc`, `online_ewc`, `si`, `lwf`, `er`, `agem`), or None: another method (OGD), or a
    method on top of joint training. Says nothing of the protocol."""
    method = settings.get("method") or ("joint" if settings.get("joint") else "none")
    if settings.get("ogd"):
        return None
    if method == "ewc" and settings.get("ewc_online"):
        method = "online_ewc"
    if method not in METHOD_ROWS or (settings.get("joint") and method != "joint"):
        return None
    return method


def scenario_row(settings: dict) -> tuple[str, str] | None:
    """(method key, variant) of a run for the scenario table, or None when the run is not
    a reference method trained at the study's protocol (plain network: no normalisation,
    dropout, L1 or OGD, AdamW at a fixed number of epochs). The variant says how the method's
    strength was set: `tuned` (chosen on the validation split), `default` (the option's
    default or the config's value), or empty for methods without a strength."""
    if not (_matches(settings, norm="none", dropout=0.0, l1_activation=0.0, ogd=False,
                     optimizer="adamw") and settings.get("stop_at_train_acc") is None
            and not settings.get("reset_optimizer") and not _other_protocol(settings)):
        return None
    method = method_key(settings)
    if method is None:
        return None
    if method in ("ewc", "online_ewc", "si", "lwf"):
        return method, "tuned" if settings.get("tuned") else "default"
    return method, ""


def scenario_table(summary: pd.DataFrame, settings: dict[str, dict]) -> pd.DataFrame:
    """One row per reference method (and strength: tuned or default), one group of columns
    per scenario: the experiment, ACC (`avg_acc`: mean accuracy over the tasks after the
    last one, in the run's own scenario) mean, sample sd and n over seeds. A cell with two
    candidate experiments keeps the first in config order."""
    cells: dict[tuple, dict] = {}
    for experiment, s in settings.items():
        row = scenario_row(s)
        if row is None:
            continue
        scenario = s.get("scenario", "class")
        values = summary.loc[summary["experiment"] == experiment, "avg_acc"].dropna()
        cells.setdefault((row, scenario), {
            "experiment": experiment, "mean": float(values.mean()) if len(values) else None,
            "sd": float(values.std()) if len(values) > 1 else None, "n": int(len(values))})
    keys = sorted({row for row, _ in cells},
                  key=lambda r: (list(METHOD_ROWS).index(r[0]), r[1] != "tuned", r[1]))
    records = []
    for method, variant in keys:
        label, group = METHOD_ROWS[method]
        record = {"group": group, "method": label, "strength": variant}
        for scenario in SCENARIO_COLUMNS:
            cell = cells.get(((method, variant), scenario), {})
            for field in ("experiment", "mean", "sd", "n"):
                record[f"{scenario}_{field}"] = cell.get(field)
        records.append(record)
    columns = ["group", "method", "strength"] + [f"{s}_{f}" for s in SCENARIO_COLUMNS
                                                 for f in ("experiment", "mean", "sd", "n")]
    return pd.DataFrame(records, columns=columns)
