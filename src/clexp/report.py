"""The self-contained HTML report: tables and embedded figures, no torch."""

from __future__ import annotations

import base64
import html
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
"""


def embed_image(path: str | Path, alt: str) -> str:
    """An <img> tag carrying the PNG at `path` as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def figure_html(path: str | Path, caption: str) -> str:
    """A captioned, embedded figure."""
    return (f"<figure>{embed_image(path, caption)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as an HTML table with floats rounded."""
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}f}", na_rep="",
                         border=0)


def section_id(title: str) -> str:
    """An anchor id for a section title."""
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def render_report(title: str, sections: list[tuple[str, str]], intro: str = "") -> str:
    """The page: a title, a table of contents and the sections (title, inner HTML)."""
    toc = "".join(
        f'<li><a href="#{section_id(name)}">{html.escape(name)}</a></li>' for name, _ in sections
    )
    body = "".join(
        f'<section id="{section_id(name)}"><h2>{html.escape(name)}</h2>{content}</section>'
        for name, content in sections
    )
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{intro}<nav><h2>Contents</h2><ol>{toc}</ol></nav>"
        f"{body}</body></html>\n"
    )


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
}


# Sections of the report in the study's order: representation strength (built from every
# experiment) follows the sparsity experiments.
REPORT_SECTIONS = list(STUDY_SECTIONS)
REPORT_SECTIONS.insert(REPORT_SECTIONS.index("Sparsity") + 1, "Representation strength")
REPORT_SECTIONS.append("Other experiments")


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
        means, spreads = by_experiment[f"{metric}_mean"], by_experiment[f"{metric}_sd"]
        table[metric] = [
            f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}"
            for m, s in zip(means, spreads, strict=True)
        ]
    return table


SUMMARY_COLUMNS = ["final_val_acc", "final_probe_acc", "final_sparsity", "avg_acc", "bwt",
                   "fwt", "avg_forgetting"]

RUN_FIGURE_CAPTIONS = {
    "accuracy_matrix": "Accuracy matrix (rows: after task t; columns: evaluated task)",
    "learning_curves": "Learning curves (per epoch, all tasks)",
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


@dataclass
class StudyFiles:
    """Where the report finds everything: the run's experiments, seeds, task counts and the
    workflow's path patterns (with {experiment}, {seed}, {task} placeholders)."""

    experiments: list[str]
    seeds: list[int]
    tasks: dict[str, int]
    paths: dict
    analysis_seeds: list[int] = field(default_factory=list)  # with checkpoint figures

    def __post_init__(self):
        self.analysis_seeds = list(self.analysis_seeds) or list(self.seeds[:1])

    def run(self, key: str, experiment: str, seed: int, name: str | None = None) -> str:
        pattern = self.paths[key][name] if name else self.paths[key]
        return pattern.format(experiment=experiment, seed=seed)

    def checkpoint(self, name: str, experiment: str, seed: int, task: int) -> str:
        return self.paths["checkpoint_figures"][name].format(
            experiment=experiment, seed=seed, task=task)


def experiment_html(files: StudyFiles, experiment: str) -> str:
    """An experiment's figures and tables: every per-run figure of the first analysed seed,
    its probe table, and its per-checkpoint figures folded per task."""
    seed = files.analysis_seeds[0]
    parts = [f"<h3 id=\"{section_id(experiment)}\">{html.escape(experiment)}</h3>"]
    if len(files.seeds) > 1:
        parts.append(f"<p>Figures of seed {seed}; the summary gives mean ± sd over seeds "
                     f"{', '.join(map(str, files.seeds))}.</p>")
    matrix = pd.read_csv(files.run("accuracy_matrix", experiment, seed))
    parts.append(f"<p>Accuracy after each task ({experiment}, seed {seed}):</p>"
                 + table_html(matrix))
    for name, caption in RUN_FIGURE_CAPTIONS.items():
        parts.append(figure_html(files.run("run_figures", experiment, seed, name),
                                 f"{caption}: {experiment}, seed {seed}"))
    probes = pd.read_csv(files.run("probe_table", experiment, seed))
    parts.append(f"<p>Linear-probe accuracy per class after each task ({experiment}, seed "
                 f"{seed}):</p>" + table_html(probes, digits=2))
    for task in range(1, files.tasks[experiment] + 1):
        figures = "".join(
            figure_html(files.checkpoint(name, experiment, seed, task),
                        f"{caption}: {experiment}, seed {seed}, task {task}")
            for name, caption in CHECKPOINT_FIGURE_CAPTIONS.items()
        )
        parts.append(f"<details><summary>Checkpoint after task {task}: {experiment}, seed "
                     f"{seed}</summary>{figures}</details>")
    return "".join(parts)


def _study_table(files: StudyFiles, name: str) -> pd.DataFrame:
    return pd.read_csv(files.paths["study_tables"][name])


def build_report(files: StudyFiles) -> str:
    """The study report, organised like the study; each section holds only experiments of
    this run. A cross-experiment table or figure goes to the section it belongs to, or to the
    summary when that section has no experiment in this run."""
    groups = group_experiments(files.experiments)
    section_html = {section: [] for section in groups}
    section_html["Representation strength"] = [representation_html(files)]
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
                  + figure_html(files.paths["study_figures"][name], caption))
    transfer = _study_table(files, "forward_transfer")
    if not transfer.empty:
        place("Forward transfer", "<p>Probe on the not-yet-trained digits after every task "
              "(forward transfer):</p>" + table_html(transfer))
    for section, members in groups.items():
        section_html[section].extend(experiment_html(files, e) for e in members)

    sections = [(name, "".join(section_html[name])) for name in REPORT_SECTIONS
                if name in section_html]

    by_experiment = pd.read_csv(files.paths["by_experiment"])
    summary = pd.read_csv(files.paths["summary"])
    summary_html = (
        "<p>Mean ± standard deviation over seeds. ACC: mean accuracy over tasks after the "
        "last task; BWT: backward transfer; FWT: forward transfer against an untrained "
        "network; forgetting: mean drop from the best accuracy on each earlier task.</p>"
        + table_html(summary_with_spread(by_experiment, SUMMARY_COLUMNS))
        + "<p>Every run:</p>" + table_html(summary) + "".join(summary_parts)
    )
    sections.append(("Summary", summary_html))
    timing = rule_time_table(files.paths["benchmarks"]) if files.paths.get("benchmarks") else None
    if timing is not None and not timing.empty:
        sections.append(("Where the time goes", (
            "<p>Seconds and peak memory per rule, from the <code>benchmark:</code> files of "
            "the jobs finished before this report (informational: timings are not study "
            "results and do not make the report stale).</p>" + table_html(timing, digits=2))))
    intro = ("<p>Class-incremental Split-MNIST with one 10-way head; every number below is "
             "rebuilt by <code>snakemake --cores 4 results/report.html</code>. Per-checkpoint "
             "figures are folded under each experiment.</p>")
    return render_report("clexp: catastrophic forgetting on Split-MNIST", sections, intro)


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
