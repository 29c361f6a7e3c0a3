"""The study's findings as data: each claim names the numbers it rests on, the rule that gives
its verdict and the figure that shows it (no torch).

A quantity is one number per run (experiment, seed), read from the checkpoint table
(`clexp.comparisons.checkpoint_table`: after the first or the last task) or from the summary
(`results/summary.csv`); the evidence is its mean ± sd over seeds, with n. A rule is a Python
comparison over the quantities' means, shown verbatim in the report. The verdict is
"holds" or "does not hold"; "not run" when an experiment or a measurement the claim needs is
absent from the run (a subset of the study, or a method not added yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run"


@dataclass(frozen=True)
class Quantity:
    """One number per run: `column` of the checkpoint table after the `at` ('first' or
    'last') task, or, with `at='summary'`, the summary's column."""

    experiment: str
    column: str
    at: str = "last"
    label: str = ""


@dataclass(frozen=True)
class Claim:
    """A finding: its text, the quantities (name -> Quantity) its rule compares, the rule
    (a comparison over the quantities' means, by name) and the comparison figure
    (`<section>/<figure>` of `clexp.comparisons`, or `study/<name>` for a study figure)
    that shows it."""

    key: str
    section: str
    text: str
    quantities: dict[str, Quantity]
    rule: str
    figure: str

    @property
    def experiments(self) -> list[str]:
        return list(dict.fromkeys(q.experiment for q in self.quantities.values()))


def Q(experiment: str, column: str, at: str = "last", label: str = "") -> Quantity:  # noqa: N802
    """Shorthand for a Quantity."""
    return Quantity(experiment, column, at, label)


_LABELS = {
    "val_acc": "accuracy on the seen classes",
    "old_acc": "accuracy on the earlier tasks",
    "probe_acc": "probe accuracy",
    "population_sparsity": "sparsity",
    "bias_mean": "mean hidden bias",
    "bias_median": "median hidden bias",
    "val_loss": "evaluation loss",
    "probe_unseen_acc": "probe on unseen digits",
    "fwt": "FWT",
    "untrained_acc": "untrained accuracy",
    "avg_acc": "ACC (class-IL)",
    "avg_acc_til": "ACC (task-IL)",
    "final_val_acc": "final accuracy",
    "acc_task_last": "accuracy on the last task",
}


def _one_run_claims(section, key, experiments, text, quantity, rule, figure):
    """The same claim for each experiment of a list (one row each)."""
    return [Claim(f"{key}_{e}", section, text.format(e=e), quantity(e), rule, figure)
            for e in experiments]


# ---- the claims (STUDY.md, "What the study found", then the sections and the baselines) ----

CLAIMS: list[Claim] = [
    Claim("seq_forgets", "Bounds",
          "Sequential plain training forgets almost completely: after the last task it "
          "predicts only the last task's digits",
          {"old": Q("seq", "old_acc"), "last_task": Q("seq", "acc_task_last"),
           "all": Q("seq", "val_acc")},
          "old < 0.05 and last_task > 0.9", "bounds/retention"),
    Claim("joint_upper_bound", "Bounds",
          "Joint training is the upper bound: far above sequential training",
          {"joint": Q("joint", "val_acc"), "seq": Q("seq", "val_acc")},
          "joint > seq + 0.5", "bounds/accuracy"),
    Claim("plain_units_die", "Normalisation",
          "Without normalisation hidden units die task after task: sparsity climbs from about "
          "one half after task 1 to well above that by the last task",
          {"first": Q("seq", "population_sparsity", "first"),
           "last": Q("seq", "population_sparsity")},
          "abs(first - 0.5) < 0.15 and last > first + 0.1", "normalisation/sparsity"),
    Claim("plain_bias_negative", "Normalisation",
          "Without normalisation the mean and median hidden-layer bias turn negative",
          {"mean": Q("seq", "bias_mean"), "median": Q("seq", "bias_median")},
          "mean < 0 and median < 0", "normalisation/bias_mean"),
    Claim("bn_sparsity_half", "Normalisation",
          "BatchNorm keeps sparsity near one half (and below the plain net's)",
          {"bn": Q("seq_bn", "population_sparsity"), "seq": Q("seq", "population_sparsity")},
          "abs(bn - 0.5) < 0.1 and bn < seq", "normalisation/sparsity"),
    Claim("probe_beats_head", "Representation",
          "A linear probe on h2 recovers far more than the network's own head: the "
          "representation of old digits survives",
          {"probe": Q("seq", "probe_acc"), "head": Q("seq", "val_acc")},
          "probe > head + 0.2", "representation/probe"),
    Claim("bn_keeps_representation", "Representation",
          "BN keeps the representation markedly better than the plain net",
          {"bn": Q("seq_bn", "probe_acc"), "seq": Q("seq", "probe_acc")},
          "bn > seq + 0.05", "representation/probe"),
    *_one_run_claims(
        "Dropout", "dropout_no_help", ["seq_dropout05", "seq_dropout02"],
        "Dropout does not prevent forgetting ({e})",
        lambda e: {"old": Q(e, "old_acc")}, "old < 0.2", "dropout/old_tasks"),
    *_one_run_claims(
        "Weight decay", "wd_no_help", ["seq_wd001", "seq_wd01", "seq_wd1", "seq_wd5"],
        "Weight decay does not prevent forgetting ({e})",
        lambda e: {"old": Q(e, "old_acc")}, "old < 0.2", "weight_decay/old_tasks"),
    Claim("l1_no_help", "Sparsity", "An L1 penalty does not prevent forgetting (seq_l1_1)",
          {"old": Q("seq_l1_1", "old_acc")}, "old < 0.2", "sparsity/old_tasks"),
    Claim("l1_lowers_loss", "Sparsity",
          "An L1 penalty lowers the evaluation loss (seq_l1_1 vs seq, after the last task)",
          {"l1": Q("seq_l1_1", "val_loss"), "seq": Q("seq", "val_loss")},
          "l1 < seq", "sparsity/val_loss"),
    Claim("l1_raises_sparsity", "Sparsity",
          "An L1 penalty raises sparsity (seq_l1_1 vs seq)",
          {"l1": Q("seq_l1_1", "population_sparsity"), "seq": Q("seq", "population_sparsity")},
          "l1 > seq", "sparsity/sparsity"),
    Claim("l1_raises_sparsity_joint", "Sparsity",
          "In joint training too, an L1 penalty raises sparsity (λ 1.0 vs 0)",
          {"l1": Q("joint_l1_1", "population_sparsity"),
           "plain": Q("joint", "population_sparsity")},
          "l1 > plain", "study/l1_sweep"),
    Claim("probe_unseen_transfer", "Forward transfer",
          "Features trained on the first task already separate the unseen digits 9 and 0 "
          "(probe well above chance, 0.5)",
          {"unseen": Q("seq_bn", "probe_unseen_acc", "first")},
          "unseen > 0.75", "forward_transfer/probe_unseen"),
    Claim("fwt_by_construction", "Forward transfer",
          "Class-incremental FWT measures nothing here: it equals −(untrained accuracy), "
          "since a one-head net never predicts classes it has not trained on",
          {"fwt": Q("seq", "fwt", "summary"), "untrained": Q("seq", "untrained_acc")},
          "abs(fwt + untrained) < 0.02", "forward_transfer/probe_unseen"),
    Claim("ogd_sparsity_low", "OGD",
          "OGD with a small learning rate keeps sparsity low (ogd_adam vs seq)",
          {"ogd": Q("ogd_adam", "population_sparsity"), "seq": Q("seq", "population_sparsity")},
          "ogd < seq", "ogd/sparsity"),
    Claim("ogd_improves_probe", "OGD",
          "OGD with a small learning rate improves the probe (ogd_adam vs seq)",
          {"ogd": Q("ogd_adam", "probe_acc"), "seq": Q("seq", "probe_acc")},
          "ogd > seq", "ogd/probe"),
    *_one_run_claims(
        "OGD", "ogd_bn_retains", ["ogd_adam_bn", "ogd_sgd_bn"],
        "OGD with BN retains some accuracy on old tasks ({e} vs seq_bn)",
        lambda e: {"ogd": Q(e, "old_acc"), "bn": Q("seq_bn", "old_acc")},
        "ogd > 0.05 and ogd > bn + 0.05", "ogd/old_tasks"),
    *_one_run_claims(
        "Baselines", "classil_close_to_seq", ["ewc", "online_ewc", "si", "lwf"],
        "Class-incremental: {e} stays close to plain sequential training",
        lambda e: {"method": Q(e, "val_acc"), "seq": Q("seq", "val_acc")},
        "method < seq + 0.15", "baselines/accuracy"),
    Claim("er_keeps_accuracy", "Baselines",
          "Class-incremental: experience replay keeps most of the accuracy",
          {"er": Q("er", "val_acc"), "seq": Q("seq", "val_acc")},
          "er > 0.5 and er > seq + 0.3", "baselines/accuracy"),
    Claim("til_seq_keeps", "Baselines",
          "Task-incremental: plain sequential training keeps most of each task",
          {"seq": Q("seq", "avg_acc_til", "summary")}, "seq > 0.8", "bounds/acc_til"),
    *_one_run_claims(
        "Baselines", "til_method_keeps", ["ewc", "online_ewc", "si", "lwf", "er", "agem"],
        "Task-incremental: {e} keeps nearly all of each task",
        lambda e: {"method": Q(e, "avg_acc_til", "summary")}, "method > 0.9",
        "baselines/acc_til"),
]


# ---- evaluation ----


def _per_run(quantity: Quantity, checkpoints: pd.DataFrame, summary: pd.DataFrame) -> list:
    """The quantity's value for every seed of its experiment (empty when not run)."""
    if quantity.at == "summary":
        rows = summary[summary["experiment"] == quantity.experiment]
        if quantity.column not in rows:
            return []
        return [float(v) for v in rows[quantity.column]]
    rows = checkpoints[checkpoints["experiment"] == quantity.experiment]
    if rows.empty:
        return []
    values = []
    for _, run in rows.groupby("seed"):
        run = run.sort_values("task")
        row = run.iloc[0] if quantity.at == "first" else run.iloc[-1]
        column = quantity.column
        if column == "acc_task_last":
            column = f"acc_task{int(row['num_tasks'])}"
        if column not in row.index:
            return []
        values.append(float(row[column]))
    return values


def _stats(values: list[float]) -> tuple[float, float, int]:
    clean = [v for v in values if not math.isnan(v)]
    n = len(clean)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(clean) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1)) if n > 1 else math.nan
    return mean, sd, n


def _format(name: str, quantity: Quantity, mean: float, sd: float, n: int) -> str:
    label = quantity.label or _LABELS.get(quantity.column, quantity.column)
    when = {"first": " after task 1", "last": "", "summary": ""}[quantity.at]
    spread = f" ± {sd:.3f}" if n > 1 else ""
    return f"{name} = {quantity.experiment} {label}{when}: {mean:.3f}{spread} (n={n})"


def evaluate_claim(claim: Claim, checkpoints: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """The claim's evidence, rule and verdict as one row of the findings table."""
    means, evidence, missing = {}, [], []
    for name, quantity in claim.quantities.items():
        mean, sd, n = _stats(_per_run(quantity, checkpoints, summary))
        if n == 0:
            missing.append(f"{quantity.experiment} {quantity.column}")
            continue
        means[name] = mean
        evidence.append(_format(name, quantity, mean, sd, n))
    if missing:
        verdict = NOT_RUN
        evidence.append("not in this run: " + ", ".join(missing))
    else:
        verdict = HOLDS if eval(claim.rule, {"__builtins__": {}, "abs": abs}, means) else FAILS
    return {
        "key": claim.key, "section": claim.section, "finding": claim.text,
        "experiments": " ".join(claim.experiments), "evidence": "; ".join(evidence),
        "rule": claim.rule, "verdict": verdict, "figure": claim.figure,
    }


def findings_table(checkpoints: pd.DataFrame, summary: pd.DataFrame,
                   claims: list[Claim] | None = None) -> pd.DataFrame:
    """Every claim evaluated on this run's checkpoint table and summary (one row each).

    Columns: key, section, finding, experiments, evidence, rule, verdict, figure."""
    rows = [evaluate_claim(c, checkpoints, summary) for c in (claims or CLAIMS)]
    return pd.DataFrame(rows, columns=["key", "section", "finding", "experiments", "evidence",
                                       "rule", "verdict", "figure"])
