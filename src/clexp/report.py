"""The self-contained HTML report: tables and embedded figures, no torch."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

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
    "Weight decay": ["seq_wd01", "seq_wd1", "seq_wd5"],
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


def build_report(
    summary: pd.DataFrame,
    by_experiment: pd.DataFrame,
    runs: dict[str, dict[int, dict[str, str]]],
) -> str:
    """The study report. `runs[experiment][seed]` maps `accuracy_matrix` and
    `learning_curves` to the files of that run."""
    metrics = ["final_val_acc", "final_probe_acc", "final_sparsity", "avg_acc", "bwt", "fwt",
               "avg_forgetting"]
    sections = []
    for section, members in group_experiments(list(runs)).items():
        parts = []
        for experiment in members:
            parts.append(f"<h3>{html.escape(experiment)}</h3>")
            for seed, files in runs[experiment].items():
                matrix = pd.read_csv(files["accuracy_matrix"])
                parts.append(
                    f"<p>Accuracy after each task (seed {seed}; columns: evaluation images of "
                    "each task, all ten outputs):</p>" + table_html(matrix)
                )
                parts.append(figure_html(
                    files["learning_curves"],
                    f"Learning curves: {experiment}, seed {seed}, all tasks",
                ))
        sections.append((section, "".join(parts)))
    summary_html = (
        "<p>Mean ± standard deviation over seeds. ACC: mean accuracy over tasks after the "
        "last task; BWT: backward transfer; FWT: forward transfer against an untrained "
        "network; forgetting: mean drop from the best accuracy on each earlier task.</p>"
        + table_html(summary_with_spread(by_experiment, metrics))
        + "<p>Every run:</p>"
        + table_html(summary)
    )
    sections.append(("Summary", summary_html))
    intro = ("<p>Class-incremental Split-MNIST with one 10-way head; every number below is "
             "rebuilt by <code>snakemake --cores 4 results/report.html</code>.</p>")
    return render_report("clexp: catastrophic forgetting on Split-MNIST", sections, intro)
