"""Figures drawn from the tables the evaluation writes (matplotlib, Agg; no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from clexp.files import atomic_path  # noqa: E402

FIGURE_DPI = 100
STYLE = {
    "figure.figsize": (8, 4.5),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
}


def save_figure(figure, path: str | Path) -> None:
    """Save a figure as PNG atomically and close it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=FIGURE_DPI)
    plt.close(figure)


def learning_curve_series(log: pd.DataFrame) -> pd.DataFrame:
    """The data behind the learning-curve figure: one row per epoch over all tasks.

    Columns: `step` (1-based epoch count over the whole run), `task`, `train_loss`,
    `train_acc`, `val_loss`, `val_acc`.
    """
    series = log.sort_values(["task", "epoch"]).reset_index(drop=True)
    series.insert(0, "step", range(1, len(series) + 1))
    return series[["step", "task", "train_loss", "train_acc", "val_loss", "val_acc"]]


def plot_learning_curves(log: pd.DataFrame, title: str, path: str | Path) -> pd.DataFrame:
    """Accuracy and loss per epoch (training data of the task; evaluation on seen classes).

    Returns the plotted series (see `learning_curve_series`).
    """
    series = learning_curve_series(log)
    with plt.rc_context(STYLE):
        figure, (acc_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 4))
        for axis, metric, label in ((acc_axis, "acc", "accuracy"), (loss_axis, "loss", "loss")):
            axis.plot(series["step"], series[f"train_{metric}"], marker="o", label="train (task)")
            axis.plot(series["step"], series[f"val_{metric}"], marker="s",
                      label="evaluation (seen classes)")
            for boundary in series.loc[series["task"].diff() > 0, "step"]:
                axis.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=1)
            axis.set_xlabel("epoch (all tasks)")
            axis.set_ylabel(label)
            axis.legend()
        acc_axis.set_ylim(0, 1.02)
        figure.suptitle(title)
        figure.tight_layout()
        save_figure(figure, path)
    return series
