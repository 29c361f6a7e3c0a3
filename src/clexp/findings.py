"""The study's findings as data: each claim names the numbers it rests on, the comparisons
that give its verdict, and the figure that shows it (no torch).

A quantity is one number per run (experiment, seed), read from the checkpoint table
(`clexp.comparisons.checkpoint_table`: after a given task, the first or the last one, or
the mean over the tasks where it is measured), from the summary (`results/summary.csv`), or
from the run's untrained control (`clexp.comparisons.untrained_table`: the same network
before training, measured with the same instruments).

A claim holds when every one of its parts holds. A part compares an effect with a margin
taken from the claim's wording (0 for "better", larger for "markedly" or "far"):

- `Greater(a, b, margin)`: a − b > margin (b a quantity or a number);
- `Less(a, b, margin)`: a − b < −margin;
- `Equivalent(a, b, margin)`: |a − b| < margin ("close to", "does not help", "≈");
- `Monotone(quantity, ...)`: rises (or falls) from each task to the next ("task after task");
- `Ordered([a, b, c], ...)`: a > b > c.

The verdict comes from an interval over seeds, not from the means: the effect's one-sided 95 %
bounds from Student's t (paired over the seeds when both quantities come from the same runs,
Welch's t for two experiments), with a floor under the sd so that identical seeds do not give
certainty. A part **holds** when its interval clears the margin at the claim's Holm level
(multiplicity adjusted across the table: a claim's p-value is the largest of its parts', as
it holds only when all do), **does not hold** when its interval lies wholly on the wrong side,
is **inconclusive** otherwise and **untested (n = 1)** with fewer than two seeds. Equivalence
is tested as two one-sided tests. A claim whose experiment or measurement is absent from the
run, or whose runs are not complete, is **not run**.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
UNTESTED, NOT_RUN = "untested (n = 1)", "not run"
VERDICTS = [HOLDS, FAILS, INCONCLUSIVE, UNTESTED, NOT_RUN]
# One-sided level of each interval bound, and of the table after Holm's adjustment.
ALPHA = 0.05
# The smallest sd an effect is given, so that identical seeds do not give certainty: 0.001,
# about the binomial sd of an accuracy near 0 or 1 measured on the ~2,000 evaluation images of
# a task. Claims on quantities of another scale (biases, losses, epochs) give their own.
SD_FLOOR = 0.001

COLUMNS = ["key", "section", "finding", "experiments", "evidence", "effect", "ci_low",
           "ci_high", "margin", "comparison", "verdict", "figure", "n", "p_value",
           "holm_alpha", "claim_verdict"]


@dataclass(frozen=True)
class Quantity:
    """One number per run: `column` of the checkpoint table after task `at` ('first',
    'last', a task number, or 'mean' over the tasks where it is measured), or, with
    `at='summary'`, the summary's column; 'mean' is over the tasks after the first (the tasks
during which earlier ones can be forgotten). `control` reads the run's untrained network instead
    (task 0; a probe column at the same task's classes, see `untrained_table`)."""

    experiment: str
    column: str
    at: str | int = "last"
    control: bool = False
    label: str = ""

    def describe(self) -> str:
        label = self.label or LABELS.get(self.column, self.column)
        when = {"first": " after task 1", "last": "", "summary": "",
                "mean": " (mean over tasks)"}.get(self.at, f" after task {self.at}")
        who = f"untrained {self.experiment}" if self.control else self.experiment
        return f"{who} {label}{when}"


def Q(experiment: str, column: str, at: str | int = "last", label: str = "") -> Quantity:  # noqa: N802
    """Shorthand for a Quantity."""
    return Quantity(experiment, column, at, False, label)


def U(experiment: str, column: str, at: str | int = "last", label: str = "") -> Quantity:  # noqa: N802
    """The untrained control of `experiment`, measured like Q(experiment, column, at)."""
    return Quantity(experiment, column, at, True, label)


LABELS = {
    "val_acc": "accuracy on the seen classes",
    "old_acc": "accuracy on the earlier tasks",
    "probe_acc": "probe accuracy (seen classes)",
    "probe_old_acc": "probe accuracy on the earlier tasks' digits",
    "probe_all_acc": "probe accuracy on all ten digits",
    "probe_min_class_acc": "lowest per-digit probe accuracy",
    "population_sparsity": "sparsity",
    "dead_units": "fraction of dead hidden units",
    "bias_mean": "mean hidden bias",
    "bias_median": "median hidden bias",
    "val_loss": "evaluation loss",
    "probe_unseen_acc": "probe on unseen digits",
    "task_share": "last task's share of the evaluation images",
    "current_task_mass": "probability on the current task's digits (earlier tasks' images)",
    "epochs_run": "epochs per task",
    "previous_acc_before": "previous task's accuracy before the new task",
    "previous_acc_b10": "previous task's accuracy after 10 batches",
    "previous_acc_b50": "previous task's accuracy after 50 batches",
    "previous_acc_mid": "previous task's accuracy after the middle epoch",
    "previous_acc_end": "previous task's accuracy after the last epoch",
    "log_update_fc1": "log10 relative change of fc1 over the task",
    "log_update_fc2": "log10 relative change of fc2 over the task",
    "log_update_fc3": "log10 relative change of fc3 (output) over the task",
    "avg_acc": "ACC (class-IL)",
    "avg_acc_til": "ACC (masked to each task's classes)",
    "final_val_acc": "final accuracy",
    "acc_task_last": "accuracy on the last task",
}


# ---- comparisons ----


@dataclass(frozen=True)
class Part:
    """One comparison of a claim: effect = a − b (b a quantity or a number), tested against
    `margin` in the direction `sense` ('>': effect > margin, '<': effect < margin, '|<|':
    |effect| < margin). `floor`: the smallest sd the effect is given."""

    a: Quantity
    b: Quantity | float
    sense: str
    margin: float
    comparison: str
    floor: float = SD_FLOOR
    name: str = ""


@dataclass(frozen=True)
class _OneSided:
    """a − b past the margin on the side `sense` names (b a quantity, or a number: then a
    threshold, and the effect is a itself)."""

    a: Quantity
    b: Quantity | float
    margin: float = 0.0
    floor: float = SD_FLOOR
    sense: ClassVar[str] = ">"
    comparison: ClassVar[str] = "greater"

    def parts(self, tasks: int) -> list[Part]:
        sign = 1.0 if self.sense == ">" else -1.0
        if not isinstance(self.b, Quantity):
            return [Part(self.a, 0.0, self.sense, float(self.b) + sign * self.margin,
                         self.comparison, self.floor)]
        return [Part(self.a, self.b, self.sense, sign * self.margin + 0.0, self.comparison,
                     self.floor)]


@dataclass(frozen=True)
class Greater(_OneSided):
    """a > b + margin."""


@dataclass(frozen=True)
class Less(_OneSided):
    """a < b − margin (a negative margin allows a up to |margin| above b: "not better")."""

    sense: ClassVar[str] = "<"
    comparison: ClassVar[str] = "less"


@dataclass(frozen=True)
class Equivalent:
    """|a − b| < margin (two one-sided tests)."""

    a: Quantity
    b: Quantity | float
    margin: float
    floor: float = SD_FLOOR

    def parts(self, tasks: int) -> list[Part]:
        return [Part(self.a, self.b, "|<|", self.margin, "equivalent", self.floor)]


@dataclass(frozen=True)
class Monotone:
    """`column` of `experiment` rises (`rising`) or falls from each task to the next, by more
    than `margin` each step, over tasks `first`..T (T: the run's last task)."""

    experiment: str
    column: str
    rising: bool = True
    margin: float = 0.0
    floor: float = SD_FLOOR
    first: int = 1

    def parts(self, tasks: int) -> list[Part]:
        parts = []
        for t in range(self.first, tasks):
            later = Q(self.experiment, self.column, t + 1)
            earlier = Q(self.experiment, self.column, t)
            parts.append(Part(later, earlier, ">" if self.rising else "<",
                              self.margin if self.rising or not self.margin else -self.margin,
                              "monotone",
                              self.floor, f"t{t}-{t + 1}"))
        return parts


@dataclass(frozen=True)
class EveryTask:
    """`column` of `experiment` is above (`sense` '>') or below ('<') `value` after every
    task from `first` to the run's last."""

    experiment: str
    column: str
    sense: str
    value: float
    first: int = 1
    floor: float = SD_FLOOR

    def parts(self, tasks: int) -> list[Part]:
        return [Part(Q(self.experiment, self.column, t), 0.0, self.sense, self.value,
                     "greater" if self.sense == ">" else "less", self.floor, f"t{t}")
                for t in range(self.first, tasks + 1)]


@dataclass(frozen=True)
class Ordered:
    """quantities[0] > quantities[1] > ... (each by more than `margin`)."""

    quantities: tuple
    margin: float = 0.0
    floor: float = SD_FLOOR

    def parts(self, tasks: int) -> list[Part]:
        return [Part(a, b, ">", self.margin, "ordered", self.floor, f"{i + 1}")
                for i, (a, b) in enumerate(pairwise(self.quantities))]


@dataclass(frozen=True)
class Claim:
    """A finding: its text, its comparisons (it holds when every part of every comparison
    holds), and the figure that shows it (`<section>/<figure>` of `clexp.comparisons`, or
    `study/<name>` for a study figure)."""

    key: str
    section: str
    text: str
    comparisons: tuple
    figure: str
    why: str = ""  # the margins' reading of the wording, shown with the claim

    def parts(self, tasks_of=None) -> list[Part]:
        """The claim's parts; `tasks_of(experiment)` gives a run's number of tasks (for the
        comparisons over tasks; 5, the study's, when not known)."""
        parts = []
        for comparison in self.comparisons:
            experiment = getattr(comparison, "experiment", None)
            tasks = (tasks_of(experiment) if tasks_of and experiment else None) or 5
            parts += comparison.parts(tasks)
        if len(parts) == 1:
            return parts
        return [Part(p.a, p.b, p.sense, p.margin, p.comparison, p.floor, p.name or str(i + 1))
                if not p.name else p for i, p in enumerate(parts)]

    @property
    def experiments(self) -> list[str]:
        names = []
        for part in self.parts():
            names += [q.experiment for q in (part.a, part.b) if isinstance(q, Quantity)]
        return list(dict.fromkeys(names))


def _each(experiments, make) -> list[Claim]:
    return [make(e) for e in experiments]


# The notebook's OGD claims that OGD-GTL's runs repeat (ogd_directions: gtl, profiles/ogd_gtl).
MIRRORED_OGD_CLAIMS = ("ogd_sparsity_low", "ogd_sparsity_falls", "ogd_improves_probe",
                       "ogd_bn_retains_ogd_adam_bn", "ogd_bn_retains_ogd_sgd_bn",
                       "ogd_adam_fewer_epochs", "ogd_no_plateau")
PUBLISHED_QUESTION = "Does the notebook's observation hold for the published method (OGD-GTL)?"


def _published_ogd(name: str) -> str:
    """The OGD-GTL run of a notebook OGD experiment (ogd_adam -> ogd_gtl_adam); other names
    unchanged."""
    return re.sub(r"\bogd_", "ogd_gtl_", name)


def published_ogd_claim(claim: Claim) -> Claim:
    """A notebook OGD claim asked of OGD-GTL: the same quantities, margins and tests, OGD-GTL's
    runs in place of the notebook's mean-loss ones (seq, seq_bn and the controls stay)."""
    def swapped(value):
        if isinstance(value, Quantity):
            return dataclasses.replace(value, experiment=_published_ogd(value.experiment))
        return value

    comparisons = tuple(dataclasses.replace(c, a=swapped(c.a), b=swapped(c.b))
                        for c in claim.comparisons)
    return dataclasses.replace(
        claim, key="gtl_" + claim.key.removeprefix("ogd_").replace("_ogd_", "_ogd_gtl_"),
        section="OGD-GTL", text=f"{PUBLISHED_QUESTION} {_published_ogd(claim.text)}",
        comparisons=comparisons, figure=claim.figure.replace("ogd/", "ogd_gtl/", 1))


# ---- the claims (STUDY.md, "What the study found", the sections' observations, baselines) ----

WEIGHT_DECAYS = ["seq_wd001", "seq_wd01", "seq_wd1", "seq_wd5"]

# The scenario experiments (config.yaml): `<scenario>_<method>`, except class-IL's plain,
# joint, ER and A-GEM runs, which are the study's own `seq`, `joint`, `er`, `agem`.
SCENARIO_METHODS = ["seq", "ewc", "online_ewc", "si", "lwf", "er", "agem"]
SCENARIO_HELPERS = SCENARIO_METHODS[1:]
SCENARIO_LABELS = {"seq": "plain sequential training", "ewc": "EWC",
                   "online_ewc": "online EWC", "si": "SI", "lwf": "LwF", "er": "ER",
                   "agem": "A-GEM"}


def scenario_experiment(method: str, scenario: str) -> str:
    """The experiment of `method` in `scenario` (see SCENARIO_METHODS)."""
    if scenario == "class":
        return method if method in ("seq", "joint", "er", "agem") else f"class_{method}"
    return f"{scenario}_{method}"

CLAIMS: list[Claim] = [
    # -- bounds: forgetting --
    Claim("seq_forgets", "Bounds",
          "Sequential plain training forgets almost completely: after the last task it "
          "predicts only the last task's digits, so its accuracy on all ten is their share of "
          "the evaluation set",
          (Less(Q("seq", "old_acc"), 0.05), Greater(Q("seq", "acc_task_last"), 0.9),
           Equivalent(Q("seq", "val_acc"), Q("seq", "task_share"), 0.02)),
          "bounds/retention",
          "almost completely: earlier tasks below 0.05; predicts the last task: above 0.9; "
          "close to the share: within 0.02"),
    Claim("joint_upper_bound", "Bounds",
          "Joint training is the upper bound: far above sequential training",
          (Greater(Q("joint", "val_acc"), Q("seq", "val_acc"), 0.5),),
          "bounds/accuracy", "far above: by more than 0.5"),
    Claim("forgetting_abrupt", "Bounds",
          "Forgetting is abrupt: within 50 batches of a new task, the previous task falls "
          "from above 0.9 to below 0.2 (seq, mean over tasks 2..T)",
          (Greater(Q("seq", "previous_acc_before", "mean"), 0.9),
           Less(Q("seq", "previous_acc_b50", "mean"), 0.2)),
          "bounds/retention", "the thresholds are the claim's own numbers"),
    Claim("confidently_wrong", "Bounds",
          "The network is confidently wrong on old digits: their images put most of their "
          "probability on the current task's digits (seq, after the last task)",
          (Greater(Q("seq", "current_task_mass"), 0.9),),
          "bounds/accuracy", "confidently, most: above 0.9"),
    # -- normalisation --
    Claim("plain_units_die", "Normalisation",
          "Without normalisation hidden units die task after task: sparsity climbs from about "
          "one half after task 1 to well above that by the last task",
          (Equivalent(Q("seq", "population_sparsity", "first"), 0.5, 0.1),
           Greater(Q("seq", "population_sparsity"), Q("seq", "population_sparsity", "first"),
                   0.1),
           Monotone("seq", "population_sparsity")),
          "normalisation/sparsity",
          "about one half: within 0.1; well above: by more than 0.1; task after task: every "
          "step up"),
    Claim("plain_dead_units_grow", "Normalisation",
          "Without normalisation the fraction of dead hidden units (zero on every evaluation "
          "image) grows task after task",
          (Monotone("seq", "dead_units"),),
          "normalisation/sparsity", "grows task after task: every step up"),
    Claim("plain_bias_negative", "Normalisation",
          "Without normalisation the mean and median hidden-layer bias turn negative",
          (Less(Q("seq", "bias_mean"), 0.0, floor=1e-4),
           Less(Q("seq", "bias_median"), 0.0, floor=1e-4),
           Less(Q("seq", "bias_mean"), Q("seq", "bias_mean", "first"), floor=1e-4),
           Less(Q("seq", "bias_median"), Q("seq", "bias_median", "first"), floor=1e-4)),
          "normalisation/bias_mean",
          "turn negative: below 0 after the last task and below where they were after task 1"),
    Claim("bias_median_sign_change", "Normalisation",
          "The median hidden bias of the plain net changes sign at task 2 and stays negative",
          (Greater(Q("seq", "bias_median", 1), 0.0, floor=1e-4),
           EveryTask("seq", "bias_median", "<", 0.0, first=2, floor=1e-4)),
          "normalisation/bias_median", "sign: above 0 after task 1, below 0 after tasks 2..5"),
    Claim("bn_sparsity_half", "Normalisation",
          "BatchNorm keeps sparsity near one half (and below the plain net's)",
          (Equivalent(Q("seq_bn", "population_sparsity"), 0.5, 0.1),
           Less(Q("seq_bn", "population_sparsity"), Q("seq", "population_sparsity"))),
          "normalisation/sparsity", "near one half: within 0.1"),
    Claim("bn_head_forgets", "Normalisation",
          "BN does not reduce forgetting of the head: its accuracy on the earlier tasks is "
          "that of the plain net",
          (Equivalent(Q("seq_bn", "old_acc"), Q("seq", "old_acc"), 0.05),),
          "normalisation/old_tasks", "does not reduce: within 0.05"),
    Claim("eval_loss_order", "Normalisation",
          "Evaluation loss after the last task: plain > BN > OGD + BN",
          (Ordered((Q("seq", "val_loss"), Q("seq_bn", "val_loss"),
                    Q("ogd_sgd_bn", "val_loss")), floor=0.01),),
          "study/eval_loss_comparison", "ordered: each above the next"),
    # -- representation --
    Claim("probe_beats_head", "Representation",
          "A linear probe on h2 recovers far more of the old digits than the network's own "
          "head, and more than the same probe on the untrained network: the representation "
          "of old digits survives",
          (Greater(Q("seq", "probe_old_acc"), Q("seq", "old_acc"), 0.2),
           Greater(Q("seq", "probe_old_acc"), U("seq", "probe_old_acc"))),
          "representation/probe",
          "far more: by more than 0.2; survives: above the untrained network's probe"),
    Claim("probe_above_untrained", "Representation",
          "After the last task the plain net's h2 separates the ten digits better than the "
          "untrained network's h2 (same probe protocol)",
          (Greater(Q("seq", "probe_acc"), U("seq", "probe_acc")),),
          "representation/probe", "better: above"),
    Claim("bn_keeps_representation", "Representation",
          "BN keeps the representation markedly better than the plain net, and above its "
          "untrained network",
          (Greater(Q("seq_bn", "probe_acc"), Q("seq", "probe_acc"), 0.05),
           Greater(Q("seq_bn", "probe_acc"), U("seq_bn", "probe_acc"))),
          "representation/probe", "markedly: by more than 0.05"),
    # -- dropout --
    *_each(["seq_dropout05", "seq_dropout02"], lambda e: Claim(
        f"dropout_no_help_{e}", "Dropout",
        f"Dropout does not prevent forgetting ({e}: accuracy on the earlier tasks that of seq)",
        (Equivalent(Q(e, "old_acc"), Q("seq", "old_acc"), 0.05),),
        "dropout/old_tasks", "does not prevent: within 0.05 of seq")),
    Claim("dropout02_lowers_probe", "Dropout",
          "Dropout 0.2 lowers the probe accuracy (seq_dropout02 vs seq)",
          (Less(Q("seq_dropout02", "probe_acc"), Q("seq", "probe_acc")),),
          "dropout/probe", "lowers: below"),
    Claim("bn_dropout_like_bn", "Dropout",
          "BN + dropout 0.2 ≈ BN (probe accuracy)",
          (Equivalent(Q("seq_bn_dropout02", "probe_acc"), Q("seq_bn", "probe_acc"), 0.03),),
          "dropout/probe", "≈: within 0.03"),
    Claim("bn_dropout_l1_worse", "Sparsity",
          "Adding L1 to BN + dropout makes the probe worse",
          (Less(Q("seq_bn_dropout02_l1_1", "probe_acc"), Q("seq_bn_dropout02", "probe_acc")),),
          "sparsity/probe", "worse: below"),
    # -- weight decay --
    *_each(WEIGHT_DECAYS, lambda e: Claim(
        f"wd_no_help_{e}", "Weight decay",
        f"Weight decay does not prevent forgetting ({e}: accuracy on the earlier tasks that "
        "of seq)",
        (Equivalent(Q(e, "old_acc"), Q("seq", "old_acc"), 0.05),),
        "weight_decay/old_tasks", "does not prevent: within 0.05 of seq")),
    Claim("wd_sparsity_grows", "Weight decay",
          "Weight decay does not arrest the growing sparsity: at every λ it rises from task 1 "
          "to the last",
          tuple(Greater(Q(e, "population_sparsity"), Q(e, "population_sparsity", "first"))
                for e in WEIGHT_DECAYS),
          "weight_decay/sparsity", "rises: above"),
    Claim("wd_lowers_loss", "Weight decay",
          "Weight decay lowers the evaluation loss as λ grows (0.01 > 0.1 > 1 > 5)",
          (Ordered(tuple(Q(e, "val_loss") for e in WEIGHT_DECAYS), floor=0.01),),
          "study/weight_decay_sweep", "as λ grows: each below the one before"),
    Claim("wd_probe_falls", "Weight decay",
          "The probe accuracy falls as λ grows beyond the smallest values (0.1 > 1 > 5)",
          (Ordered(tuple(Q(e, "probe_acc") for e in WEIGHT_DECAYS[1:])),),
          "weight_decay/probe", "falls: each below the one before"),
    # -- sparsity --
    Claim("l1_no_help", "Sparsity",
          "An L1 penalty does not prevent forgetting (seq_l1_1: accuracy on the earlier tasks "
          "that of seq)",
          (Equivalent(Q("seq_l1_1", "old_acc"), Q("seq", "old_acc"), 0.05),),
          "sparsity/old_tasks", "does not prevent: within 0.05 of seq"),
    Claim("l1_lowers_loss", "Sparsity",
          "An L1 penalty lowers the evaluation loss (seq_l1_1 vs seq, after the last task)",
          (Less(Q("seq_l1_1", "val_loss"), Q("seq", "val_loss"), floor=0.01),),
          "sparsity/val_loss", "lowers: below"),
    Claim("l1_raises_sparsity", "Sparsity",
          "An L1 penalty raises sparsity (seq_l1_1 vs seq)",
          (Greater(Q("seq_l1_1", "population_sparsity"), Q("seq", "population_sparsity")),),
          "sparsity/sparsity", "raises: above"),
    Claim("l1_forgets_representation", "Sparsity",
          "An L1 penalty makes the representation's forgetting more complete: the probe far "
          "below seq's, some digits near zero",
          (Less(Q("seq_l1_1", "probe_acc"), Q("seq", "probe_acc"), 0.1),
           Less(Q("seq_l1_1", "probe_min_class_acc"), 0.1)),
          "sparsity/probe", "far below: by more than 0.1; near zero: a digit below 0.1"),
    Claim("bn_l1_between", "Sparsity",
          "BN + L1 lies between BN and L1 alone (probe accuracy: seq_bn > seq_bn_l1_1 > "
          "seq_l1_1)",
          (Ordered((Q("seq_bn", "probe_acc"), Q("seq_bn_l1_1", "probe_acc"),
                    Q("seq_l1_1", "probe_acc"))),),
          "sparsity/probe", "between: ordered"),
    Claim("l1_raises_sparsity_joint", "Sparsity",
          "In joint training too, an L1 penalty raises sparsity (λ 1.0 vs 0)",
          (Greater(Q("joint_l1_1", "population_sparsity"), Q("joint", "population_sparsity")),),
          "study/l1_sweep", "raises: above"),
    Claim("joint_l1_sweep_sparsity", "Sparsity",
          "Joint L1 sweep: sparsity rises with λ (0 < 0.001 < 0.1 < 1 < 2)",
          (Ordered(tuple(Q(e, "population_sparsity") for e in
                         ["joint_l1_2", "joint_l1_1", "joint_l1_01", "joint_l1_0001", "joint"])),),
          "study/l1_sweep", "rises: each above the one before"),
    Claim("joint_l1_sweep_accuracy", "Sparsity",
          "Joint L1 sweep: accuracy falls at the largest λ (2.0 vs 0)",
          (Less(Q("joint_l1_2", "val_acc"), Q("joint", "val_acc")),),
          "study/l1_sweep", "falls: below"),
    # -- forward transfer --
    Claim("probe_unseen_transfer", "Forward transfer",
          "Features trained on the first task separate the unseen digits 9 and 0 better than "
          "the untrained network's features and than chance (seq_bn, after task 1)",
          (Greater(Q("seq_bn", "probe_unseen_acc", "first"),
                   U("seq_bn", "probe_unseen_acc", "first")),
           Greater(Q("seq_bn", "probe_unseen_acc", "first"), 0.5)),
          "forward_transfer/probe_unseen", "better: above the untrained network and 0.5"),
    *_each(["seq_bn_order38", "seq_bn_order14"], lambda e: Claim(
        f"transfer_same_{e}", "Forward transfer",
        f"Forward transfer is the same with another task order ({e} vs seq_bn: probe on the "
        "unseen digits after task 1)",
        (Equivalent(Q(e, "probe_unseen_acc", "first"), Q("seq_bn", "probe_unseen_acc", "first"),
                    0.05),),
        "forward_transfer/probe_unseen", "the same: within 0.05")),
    Claim("probe_all_gains", "Forward transfer",
          "The all-class probe gains a few points from task 1 to the last task, and ends "
          "above the untrained network's (seq_bn)",
          (Greater(Q("seq_bn", "probe_all_acc"), Q("seq_bn", "probe_all_acc", "first"), 0.01),
           Greater(Q("seq_bn", "probe_all_acc"), U("seq_bn", "probe_all_acc"))),
          "forward_transfer/probe_unseen", "a few points: more than 0.01"),
    # -- OGD --
    Claim("ogd_sparsity_low", "OGD",
          "OGD with a small learning rate keeps sparsity low (ogd_adam vs seq)",
          (Less(Q("ogd_adam", "population_sparsity"), Q("seq", "population_sparsity")),),
          "ogd/sparsity", "low: below seq"),
    Claim("ogd_sparsity_falls", "OGD",
          "With OGD sparsity even falls from task 1 to the last (ogd_adam)",
          (Less(Q("ogd_adam", "population_sparsity"),
                Q("ogd_adam", "population_sparsity", "first")),),
          "ogd/sparsity", "falls: below"),
    Claim("ogd_improves_probe", "OGD",
          "OGD with a small learning rate improves the probe (ogd_adam vs seq), above the "
          "untrained network",
          (Greater(Q("ogd_adam", "probe_acc"), Q("seq", "probe_acc")),
           Greater(Q("ogd_adam", "probe_acc"), U("ogd_adam", "probe_acc"))),
          "ogd/probe", "improves: above"),
    *_each(["ogd_adam_bn", "ogd_sgd_bn"], lambda e: Claim(
        f"ogd_bn_retains_{e}", "OGD",
        f"OGD with BN retains some accuracy on old tasks ({e} vs seq_bn)",
        (Greater(Q(e, "old_acc"), 0.05), Greater(Q(e, "old_acc"), Q("seq_bn", "old_acc"), 0.05)),
        "ogd/old_tasks", "some: above 0.05, and 0.05 above seq_bn")),
    Claim("ogd_adam_fewer_epochs", "OGD",
          "Adam reaches the training-accuracy threshold in fewer epochs than SGD "
          "(ogd_adam vs ogd_sgd, ogd_adam_bn vs ogd_sgd_bn; mean epochs per task)",
          (Less(Q("ogd_adam", "epochs_run", "mean"), Q("ogd_sgd", "epochs_run", "mean"),
                floor=0.1),
           Less(Q("ogd_adam_bn", "epochs_run", "mean"), Q("ogd_sgd_bn", "epochs_run", "mean"),
                floor=0.1)),
          "ogd/accuracy", "fewer: below"),
    Claim("ogd_no_plateau", "OGD",
          "With OGD the previous task's accuracy keeps falling while a task trains: lower "
          "after the last epoch than after the middle one (ogd_adam_bn, mean over tasks)",
          (Less(Q("ogd_adam_bn", "previous_acc_end", "mean"),
                Q("ogd_adam_bn", "previous_acc_mid", "mean")),),
          "ogd/old_tasks", "keeps falling: below"),
    Claim("ogd_t095_higher", "OGD",
          "Stopping at 0.95 instead of 0.98 gives a higher final accuracy (ogd_sgd_bn_t095 vs "
          "ogd_sgd_bn)",
          (Greater(Q("ogd_sgd_bn_t095", "val_acc"), Q("ogd_sgd_bn", "val_acc")),),
          "ogd/accuracy", "higher: above"),
    Claim("ogd_l1_higher_still", "OGD",
          "An L1 penalty of 5.0 with OGD + BN raises the final accuracy higher still "
          "(ogd_sgd_bn_t095_l1_5 vs ogd_sgd_bn_t095)",
          (Greater(Q("ogd_sgd_bn_t095_l1_5", "val_acc"), Q("ogd_sgd_bn_t095", "val_acc")),),
          "ogd/accuracy", "higher: above"),
    Claim("ogd_dropout_no_help", "OGD",
          "Dropout does not help OGD (final accuracy: ogd_sgd_bn_t095_dropout02 vs "
          "ogd_sgd_bn_t095, ogd_adam_bn_dropout02 vs ogd_adam_bn)",
          (Equivalent(Q("ogd_sgd_bn_t095_dropout02", "val_acc"), Q("ogd_sgd_bn_t095", "val_acc"),
                      0.05),
           Equivalent(Q("ogd_adam_bn_dropout02", "val_acc"), Q("ogd_adam_bn", "val_acc"),
                      0.05)),
          "ogd/accuracy", "does not help: within 0.05"),
    # -- gradient maps / updates --
    Claim("output_layer_updated_most", "Normalisation",
          "The output layer is updated most strongly: its weights change more over a task "
          "than those of either hidden layer (seq, mean over tasks 2..T)",
          (Greater(Q("seq", "log_update_fc3", "mean"), Q("seq", "log_update_fc1", "mean"),
                   floor=0.01),
           Greater(Q("seq", "log_update_fc3", "mean"), Q("seq", "log_update_fc2", "mean"),
                   floor=0.01)),
          "normalisation/sparsity", "most: above each hidden layer (log10 scale)"),
    Claim("bn_output_updated_less", "Normalisation",
          "With BN the output layer is updated much less than without: less than half the "
          "relative change over a task (seq_bn vs seq, mean over tasks 2..T)",
          (Less(Q("seq_bn", "log_update_fc3", "mean"), Q("seq", "log_update_fc3", "mean"),
                math.log10(2), floor=0.01),),
          "normalisation/sparsity", "much less: below half (log10 2 lower)"),
    # -- baselines --
    *_each(["ewc", "online_ewc", "si", "lwf"], lambda e: Claim(
        f"classil_close_to_seq_{e}", "Baselines",
        f"Class-incremental: {e} stays close to plain sequential training",
        (Equivalent(Q(e, "val_acc"), Q("seq", "val_acc"), 0.1),),
        "baselines/accuracy", "close: within 0.1")),
    Claim("er_keeps_accuracy", "Baselines",
          "Class-incremental: experience replay keeps most of the accuracy",
          (Greater(Q("er", "val_acc"), 0.5), Greater(Q("er", "val_acc"), Q("seq", "val_acc"), 0.3)),
          "baselines/accuracy", "most: above 0.5, and 0.3 above seq"),
    Claim("masked_seq_keeps", "Baselines",
          "Masked evaluation of the class-incremental run (logits restricted to each task's "
          "classes): plain sequential training keeps most of each task",
          (Greater(Q("seq", "avg_acc_til", "summary"), 0.8),),
          "bounds/acc_til", "most: above 0.8"),
    *_each(["ewc", "online_ewc", "si", "lwf", "er", "agem"], lambda e: Claim(
        f"masked_method_keeps_{e}", "Baselines",
        f"Masked evaluation: {e} keeps nearly all of each task, more than plain sequential "
        "training",
        (Greater(Q(e, "avg_acc_til", "summary"), 0.9),
         Greater(Q(e, "avg_acc_til", "summary"), Q("seq", "avg_acc_til", "summary"))),
        "baselines/acc_til", "nearly all: above 0.9; more: above seq")),
    # -- scenarios: each trained as the field trains it, strengths tuned on validation --
    *_each(SCENARIO_METHODS, lambda m: Claim(
        f"scenario_difficulty_{m}", "Scenarios",
        f"{SCENARIO_LABELS[m]}: task-incremental is easier than domain-incremental, which is "
        "easier than class-incremental (ACC)",
        (Ordered(tuple(Q(scenario_experiment(m, s), "avg_acc", "summary")
                       for s in ("task", "domain", "class")), 0.02),),
        "scenario_task/accuracy", "easier: ACC higher by more than 0.02 at each step")),
    Claim("task_seq_keeps", "Scenarios",
          "Task-incremental: plain sequential training keeps most of each task",
          (Greater(Q("task_seq", "avg_acc", "summary"), 0.8),),
          "scenario_task/accuracy", "most: ACC above 0.8"),
    *_each(["ewc", "online_ewc", "si", "lwf"], lambda m: Claim(
        f"task_keeps_{m}", "Scenarios",
        f"Task-incremental: {SCENARIO_LABELS[m]} keeps nearly all of each task, more than "
        "plain sequential training",
        (Greater(Q(f"task_{m}", "avg_acc", "summary"), 0.9),
         Greater(Q(f"task_{m}", "avg_acc", "summary"), Q("task_seq", "avg_acc", "summary"))),
        "scenario_task/accuracy", "nearly all: ACC above 0.9; more: above task_seq")),
    *_each(SCENARIO_HELPERS, lambda m: Claim(
        f"domain_helps_{m}", "Scenarios",
        f"Domain-incremental: {SCENARIO_LABELS[m]} does better than plain sequential training",
        (Greater(Q(f"domain_{m}", "avg_acc", "summary"), Q("domain_seq", "avg_acc", "summary"),
                 0.02),),
        "scenario_domain/accuracy", "better: ACC higher by more than 0.02")),
    *_each(["ewc", "online_ewc", "si", "lwf"], lambda m: Claim(
        f"class_tuned_close_to_seq_{m}", "Scenarios",
        f"Class-incremental, strength tuned on the validation split: {SCENARIO_LABELS[m]} "
        "still stays close to plain sequential training",
        (Equivalent(Q(f"class_{m}", "avg_acc", "summary"), Q("seq", "avg_acc", "summary"),
                    0.1),),
        "scenario_class/accuracy", "close: ACC within 0.1")),
    *[Claim(f"{s}_joint_upper_bound", "Scenarios",
            f"{s.capitalize()}-incremental: joint training on each image's own outputs is the "
            "upper bound, above every method of the scenario",
            tuple(Greater(Q(f"{s}_joint", "avg_acc", "summary"),
                          Q(scenario_experiment(m, s), "avg_acc", "summary"))
                  for m in SCENARIO_METHODS),
            f"scenario_{s}/accuracy", "above: a higher ACC than each")
      for s in ("task", "domain")],
    *[Claim(f"{s}_keeps_representation_{m}", "Scenarios",
            f"{s.capitalize()}-incremental: {SCENARIO_LABELS[m]} keeps more of the "
            "representation than plain sequential training: a higher probe accuracy on h2 "
            "after the last task, and a population sparsity not higher",
            (Greater(Q(scenario_experiment(m, s), "probe_acc", "last"),
                     Q(scenario_experiment("seq", s), "probe_acc", "last"), 0.01),
             Less(Q(scenario_experiment(m, s), "population_sparsity", "last"),
                  Q(scenario_experiment("seq", s), "population_sparsity", "last"), -0.02)),
            f"scenario_{s}/probe",
            "more: probe higher by more than 0.01; not higher: sparsity at most 0.02 above")
      for s in ("class", "task", "domain") for m in SCENARIO_HELPERS],
]
# OGD-GTL's claims follow the notebook's OGD claims
_AFTER_OGD = max(i for i, c in enumerate(CLAIMS) if c.section == "OGD") + 1
CLAIMS[_AFTER_OGD:_AFTER_OGD] = [published_ogd_claim(c) for c in CLAIMS
                                 if c.key in MIRRORED_OGD_CLAIMS]


# ---- the numbers behind a quantity ----


@dataclass
class Values:
    """A quantity's value per seed, and what was left out and why."""

    by_seed: dict[int, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: str = ""  # why nothing could be read (not run)


def _complete_runs(rows: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Per seed, the run's rows when it reached its last task; partial runs are left out."""
    return {int(seed): run.sort_values("task") for seed, run in rows.groupby("seed")}


def _row_value(run: pd.DataFrame, quantity: Quantity) -> float | None:
    at = quantity.at
    column = quantity.column
    last = int(run["num_tasks"].iloc[0])
    if at == "mean":  # over the tasks after the first (all of a one-task run)
        if column not in run:
            return None
        later = run[run["task"] > 1] if last > 1 else run
        return float(pd.to_numeric(later[column], errors="coerce").mean())
    task = 1 if at == "first" else last if at == "last" else int(at)
    row = run[run["task"] == task]
    if row.empty:
        return math.nan
    row = row.iloc[0]
    if column == "acc_task_last":
        column = f"acc_task{last}"
    if column not in row.index:
        return None
    value = pd.to_numeric(row[column], errors="coerce")
    return float(value)


def _control_value(untrained: pd.DataFrame, run: pd.DataFrame, quantity: Quantity):
    """The untrained network's value of the quantity: probe columns on the classes the
    trained run's probe saw at that task, other columns as measured before training."""
    last = int(run["num_tasks"].iloc[0])
    task = 1 if quantity.at == "first" else last if quantity.at in ("last", "mean") \
        else int(quantity.at)
    column = {"probe_acc": f"probe_acc_after{task}",
              "probe_old_acc": f"probe_old_acc_after{task}"}.get(quantity.column,
                                                                 quantity.column)
    if untrained.empty or column not in untrained:
        return None
    return float(pd.to_numeric(untrained[column], errors="coerce").iloc[0])


def read_values(quantity: Quantity, checkpoints: pd.DataFrame, summary: pd.DataFrame,
                untrained: pd.DataFrame | None = None) -> Values:
    """The quantity for every complete run of its experiment. A run that did not reach its
    last task is left out and named; a seed whose value is NaN is left out and named."""
    values = Values()
    name = quantity.experiment
    rows = checkpoints[checkpoints["experiment"] == name] if not checkpoints.empty else checkpoints
    if rows.empty:
        values.missing = f"{name} not in this run"
        return values
    for seed, run in _complete_runs(rows).items():
        last = int(run["num_tasks"].iloc[0])
        done = sorted(int(t) for t in run["task"])
        if done != list(range(1, last + 1)):
            values.notes.append(f"{name} seed {seed}: not run to the end (tasks "
                                f"{', '.join(map(str, done))} of {last})")
            continue
        if quantity.at == "summary":
            found = summary[(summary["experiment"] == name) & (summary["seed"] == seed)]
            value = (float(found[quantity.column].iloc[0])
                     if not found.empty and quantity.column in found else None)
        elif quantity.control:
            own = (untrained[(untrained["experiment"] == name) & (untrained["seed"] == seed)]
                   if untrained is not None and not untrained.empty else pd.DataFrame())
            value = _control_value(own, run, quantity)
        else:
            value = _row_value(run, quantity)
        if value is None:
            values.missing = f"{quantity.describe()} not measured in this run"
            return values
        if math.isnan(value):
            values.notes.append(f"{quantity.describe()} seed {seed}: not measured (NaN)")
            continue
        values.by_seed[seed] = value
    if not values.by_seed and not values.missing:
        values.missing = f"{name}: no complete run with {quantity.describe()}"
    return values


# ---- statistics ----


@dataclass
class Test:
    """One part's effect over seeds: mean, the one-sided 95 % bounds, n, p-values."""

    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    p_holds: float = math.nan  # H0: the claim's side is false (small: the part holds)
    p_fails: float = math.nan  # H0: the claim's side is true (small: it does not hold)
    paired: bool = False


def _bounds_and_p(mean: float, se: float, df: float, part: Part) -> Test:
    q = stats.t.ppf(1 - ALPHA, df)
    test = Test(effect=mean, low=mean - q * se, high=mean + q * se)
    distribution = stats.t(df)
    if part.sense == ">":
        test.p_holds = float(distribution.sf((mean - part.margin) / se))
        test.p_fails = float(distribution.cdf((mean - part.margin) / se))
    elif part.sense == "<":
        test.p_holds = float(distribution.cdf((mean - part.margin) / se))
        test.p_fails = float(distribution.sf((mean - part.margin) / se))
    else:  # equivalence: two one-sided tests against −margin and +margin
        above_lower = distribution.sf((mean + part.margin) / se)
        below_upper = distribution.cdf((mean - part.margin) / se)
        test.p_holds = float(max(above_lower, below_upper))
        test.p_fails = float(min(distribution.cdf((mean + part.margin) / se),
                                 distribution.sf((mean - part.margin) / se)))
    return test


def effect_test(part: Part, a: Values, b: Values | None) -> Test:
    """The part's effect a − b over seeds and its one-sided tests against the margin.

    Paired over the common seeds when a and b come from the same experiment's runs (or b is
    a number), Welch's t for two experiments. Each sd is at least `part.floor`."""
    constant = b is None
    paired = constant or (isinstance(part.b, Quantity) and part.a.experiment == part.b.experiment)
    if paired:
        seeds = sorted(a.by_seed) if constant else sorted(set(a.by_seed) & set(b.by_seed))
        offset = float(part.b) if constant else 0.0
        differences = np.array([a.by_seed[s] - (offset if constant else b.by_seed[s])
                                for s in seeds])
        n = len(differences)
        if n < 2:
            test = Test(effect=float(differences.mean()) if n else math.nan, n=n)
            test.paired = True
            return test
        sd = max(float(np.std(differences, ddof=1)), part.floor)
        test = _bounds_and_p(float(differences.mean()), sd / math.sqrt(n), n - 1, part)
        test.n, test.paired = n, True
        return test
    xa, xb = np.array(list(a.by_seed.values())), np.array(list(b.by_seed.values()))
    n = min(len(xa), len(xb))
    if n < 2:
        return Test(effect=float(xa.mean() - xb.mean()) if n else math.nan, n=n)
    va = max(float(np.var(xa, ddof=1)), part.floor ** 2) / len(xa)
    vb = max(float(np.var(xb, ddof=1)), part.floor ** 2) / len(xb)
    se = math.sqrt(va + vb)
    # Welch–Satterthwaite degrees of freedom
    df = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
    test = _bounds_and_p(float(xa.mean() - xb.mean()), se, df, part)
    test.n = n
    return test


def holm_levels(p_values: dict[str, float], alpha: float = ALPHA) -> dict[str, float]:
    """Holm's step-down: each test's level alpha / (m − rank) at its rank (rank 0: the
    smallest p-value). A test is rejected when its p-value and every smaller one are at most
    their levels (`holm_rejected`). (scipy.stats has no Holm; the procedure is this sort and
    one comparison per test.)"""
    order = sorted(p_values, key=lambda k: p_values[k])
    m = len(order)
    return {key: alpha / (m - rank) for rank, key in enumerate(order)}


def holm_rejected(p_values: dict[str, float], alpha: float = ALPHA) -> set[str]:
    """The tests Holm's step-down rejects: in order of p-value, until the first whose
    p-value exceeds its level."""
    levels = holm_levels(p_values, alpha)
    rejected = set()
    for key in sorted(p_values, key=lambda k: p_values[k]):
        if p_values[key] > levels[key]:
            break
        rejected.add(key)
    return rejected


# ---- the table ----


def _describe_values(quantity: Quantity, values: Values) -> str:
    xs = list(values.by_seed.values())
    n = len(xs)
    mean = float(np.mean(xs)) if xs else math.nan
    spread = f" ± {float(np.std(xs, ddof=1)):.3f}" if n > 1 else ""
    return f"{quantity.describe()}: {mean:.3f}{spread} (n={n})"


def _part_verdict(test: Test, level: float) -> str:
    if test.n < 2:
        return UNTESTED
    if test.p_holds <= level:
        return HOLDS
    if test.p_fails < ALPHA:
        return FAILS
    return INCONCLUSIVE


def _margin_text(part: Part) -> str:
    if part.sense == "|<|":
        return f"|effect| < {part.margin:g}"
    return f"effect {part.sense} {part.margin:g}"


def combine(verdicts: list[str]) -> str:
    """A claim's verdict from its parts': not run if any is, else does not hold if any
    part fails, else untested if any is, else holds only when all do."""
    for verdict in (NOT_RUN, FAILS, UNTESTED, INCONCLUSIVE):
        if verdict in verdicts:
            return verdict
    return HOLDS


def findings_table(checkpoints: pd.DataFrame, summary: pd.DataFrame,
                   untrained: pd.DataFrame | None = None,
                   claims: list[Claim] | None = None) -> pd.DataFrame:
    """Every claim evaluated on this run: one row per part (key `<claim>` for a one-part
    claim, `<claim>.<part>` otherwise), columns COLUMNS. `verdict` is the part's,
    `claim_verdict` the claim's (the same on each of its rows)."""
    claims = claims if claims is not None else CLAIMS
    untrained = untrained if untrained is not None else pd.DataFrame()
    task_counts = (checkpoints.groupby("experiment")["num_tasks"].max().to_dict()
                   if not checkpoints.empty else {})
    evaluated = []
    for claim in claims:
        rows = []
        for part in claim.parts(lambda e: task_counts.get(e)):
            a = read_values(part.a, checkpoints, summary, untrained)
            b = (read_values(part.b, checkpoints, summary, untrained)
                 if isinstance(part.b, Quantity) else None)
            missing = [v.missing for v in (a, b) if v is not None and v.missing]
            evidence = [_describe_values(part.a, a)] if not a.missing else []
            if b is not None and not b.missing:
                evidence.append(_describe_values(part.b, b))
            elif b is None and float(part.b) != 0.0:
                evidence.append(f"against {float(part.b):g}")
            notes = list(dict.fromkeys(a.notes + (b.notes if b is not None else [])))
            test = Test() if missing else effect_test(part, a, b)
            rows.append((part, test, missing, evidence + notes + missing))
        evaluated.append((claim, rows))

    # Holm across the table: a claim's p-value is its largest part's (it holds only when all
    # parts hold), over the claims that could be tested.
    claim_p = {claim.key: max(t.p_holds for _, t, _, _ in rows)
               for claim, rows in evaluated
               if all(not m and t.n >= 2 for _, t, m, _ in rows)}
    levels, rejected = holm_levels(claim_p), holm_rejected(claim_p)

    records = []
    for claim, rows in evaluated:
        # a part holds when it clears its margin at its claim's Holm level; the claim holds
        # only when Holm's step-down rejects it (every part then holds)
        level = levels.get(claim.key, 0.0)
        verdicts = [NOT_RUN if missing else _part_verdict(test, level)
                    for _, test, missing, _ in rows]
        overall = combine(verdicts)
        if overall == HOLDS and claim.key not in rejected:
            overall = INCONCLUSIVE
        for index, ((part, test, _, evidence), verdict) in enumerate(
                zip(rows, verdicts, strict=True)):
            key = claim.key if len(rows) == 1 else f"{claim.key}.{part.name or index + 1}"
            records.append({
                "key": key, "section": claim.section, "finding": claim.text,
                "experiments": " ".join(claim.experiments),
                "evidence": "; ".join(evidence) + (" (paired over seeds)" if test.paired
                                                   and test.n >= 2 else ""),
                "effect": test.effect, "ci_low": test.low, "ci_high": test.high,
                "margin": part.margin if part.sense != "|<|" else abs(part.margin),
                "comparison": f"{part.comparison} ({_margin_text(part)})",
                "verdict": verdict, "figure": claim.figure, "n": test.n,
                "p_value": test.p_holds, "holm_alpha": level if claim.key in claim_p
                else math.nan,
                "claim_verdict": overall,
            })
    return pd.DataFrame(records, columns=COLUMNS)


def claim_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (its first part's row) with the claim's verdict."""
    keys = table["key"].str.split(".").str[0]
    first = table.assign(claim=keys).drop_duplicates("claim")
    return first[["claim", "section", "finding", "claim_verdict", "figure"]].reset_index(drop=True)


def multiplicity_note(table: pd.DataFrame) -> dict:
    """What the page says about chance: the claims tested, how many hold, how many would
    hold without Holm's adjustment, and the expected number of chance flips without it."""
    claims = table.assign(claim=table["key"].str.split(".").str[0])
    tested = claims[claims["holm_alpha"].notna()]
    per_claim = tested.groupby("claim")
    m = per_claim.ngroups
    raw_holds = int(sum((g["p_value"] <= ALPHA).all() for _, g in per_claim))
    holds = int(sum((g["claim_verdict"] == HOLDS).all() for _, g in per_claim))
    return {"tested": m, "holds": holds, "raw_holds": raw_holds,
            "lost_to_adjustment": raw_holds - holds, "chance_flips": ALPHA * m}
