"""The self-contained HTML report: tables and embedded figures, no torch."""

from __future__ import annotations

import base64
import functools
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clexp.bench import rule_time_table

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
nav li { margin: 0.2em 0; }
table { display: block; overflow-x: auto; max-width: 100%; }
table.findings { font-size: 0.75em; }
table.findings td, table.findings th { text-align: left; vertical-align: top; }
table.findings td.ev { color: #444; max-width: 22em; }
table.findings td.finding { max-width: 24em; }
table.findings td.num { max-width: 11em; }
table.findings td.num { text-align: right; }
table.findings .section, table.findings .why { font-size: 0.85em; color: #666; }
table.findings tr.first td { border-top: 2px solid #999; }
td.verdict, td.pv { font-weight: bold; white-space: nowrap; }
tr.holds td.verdict, td.pv.holds { background: #d7f0d2; }
tr.fails td.verdict, td.pv.fails { background: #f6d0cc; }
tr.inconclusive td.verdict, td.pv.inconclusive { background: #fbefc4; }
tr.untested td.verdict, td.pv.untested { background: #e4e8f0; }
tr.notrun td.verdict, td.pv.notrun { color: #777; font-weight: normal; }
p.method { font-size: 0.85em; color: #444; max-width: 60em; }
.comparisons figure { display: inline-block; width: 49%; vertical-align: top; margin: 0.3em 0; }
.comparisons figure.wide { width: 100%; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
"""


# The page's size budget (bytes) for the default config as it grows: figures are encoded to
# fit it (see ImageEncoder).
MAX_REPORT_BYTES = 20_000_000
# Detail figures (per run and per checkpoint) are WebP, tried at these (scale, quality) steps
# in turn until one fits the per-image share of the budget.
DETAIL_STEPS = [(1.0, 70), (0.85, 60), (0.75, 50), (0.65, 45), (0.55, 40), (0.45, 35)]


def _base64_size(count: int) -> int:
    return 4 * ((count + 2) // 3)


class ImageEncoder:
    """Encodes figures for the page. Main figures (comparisons, sweeps) stay PNG at their
    natural size, reduced to a 256-colour palette. Detail figures (per run, per checkpoint)
    become WebP at the best step of DETAIL_STEPS under a per-image share of what the main
    figures leave of `max_bytes`; `reserve` bytes are kept for the page's text."""

    def __init__(self, main: list, detail_count: int, max_bytes: int = MAX_REPORT_BYTES,
                 reserve: int = 1_000_000):
        self.cache: dict[str, str] = {}
        self.steps: dict[tuple[float, int], int] = {}  # (scale, quality) -> figures encoded
        used = sum(_base64_size(len(self._encode_main(path))) for path in main)
        left = max_bytes - reserve - used
        self.detail_budget = left * 3 // 4 // max(detail_count, 1)

    def _encode_main(self, path) -> bytes:
        import io

        from PIL import Image

        key = str(path)
        with Image.open(path) as image:
            buffer = io.BytesIO()
            image.convert("RGB").quantize(256).save(buffer, "PNG", optimize=True)
        data = buffer.getvalue()
        self.cache[key] = "data:image/png;base64," + base64.b64encode(data).decode()
        return data

    def _detail_data(self, path) -> tuple[str, tuple[float, int]]:
        """(data URI, the step of DETAIL_STEPS used) of a detail figure; reads nothing of
        this object but the budget, so figures can be encoded side by side."""
        import io

        from PIL import Image

        with Image.open(path) as original:
            rgb = original.convert("RGB")
        data = b""
        for scale, quality in DETAIL_STEPS:
            image = rgb if scale == 1.0 else rgb.resize(
                (round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "WEBP", quality=quality, method=4)
            data = buffer.getvalue()
            if len(data) <= self.detail_budget:
                break
        return "data:image/webp;base64," + base64.b64encode(data).decode(), (scale, quality)

    def _keep_detail(self, key: str, encoded: tuple[str, tuple[float, int]]) -> None:
        self.cache[key], step = encoded
        self.steps[step] = self.steps.get(step, 0) + 1

    def encode_details(self, paths, threads: int = 1) -> None:
        """Encode the detail figures at `paths` ahead of `uri`, `threads` at a time (Pillow
        lets go of the GIL while it resizes and encodes: two threads take half the time).
        The result is the same as encoding them one by one."""
        from concurrent.futures import ThreadPoolExecutor

        todo = list(dict.fromkeys(str(p) for p in paths if str(p) not in self.cache))
        with ThreadPoolExecutor(max(1, int(threads))) as pool:
            for key, encoded in zip(todo, pool.map(self._detail_data, todo), strict=True):
                self._keep_detail(key, encoded)

    def uri(self, path, detail: bool) -> str:
        """The figure at `path` as a data URI (encoded once)."""
        key = str(path)
        if key not in self.cache:
            if detail:
                self._keep_detail(key, self._detail_data(path))
            else:
                self._encode_main(path)
        return self.cache[key]


def image_uri(path: str | Path, encoder: ImageEncoder | None = None,
              detail: bool = False) -> str:
    """The figure at `path` as a data URI (re-encoded by `encoder` when given, else the PNG as
    it is)."""
    if encoder is None:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    return encoder.uri(path, detail)


def figure_html(path: str | Path, caption: str, encoder: ImageEncoder | None = None,
                detail: bool = False, anchor: str = "", wide: bool = False) -> str:
    """A captioned, embedded figure (with an id when `anchor` is given): the `figure` macro
    of templates/parts.html.j2."""
    return str(_parts().figure(image_uri(path, encoder, detail), caption, anchor, wide))


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as an HTML table with floats rounded."""
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="",
                         border=0)


def section_id(title: str) -> str:
    """An anchor id for a section title."""
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


@functools.cache
def _templates():
    """The report's Jinja2 templates (src/clexp/templates), HTML-escaping every value that
    is not marked safe."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                       autoescape=select_autoescape(["j2", "html"]), undefined=StrictUndefined,
                       keep_trailing_newline=True)


def _parts():
    """The macros of templates/parts.html.j2."""
    return _templates().get_template("parts.html.j2").module


def render_report(title: str, sections: list[tuple[str, str]], intro: str = "") -> str:
    """The page (templates/page.html.j2): a title, the intro (the findings), a table of
    contents and the sections (title, inner HTML)."""
    return _templates().get_template("page.html.j2").render(
        title=title, style=PAGE_STYLE, intro=intro,
        sections=[{"id": section_id(name), "name": name, "html": content}
                  for name, content in sections])


# The study's sections and the experiments each one shows, in order. Experiments a user adds
# that are not listed here appear under "Other experiments".
STUDY_SECTIONS = {
    "Bounds": ["joint", "joint_bn", "seq"],
    "Normalisation": ["seq_bn", "seq_ln"],
    "Dropout": ["seq_dropout05", "seq_dropout02"],
    "Weight decay": ["seq_wd001", "seq_wd01", "seq_wd1", "seq_wd5"],
    "Sparsity": [
        "joint_l1_0001", "joint_l1_01", "joint_l1_1", "joint_l1_2", "seq_l1_1", "seq_bn_l1_1",
        "seq_bn_dropout02", "seq_bn_dropout02_l1_1",
    ],
    "Forward transfer": ["seq_bn_order38", "seq_bn_order14"],
    "OGD": [
        "ogd_sgd", "ogd_adam", "ogd_sgd_bn", "ogd_adam_bn", "ogd_adam_bn_l1_1",
        "ogd_adam_bn_dropout02", "ogd_sgd_bn_t095", "ogd_sgd_bn_t095_l1_5",
        "ogd_sgd_bn_t095_dropout02", "ogd_sgd_bn_t095_dropout02_l1_5",
    ],
    "OGD-GTL": ["ogd_gtl_sgd", "ogd_gtl_adam", "ogd_gtl_sgd_bn", "ogd_gtl_adam_bn",
                "task_ogd_gtl"],
    "Baselines": ["ewc", "online_ewc", "si", "lwf", "er", "agem", "er_bn"],
    "Scenarios": [
        "class_ewc", "class_online_ewc", "class_si", "class_lwf",
        "task_seq", "task_joint", "task_ewc", "task_online_ewc", "task_si", "task_lwf",
        "task_er", "task_agem",
        "domain_seq", "domain_joint", "domain_ewc", "domain_online_ewc", "domain_si",
        "domain_lwf", "domain_er", "domain_agem",
    ],
}


# Sections of the report in the study's order: representation strength (built from every
# experiment) follows the sparsity experiments.
REPORT_SECTIONS = list(STUDY_SECTIONS)
REPORT_SECTIONS.insert(REPORT_SECTIONS.index("Sparsity") + 1, "Representation strength")
REPORT_SECTIONS.append("Other experiments")

# Report section -> the section of clexp.comparisons whose figures open it.
COMPARISON_SECTION = {
    "Bounds": "bounds", "Normalisation": "normalisation", "Dropout": "dropout",
    "Weight decay": "weight_decay", "Sparsity": "sparsity",
    "Representation strength": "representation", "Forward transfer": "forward_transfer",
    "OGD": "ogd", "OGD-GTL": "ogd_gtl", "Baselines": "baselines", "Other experiments": "other",
    "Scenarios": ("scenario_class", "scenario_task", "scenario_domain"),
}
SCENARIO_SECTION_TITLES = {"scenario_class": "Class-incremental",
                           "scenario_task": "Task-incremental",
                           "scenario_domain": "Domain-incremental"}


def comparison_sections(name: str) -> tuple[str, ...]:
    """The comparison sections (clexp.comparisons) that open report section `name`."""
    value = COMPARISON_SECTION[name]
    return value if isinstance(value, tuple) else (value,)
# Findings of a claims section live in this report section.
FINDING_SECTION = {"Representation": "Representation strength"}


def group_experiments(experiments: list[str]) -> dict[str, list[str]]:
    """The study's sections holding only experiments of this run (empty sections dropped)."""
    groups = {
        section: [e for e in members if e in experiments]
        for section, members in STUDY_SECTIONS.items()
    }
    listed = {e for members in STUDY_SECTIONS.values() for e in members}
    groups["Other experiments"] = [e for e in experiments if e not in listed]
    return {section: members for section, members in groups.items() if members}


def summary_with_spread(by_experiment: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per experiment, each metric as 'mean ± sd' (just the mean with one seed)."""
    table = pd.DataFrame({"experiment": by_experiment["experiment"],
                          "seeds": by_experiment["seeds"]})
    for metric in metrics:
        if f"{metric}_mean" not in by_experiment:
            continue
        means, spreads = by_experiment[f"{metric}_mean"], by_experiment[f"{metric}_sd"]
        table[metric] = [
            "" if pd.isna(m) else f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}"
            for m, s in zip(means, spreads, strict=True)
        ]
    return table


SUMMARY_COLUMNS = ["final_val_acc", "final_probe_acc", "final_sparsity", "avg_acc", "bwt",
                   "fwt", "avg_forgetting", "avg_acc_til", "bwt_til"]
ONE_TASK_COLUMNS = ["final_val_acc", "final_probe_acc", "final_sparsity", "final_val_loss"]

RUN_FIGURE_CAPTIONS = {
    "learning_curves": "Learning curves (per epoch, all tasks)",
}
TASK_FIGURE_CAPTIONS = {
    "accuracy_matrix": "Accuracy matrix (rows: after task t; columns: evaluated task)",
    "sparsity": "Population sparsity after each task (pooled, h1, h2)",
    "eval_loss": "Evaluation loss on the seen classes after each task",
    "bias_stats": "Hidden-layer bias mean, median and std after each task",
    "probe_progress": "Linear-probe accuracy per class after each task",
}
CHECKPOINT_FIGURE_CAPTIONS = {
    "forgetting_curve": "Forgetting curve while training this task",
    "relative_updates": "Relative weight updates per batch (log scale)",
    "gradient_maps": "Accumulated signed gradients per weight matrix",
    "probability_profile": "Probability profile and example predictions",
    "latent_map": "t-SNE latent map",
    "hidden_features": "Hidden features h2 of a fixed evaluation batch",
    "weight_histograms": "Weight and bias histograms",
}
COMPARISON_CAPTIONS = {
    "accuracy": "Accuracy on the classes seen so far, after each task. Forgetting pulls it "
                "down towards the last task's share of the evaluation set.",
    "retention": "Retention: accuracy on each earlier task (one panel per task) after every "
                 "later task. A line that drops to 0 is a task forgotten.",
    "old_tasks": "Mean accuracy on the earlier tasks after each task (0: all forgotten).",
    "probe": "Linear-probe accuracy on h2 over the seen classes: what the representation "
             "still separates, whatever the head predicts. Dotted grey: the same probe on the "
             "untrained network (task 0) at the same classes, the control.",
    "sparsity": "Population sparsity (fraction of exact zeros in h1 and h2) after each task; "
                "rising sparsity means hidden units die. Dotted grey: the untrained network.",
    "matrices": "Accuracy matrices, mean over seeds (row: after task t; column: evaluated "
                "task).",
    "bias_mean": "Mean bias of the hidden layers (fc1, fc2) after each task.",
    "bias_median": "Median bias of the hidden layers (fc1, fc2) after each task.",
    "val_loss": "Evaluation loss on the seen classes after each task.",
    "probe_unseen": "Probe on the digits not trained yet (forward transfer measured on the "
                    "representation), after each task before they are trained. Dotted grey: "
                    "the same probe on the untrained network, the control.",
    "acc_til": "Task-incremental accuracy (logits masked to each task's classes) on the seen "
               "tasks after each task.",
}


@dataclass
class StudyFiles:
    """Where the report finds everything: the run's experiments, seeds, task counts, the
    workflow's path patterns (with {experiment}, {seed}, {task}, {section}, {figure}
    placeholders), the comparison sections (section -> experiments) and the settings
    (`defaults` and per-experiment `experiments`) for the protocol table."""

    experiments: list[str]
    seeds: list[int]
    tasks: dict[str, int]
    paths: dict
    analysis_seeds: list[int] = field(default_factory=list)  # with checkpoint figures

    def __post_init__(self):
        self.analysis_seeds = list(self.analysis_seeds) or list(self.seeds[:1])
    comparisons: dict[str, list[str]] = field(default_factory=dict)
    comparison_figures: dict[str, list[str]] = field(default_factory=dict)
    settings: dict | None = None

    def run(self, key: str, experiment: str, seed: int, name: str | None = None) -> str:
        pattern = self.paths[key][name] if name else self.paths[key]
        return pattern.format(experiment=experiment, seed=seed)

    def checkpoint(self, name: str, experiment: str, seed: int, task: int) -> str:
        return self.paths["checkpoint_figures"][name].format(
            experiment=experiment, seed=seed, task=task)

    def comparison(self, section: str, name: str) -> str:
        return self.paths["comparison_figure"].format(section=section, figure=name)

    def link(self, path: str) -> str:
        """`path` relative to the report's folder, for a link from the page."""
        report = Path(self.paths.get("report", "results/report.html"))
        return os.path.relpath(path, report.parent)

    def main_figures(self) -> list[str]:
        """The comparison and study figures, embedded at their natural size."""
        figures = [self.comparison(s, n) for s, names in self.comparison_figures.items()
                   for n in names]
        tuning = self.paths.get("tuning") or {}
        sweeps = [tuning["sweep"].format(experiment=e) for e in tuning.get("experiments", {})]
        return figures + list(self.paths.get("study_figures", {}).values()) + sweeps

    def detail_paths(self) -> list[str]:
        """The detail figures the page embeds: per run and per checkpoint, first analysed
        seed (`experiment_html`)."""
        seed = self.analysis_seeds[0]
        paths = []
        for experiment in self.experiments:
            tasks = self.tasks[experiment]
            paths += [self.run("run_figures", experiment, seed, name)
                      for name in RUN_FIGURE_CAPTIONS]
            if tasks > 1:
                paths += [self.run("task_figures", experiment, seed, name)
                          for name in TASK_FIGURE_CAPTIONS]
            paths += [self.checkpoint(name, experiment, seed, task)
                      for task in range(1, tasks + 1) for name in CHECKPOINT_FIGURE_CAPTIONS]
        return paths

    def detail_count(self) -> int:
        """How many detail figures (first seed, per run and per checkpoint) the page embeds."""
        return len(self.detail_paths())


def comparison_anchor(section: str, name: str) -> str:
    """The id of a comparison (or, with section 'study', a study) figure in the page."""
    return f"fig-{section}-{name}".replace("_", "-")


def experiment_html(files: StudyFiles, experiment: str, encoder: ImageEncoder) -> str:
    """An experiment's details, folded (the `experiment` macro of templates/parts.html.j2):
    its accuracy and probe tables, every per-run figure of the first seed and its
    per-checkpoint figures folded per task. Other seeds' figures are linked (their files),
    not embedded."""
    seed = files.analysis_seeds[0]
    tasks = files.tasks[experiment]
    captions = dict(RUN_FIGURE_CAPTIONS)
    if tasks > 1:
        captions.update(TASK_FIGURE_CAPTIONS)
    figures = [figure_html(files.run("run_figures" if name in RUN_FIGURE_CAPTIONS
                                     else "task_figures", experiment, seed, name),
                           f"{caption}: {experiment}, seed {seed}", encoder, True)
               for name, caption in captions.items()]
    checkpoints = [{"task": task, "figures": [
        figure_html(files.checkpoint(name, experiment, seed, task),
                    f"{caption}: {experiment}, seed {seed}, task {task}", encoder, True)
        for name, caption in CHECKPOINT_FIGURE_CAPTIONS.items()]}
        for task in range(1, tasks + 1)]
    other_seeds = [{"seed": s, "folder": files.link(str(Path(
        files.run("accuracy_matrix", experiment, s)).parent))}
        for s in files.seeds if s != seed]
    return str(_parts().experiment(
        experiment, section_id(experiment), seed, tasks == 1,
        table_html(pd.read_csv(files.run("accuracy_matrix", experiment, seed))), figures,
        table_html(pd.read_csv(files.run("probe_table", experiment, seed)), digits=2),
        checkpoints, other_seeds))


def _study_table(files: StudyFiles, name: str) -> pd.DataFrame:
    return pd.read_csv(files.paths["study_tables"][name])


VERDICT_CLASS = {"holds": "holds", "does not hold": "fails", "inconclusive": "inconclusive",
                 "untested (n = 1)": "untested", "not run": "notrun"}


def _number(value) -> str:
    return "" if pd.isna(value) else f"{value:.3f}"


def findings_html(findings: pd.DataFrame, files: StudyFiles, present: set[str]) -> str:
    """The findings table (templates/findings.html.j2): per claim, its verdict and, per
    part, the effect with its interval and n, the margin, the part's verdict and the
    evidence; the claims not run folded below."""
    from clexp.findings import CLAIMS, VERDICTS, multiplicity_note

    why = {claim.key: claim.why for claim in CLAIMS}
    claims = []
    for key, rows in findings.groupby(findings["key"].str.split(".").str[0], sort=False):
        first = rows.iloc[0]
        section, figure = first["figure"].split("/", 1)
        anchor = comparison_anchor(section, figure)
        parts = []
        for row in rows.itertuples():
            interval = ("" if pd.isna(row.ci_low) else
                        f" [{_number(row.ci_low)}, {_number(row.ci_high)}]")
            effect = "" if pd.isna(row.effect) else (
                f"{_number(row.effect)}{interval} (n={int(row.n)})")
            parts.append({"effect": effect, "margin": row.comparison,
                          "verdict": row.verdict, "css": VERDICT_CLASS[row.verdict],
                          "evidence": row.evidence})
        claims.append({
            "key": key, "section": first["section"], "finding": first["finding"],
            "why": why.get(key, ""), "verdict": first["claim_verdict"],
            "css": VERDICT_CLASS[first["claim_verdict"]], "parts": parts,
            "anchor": anchor if anchor in present else "",
            "figure_label": f"{section.replace('_', ' ')}: {figure.replace('_', ' ')}",
        })
    verdicts = pd.Series([c["verdict"] for c in claims], dtype=object)
    counts = [(v, int((verdicts == v).sum())) for v in VERDICTS if (verdicts == v).any()]
    chance = multiplicity_note(findings)
    method_note = (
        "Each part compares an effect (e.g. the difference of two means over seeds) with a "
        "margin read from the claim's wording; its interval is the one-sided 95 % bound(s) "
        "from Student's t over the seeds (paired when both numbers come from the same runs, "
        "Welch's t for two experiments; sd floored at 0.001 or the claim's own floor). A "
        "claim holds when all its parts hold at its Holm level, adjusted across the "
        f"{chance['tested']} claims tested: the chance that any \u201cholds\u201d is "
        "wrong is at most 5 %. Unadjusted, about "
        f"{chance['chance_flips']:.1f} of them could hold by chance alone; "
        f"{chance['lost_to_adjustment']} claims clear their margins at 95 % but not after "
        "the adjustment, and read inconclusive. \u201cDoes not hold\u201d: a part's "
        "interval lies wholly on the wrong side of its margin (unadjusted). One seed gives "
        "\u201cuntested (n = 1)\u201d. Equivalence (|effect| < margin) is tested as two "
        "one-sided tests. Claims about the representation compare with the untrained "
        "network (task 0, the same probe protocol). Evidence: after the last task unless "
        f"said. From {files.paths['findings']}."
    )
    return _templates().get_template("findings.html.j2").render(
        counts=counts, seeds=", ".join(map(str, files.seeds)), method_note=method_note,
        run=[c for c in claims if c["verdict"] != "not run"],
        absent=[c for c in claims if c["verdict"] == "not run"])


PROTOCOL_SKIP = {"name", "dataset"}


def _setting_text(value) -> str:
    if isinstance(value, list) and value and isinstance(value[0], list):
        return " ".join("[" + ",".join(map(str, t)) + "]" for t in value)
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def protocol_table(defaults: dict, runs: dict[str, dict], experiments: list[str]) -> pd.DataFrame:
    """Every experiment's settings that differ from `defaults`: one column per setting that
    differs somewhere, blank where the experiment keeps the default."""
    keys = [k for k in sorted({k for e in experiments for k in runs[e]} - PROTOCOL_SKIP)
            if any(runs[e].get(k) != defaults.get(k) for e in experiments)]
    records = []
    for experiment in experiments:
        run = runs[experiment]
        records.append({"experiment": experiment, **{
            k: _setting_text(run.get(k)) if run.get(k) != defaults.get(k) else ""
            for k in keys}})
    table = pd.DataFrame(records, columns=["experiment", *keys])
    default_row = {"experiment": "(defaults)",
                   **{k: _setting_text(defaults.get(k)) for k in keys}}
    return pd.concat([pd.DataFrame([default_row]), table], ignore_index=True)


def fwt_html(files: StudyFiles, summary: pd.DataFrame, checkpoints: pd.DataFrame) -> str:
    """Why class-incremental FWT is no measure here, beside the probe-based forward
    transfer that is."""
    untrained = checkpoints.groupby(["experiment", "seed"])["untrained_acc"].first()
    table = summary[["experiment", "seed", "fwt"]].copy()
    table["untrained_acc"] = [untrained.get((e, s)) for e, s in
                              zip(table["experiment"], table["seed"], strict=True)]
    table["fwt + untrained_acc"] = table["fwt"] + table["untrained_acc"]
    transfer = _study_table(files, "forward_transfer")
    if not transfer.empty:
        probe = transfer.groupby(["experiment", "seed"])["probe_unseen_acc"].mean()
        table["probe on unseen digits (mean over tasks before them)"] = [
            probe.get((e, s)) for e, s in zip(table["experiment"], table["seed"], strict=True)]
    table = table[table["fwt"].notna()]
    return (
        "<p><strong>What FWT means here.</strong> FWT is the mean over tasks j &gt; 1 of "
        "R[j−1, j] − b<sub>j</sub>: accuracy on task j just before training it, minus an "
        "untrained network's. With one 10-way head trained class-incrementally, a network "
        "never predicts a class it has not been trained on, so R[j−1, j] ≈ 0 and FWT ≈ "
        "−(untrained accuracy) by construction, whatever the representation holds. The probe "
        "on the not-yet-trained digits (a linear read-out of h2 fit on those digits) measures "
        "forward transfer of the representation instead.</p>" + table_html(table)
    )


def ogd_alignment_html(checkpoints: pd.DataFrame) -> str:
    """How orthogonal OGD's applied updates were: per OGD run and task, the mean and max over
    the task's steps of |cos(update, span of the basis)|, means over seeds."""
    column = "ogd_update_alignment_mean"
    if column not in checkpoints or checkpoints[column].isna().all():
        return ""
    rows = checkpoints.dropna(subset=[column])
    grouped = rows.groupby(["experiment", "task"], sort=False)
    table = grouped[[column, "ogd_update_alignment_max"]].mean()
    table = table.map(lambda v: f"{v:.2g}")
    table["seeds"] = grouped[column].count()
    table = table.reset_index().rename(columns={
        column: "mean |cos| over the task's steps",
        "ogd_update_alignment_max": "max |cos|"})
    return (
        "<p><strong>Were OGD's updates orthogonal?</strong> OGD projects each gradient off "
        "the stored directions; the optimizer then turns the gradient into the update. The "
        "table gives, for every task after the first, the mean and max over its steps of "
        "|cos(Δθ, span of the basis)| of the update actually applied (means over seeds; "
        "<code>ogd_update_alignment_mean</code>/<code>_max</code> in metrics.json). A random "
        "direction has about √(k/P) for k basis rows and P = 105,214 parameters: "
        "0.003–0.006 for the notebook's one row per task, up to 0.09 for OGD-GTL's 200 per "
        "task. With SGD, or with "
        "<code>ogd_project: step</code>, the update is orthogonal up to float32 rounding; "
        "with AdamW projecting the gradient (the study's <code>ogd_adam*</code> protocol), "
        "AdamW's per-parameter scaling, momentum and decoupled decay tilt the update back "
        "towards the basis, so OGD's guarantee does not hold for those runs.</p>"
        + table_html(table)
    )


def ogd_basis_cost_html(checkpoints: pd.DataFrame, members: list[str]) -> str:
    """What the basis cost OGD runs `members` while each task trained: its rows, its float64
    size and the multiply-adds of one projection (2 k P), means over seeds."""
    if "ogd_projection_rows" not in checkpoints:
        return ""
    rows = checkpoints[checkpoints["experiment"].isin(members)].dropna(
        subset=["ogd_projection_rows"])
    rows = rows[rows["task"] > 1]
    if rows.empty:
        return ""
    table = rows.groupby(["experiment", "task"], sort=False)[
        ["ogd_projection_rows", "ogd_basis_bytes"]].mean().reset_index()
    table["multiply-adds per projection"] = (2 * table["ogd_basis_bytes"] / 8).map(
        lambda v: f"{v:,.0f}")
    table["basis (MB)"] = (table["ogd_basis_bytes"] / 1e6).map(lambda v: f"{v:,.1f}")
    table["basis rows"] = table["ogd_projection_rows"].map(lambda v: f"{v:,.0f}")
    table = table[["experiment", "task", "basis rows", "basis (MB)",
                   "multiply-adds per projection"]]
    return (
        "<p><strong>What OGD-GTL's basis costs.</strong> The basis that constrained each task "
        "(up to <code>ogd_memory</code> rows per earlier task, float64) and the multiply-adds "
        "of projecting one step's gradient off it (2 k P; the notebook's variant holds one "
        "row per earlier task). <code>python -m clexp.bench loop</code> times one training "
        "step with both bases.</p>" + table_html(table)
    )


def one_task_html(by_experiment: pd.DataFrame, members: list[str], tasks: dict) -> str:
    """The numbers of the section's one-task (joint) runs, as table rows."""
    chosen = [e for e in members if tasks[e] == 1]
    if not chosen:
        return ""
    rows = by_experiment[by_experiment["experiment"].isin(chosen)]
    return ("<p>One-task runs (joint training; no per-task axis, so no per-task figures): "
            "mean ± sd over seeds.</p>" + table_html(summary_with_spread(rows, ONE_TASK_COLUMNS)))


def scenario_table_html(files: StudyFiles) -> str:
    """The reference methods in the three scenarios (results/study/scenarios.csv,
    `clexp.study.scenario_table`) in Table 4's layout (templates/scenarios.html.j2); empty
    when the run has none of them."""
    from clexp.study import SCENARIO_COLUMNS

    table = _study_table(files, "scenarios")
    if table.empty:
        return ""

    def value(row, key):
        item = row.get(key)
        return None if item is None or pd.isna(item) else item

    rows = [{"group": row["group"], "method": row["method"],
             "strength": "" if pd.isna(row["strength"]) else row["strength"],
             "cells": {s: {"experiment": value(row, f"{s}_experiment"),
                           "mean": value(row, f"{s}_mean"), "sd": value(row, f"{s}_sd"),
                           "n": int(value(row, f"{s}_n") or 0)}
                       for s in SCENARIO_COLUMNS}}
            for row in table.to_dict("records")]
    defaults = (files.settings or {}).get("defaults", {})
    return ("<h3>The reference methods in the three scenarios</h3>"
            + _templates().get_template("scenarios.html.j2").render(
                rows=rows, columns=SCENARIO_COLUMNS, epochs=defaults.get("epochs", 4),
                batch_size=defaults.get("batch_size", 64)))


def published_html(files: StudyFiles) -> str:
    """The run's ACC beside the published numbers (`clexp.published`, the table the
    `published_table` rule writes; templates/published.html.j2); empty when the run names no
    published table."""
    from clexp.published import SCENARIOS, comparison_rows

    path = files.paths.get("published")
    if not path:
        return ""
    table = pd.read_csv(path, keep_default_na=False,
                        na_values={c: [""] for c in ("measured_mean", "measured_sd",
                                                     "published_mean", "published_sd",
                                                     "difference")})
    titles = {"class": "Class-IL", "task": "Task-IL", "domain": "Domain-IL"}
    sources = list(dict.fromkeys(s for s in table["source"] if s))
    return _templates().get_template("published.html.j2").render(
        rows=comparison_rows(table), columns={s: titles[s] for s in SCENARIOS},
        table_path=path, published_path=files.paths.get("published_source", ""),
        sources=sources)


def comparisons_html(files: StudyFiles, section: str, encoder: ImageEncoder) -> str:
    """The figures that open a section: its experiments against seq, one quantity each."""
    experiments = files.comparisons.get(section)
    if not experiments:
        return ""
    seeds = ", ".join(map(str, files.seeds))
    parts = [f"<p>Compared: {html.escape(', '.join(experiments))} (seeds {seeds}; band: ±1 sd "
             "over seeds where there are several; dashed: one-task runs).</p>"]
    for name in files.comparison_figures.get(section, []):
        parts.append(figure_html(files.comparison(section, name),
                                 COMPARISON_CAPTIONS[name], encoder,
                                 anchor=comparison_anchor(section, name),
                                 wide=name in ("retention", "matrices")))
    return '<div class="comparisons">' + "".join(parts) + "</div>"


def build_report(files: StudyFiles, max_bytes: int = MAX_REPORT_BYTES, threads: int = 1) -> str:
    """The study report: the findings first, then the study's sections, each opening with
    its comparison figures and protocol rows and ending with its experiments' details
    (folded); then the summary. Figures are encoded to keep the page under `max_bytes`,
    the detail figures `threads` at a time (the same page with any number)."""
    details = files.detail_paths()
    encoder = ImageEncoder(files.main_figures(), len(details), max_bytes)
    encoder.encode_details(details, threads)
    groups = group_experiments(files.experiments)
    by_experiment = pd.read_csv(files.paths["by_experiment"])
    summary = pd.read_csv(files.paths["summary"])
    checkpoints = pd.read_csv(files.paths["checkpoints"])
    protocol = None
    if files.settings:
        protocol = protocol_table(files.settings["defaults"], files.settings["experiments"],
                                  files.experiments)

    section_html: dict[str, list[str]] = {}
    for name in REPORT_SECTIONS:
        members = groups.get(name, [])
        # a section opens for its own experiments or for a comparison of this run's (the
        # forward-transfer probe of seq_bn without the other task orders, say)
        compared = comparison_sections(name)
        if not members and not set(compared) & set(files.comparisons):
            if name != "Representation strength":
                continue
        if len(compared) == 1:
            parts = [comparisons_html(files, compared[0], encoder)]
        else:  # one block per scenario, each against its own plain sequential run
            parts = [f"<h3>{SCENARIO_SECTION_TITLES.get(c, c)}</h3>"
                     + comparisons_html(files, c, encoder)
                     for c in compared if c in files.comparisons]
        if protocol is not None and members:
            rows = protocol[protocol["experiment"].isin(["(defaults)", *members])]
            differ = (rows[rows["experiment"] != "(defaults)"] != "").any(axis=0)
            rows = rows.loc[:, differ | (rows.columns == "experiment")]
            parts.append("<p>How these runs differ from the defaults:</p>" + table_html(rows))
        parts.append(one_task_html(by_experiment, members, files.tasks))
        section_html[name] = parts
    if "Scenarios" in section_html:
        section_html["Scenarios"].insert(0, scenario_table_html(files))
    section_html["Representation strength"].append(untrained_control_html(files, checkpoints))
    section_html["Representation strength"].append(representation_html(files))
    summary_parts: list[str] = []

    def place(home: str, content: str) -> None:
        section_html.get(home, summary_parts).append(content)

    for home, name, caption in (
        ("Weight decay", "weight_decay_sweep", "Weight-decay sweep (means over seeds)"),
        ("Sparsity", "l1_sweep", "L1 sweep: lambda vs accuracy vs sparsity (means over seeds)"),
        ("OGD", "eval_loss_comparison", "Evaluation loss: plain vs BN vs OGD + BN"),
    ):
        table = _study_table(files, name)
        if not table.empty:
            place(home, f"<p>{html.escape(caption)}:</p>" + table_html(table)
                  + figure_html(files.paths["study_figures"][name], caption, encoder,
                                anchor=comparison_anchor("study", name)))
    transfer = _study_table(files, "forward_transfer")
    if not transfer.empty:
        place("Forward transfer", "<p>Probe on the not-yet-trained digits after every task "
              "(forward transfer):</p>" + table_html(transfer))
    place("Forward transfer", fwt_html(files, summary, checkpoints))
    alignment = ogd_alignment_html(checkpoints)
    if alignment:
        place("OGD", alignment)
    cost = ogd_basis_cost_html(checkpoints, groups.get("OGD-GTL", []))
    if cost:
        place("OGD-GTL", cost)
    for section, members in groups.items():
        section_html[section].append(
            "<h3>Experiments in detail</h3>"
            + "".join(experiment_html(files, e, encoder) for e in members))

    sections = [(name, "".join(section_html[name])) for name in REPORT_SECTIONS
                if name in section_html]
    if protocol is not None:
        sections.insert(0, ("Protocol", (
            "<p>Every experiment's settings that differ from <code>defaults</code> (blank: the "
            "default, first row). Each section repeats its own rows.</p>"
            + table_html(protocol))))
    against_paper = published_html(files)
    if against_paper:  # what a run against a paper is for: first
        sections.insert(0, ("Against the published numbers", against_paper))
    summary_html = (
        "<p>Mean ± standard deviation over seeds. ACC: mean accuracy over tasks after the "
        "last task; BWT: backward transfer; FWT: forward transfer against an untrained "
        "network (see Forward transfer: by construction here); forgetting: mean drop from "
        "the best accuracy on each earlier task; _til: task-incremental evaluation, where "
        "measured.</p>"
        + table_html(summary_with_spread(by_experiment, SUMMARY_COLUMNS))
        + "<p>Every run:</p>" + table_html(summary) + "".join(summary_parts)
    )
    tuned = tuning_html(files, by_experiment, encoder)
    if tuned:
        sections.append(("Choosing settings on the validation split", tuned))
    sections.append(("Summary", summary_html))
    # Only the benchmark files of this run's jobs; one that is not a table is named, not read.
    unreadable: list[str] = []
    timing = (rule_time_table(files.paths["benchmarks"], files=files.paths.get("benchmark_files"),
                              unreadable=unreadable)
              if files.paths.get("benchmarks") else None)
    if timing is not None and (not timing.empty or unreadable):
        left_out = ("<p>Left out: " + "; ".join(html.escape(m) for m in unreadable) + "</p>"
                    if unreadable else "")
        sections.append(("Where the time goes", (
            "<p>Seconds and peak memory per rule, from the <code>benchmark:</code> files of "
            "this run's jobs finished before this report (informational: timings are not "
            "study results and do not make the report stale).</p>" + table_html(timing, digits=2)
            + left_out)))
    page = "".join(content for _, content in sections)
    present = set(re.findall(r'<figure id="([^"]+)"', page))
    findings = pd.read_csv(files.paths["findings"])
    steps = ", ".join(f"{count} at {scale:.0%} size, quality {quality}"
                      for (scale, quality), count in sorted(encoder.steps.items(), reverse=True))
    shown = files.analysis_seeds[0]
    others = (f" Figures of seed {shown} are embedded; the files of seeds "
              f"{', '.join(str(s) for s in files.seeds if s != shown)} are linked (seeds "
              "outside analysis.seeds have metrics and tables, no figures), and the "
              "comparisons show every seed." if len(files.seeds) > 1 else "")
    encoding_note = (
        "<p>Embedded figures: comparisons and sweeps as PNG at full size; per-run and "
        f"per-checkpoint figures as WebP ({steps}) to keep the page under "
        f"{max_bytes / 1e6:.0f} MB; the full-size PNGs are in <code>results/</code>.{others}"
        "</p>")
    sections = [(name, content + encoding_note if name == "Summary" else content)
                for name, content in sections]
    intro = ("<p>Class-incremental Split-MNIST with one 10-way head; every number below is "
             "rebuilt by <code>snakemake --cores 4 results/report.html</code>. Each finding is "
             "a set of comparisons with margins, decided by intervals over seeds "
             "(<code>clexp.findings</code>; how, below the table); details are folded."
             f"{others}</p>" + findings_html(findings, files, present))
    return render_report("clexp: catastrophic forgetting on Split-MNIST", sections, intro)


def untrained_control_html(files: StudyFiles, checkpoints: pd.DataFrame) -> str:
    """The untrained control beside the trained network after the last task, per experiment
    (means over seeds): probe accuracy on the seen classes, on all ten digits, sparsity."""
    path = files.paths.get("untrained")
    if not path or not Path(path).exists():
        return ""
    untrained = pd.read_csv(path)
    if untrained.empty:
        return ""
    rows = []
    for experiment in files.experiments:
        mine = untrained[untrained["experiment"] == experiment]
        last = checkpoints[(checkpoints["experiment"] == experiment)
                           & (checkpoints["task"] == files.tasks[experiment])]
        if mine.empty or last.empty:
            continue
        tasks = files.tasks[experiment]
        rows.append({
            "experiment": experiment, "seeds": len(mine),
            "probe, seen classes: untrained": mine[f"probe_acc_after{tasks}"].mean(),
            "probe, seen classes: trained": last["probe_acc"].mean(),
            "probe, all ten: untrained": mine["probe_all_acc"].mean(),
            "sparsity: untrained": mine["population_sparsity"].mean(),
            "sparsity: trained": last["population_sparsity"].mean(),
        })
    if not rows:
        return ""
    return (
        "<p><strong>The untrained control.</strong> The same network before any training "
        "(initialised with the run's seed, the network task 1 starts from), measured with the "
        "same instruments and probe protocol (<code>task0/metrics.json</code>, "
        f"<code>{html.escape(path)}</code>). A linear probe on random features already "
        "separates digits far above chance (0.1 for ten): a representation \u201csurvives\u201d "
        "only as far as the trained probe exceeds this one. Means over seeds, after the last "
        "task.</p>" + table_html(pd.DataFrame(rows))
    )


def representation_html(files: StudyFiles) -> str:
    """Representation strength three ways after the last task, per experiment (first seed):
    mean over seen classes of the saliency norm, probe coefficient norm and probe accuracy."""
    table = _study_table(files, "representation")
    seed = files.seeds[0]
    last = table[(table["seed"] == seed)
                 & (table["task"] == table["experiment"].map(files.tasks))]
    means = last.groupby("experiment", sort=False)[
        ["saliency_norm", "probe_coef_norm", "probe_acc"]].mean().reset_index()
    return (
        "<p>How strongly h2 still represents each digit after the last task (seed "
        f"{seed}; means over classes): (1) saliency norm ||(mean_c − mean_all) / std_all||, "
        "(2) linear-probe coefficient norm, (3) linear-probe accuracy. Per-class values are "
        f"in <code>{html.escape(files.paths['study_tables']['representation'])}</code> and "
        "each experiment's probe table.</p>" + table_html(means)
    )


def tuning_html(files: StudyFiles, by_experiment: pd.DataFrame,
                encoder: ImageEncoder | None = None) -> str:
    """The tuned experiments (templates/tuning.html.j2): per experiment its grid, the
    validation ACC of every point, the chosen values (and whether they lie at the grid's
    edge), the sweep figure and the test ACC of the experiment trained at the chosen values
    (from summary_by_experiment.csv). Empty when nothing is tuned."""
    tuning = files.paths.get("tuning") or {}
    if not tuning.get("experiments"):
        return ""
    from clexp.tuning import format_value

    means = by_experiment.set_index("experiment")
    blocks = []
    for name, grid in tuning["experiments"].items():
        table = pd.read_csv(tuning["selection"].format(experiment=name))
        chosen = table[table["chosen"]].iloc[0]
        edge = chosen["at_edge"] if isinstance(chosen["at_edge"], str) else ""
        if name in means.index and "avg_acc_mean" in means:
            mean, sd = means.loc[name, "avg_acc_mean"], means.loc[name, "avg_acc_sd"]
            test = f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"
        else:
            test = "not run"
        shown = table.assign(chosen=["✓" if c else "" for c in table["chosen"]])
        blocks.append({
            "name": name, "anchor": section_id(name),
            "grid": [{"name": s, "values": ", ".join(format_value(v) for v in values)}
                     for s, values in grid.items()],
            "points": len(table), "chosen": chosen["point"],
            "at_edge": edge.replace(";", ", "), "test_acc": test,
            "table": table_html(shown),
            "figure": figure_html(tuning["sweep"].format(experiment=name),
                                  f"{name}: validation ACC per grid point (chosen circled)",
                                  encoder, anchor=f"fig-tuning-{section_id(name)}"),
        })
    return _templates().get_template("tuning.html.j2").render(
        experiments=blocks, fraction=f"{tuning['validation_fraction']:.0%}",
        validation_seed=tuning["validation_seed"],
        selection_seeds=", ".join(map(str, tuning["selection_seeds"])))
