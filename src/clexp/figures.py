"""Figures drawn from the tables the evaluation writes (matplotlib, Agg; no torch)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from clexp.files import atomic_path  # noqa: E402

FIGURE_DPI = 80
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

    Columns: `step` (1-based epoch count over the whole run), `task`, `train_loss` (the loss
    minimised), `train_ce`, `train_penalty` (its cross-entropy and L1-penalty terms),
    `train_acc`, `val_loss` (cross-entropy), `val_acc`.
    """
    series = log.sort_values(["task", "epoch"]).reset_index(drop=True)
    series.insert(0, "step", range(1, len(series) + 1))
    return series[["step", "task", "train_loss", "train_ce", "train_penalty", "train_acc",
                   "val_loss", "val_acc"]]


def plot_learning_curves(log: pd.DataFrame, title: str, path: str | Path) -> pd.DataFrame:
    """Accuracy and cross-entropy per epoch (training data of the task; evaluation on the seen
    classes), like with like: the loss panel compares the training cross-entropy with the
    evaluation cross-entropy. A run with an L1 penalty gets a third panel with the training
    loss and its two terms.

    Returns the plotted series (see `learning_curve_series`).
    """
    series = learning_curve_series(log)
    penalised = bool((series["train_penalty"] > 0).any())
    panels = [("train_acc", "val_acc", "accuracy"), ("train_ce", "val_loss", "cross-entropy")]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, 3 if penalised else 2,
                                    figsize=(15 if penalised else 10, 4))
        for axis, (train, evaluation, label) in zip(axes, panels, strict=False):
            axis.plot(series["step"], series[train], marker="o", label="train (task)")
            axis.plot(series["step"], series[evaluation], marker="s",
                      label="evaluation (seen classes)")
            axis.set_ylabel(label)
        if penalised:
            axis = axes[2]
            for column, label in (("train_loss", "train loss (minimised)"),
                                  ("train_ce", "train cross-entropy"),
                                  ("train_penalty", "train L1 penalty")):
                axis.plot(series["step"], series[column], marker=".", label=label)
            axis.set_ylabel("training loss terms")
        for axis in axes:
            for boundary in series.loc[series["task"].diff() > 0, "step"]:
                axis.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=1)
            axis.set_xlabel("epoch (all tasks)")
            axis.legend()
        axes[0].set_ylim(0, 1.02)
        figure.suptitle(title)
        figure.tight_layout()
        save_figure(figure, path)
    return series


DIGIT_COLORS = plt.get_cmap("tab10")


def _figure(*args, **kwargs):
    with plt.rc_context(STYLE):
        return plt.subplots(*args, **kwargs)


# ---- per checkpoint ----


def plot_forgetting_curve(curve: pd.DataFrame, title: str, path: str | Path) -> pd.DataFrame:
    """Accuracy on the current and every earlier task while training one task.

    `curve` has columns step, epoch, batch, eval_task, acc. Returns it pivoted: one column per
    evaluated task (`task<j>`), indexed by step.
    """
    series = curve.pivot_table(index="step", columns="eval_task", values="acc")
    series.columns = [f"task{j}" for j in series.columns]
    figure, axis = _figure(figsize=(8, 4))
    for column in series.columns:
        axis.plot(series.index, series[column], marker=".", markersize=3, label=column)
    first_epoch_end = curve.loc[curve["epoch"] <= 1, "step"].max()
    axis.axvline(first_epoch_end, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("optimizer step (every batch in epoch 1, then once per epoch)")
    axis.set_ylabel("accuracy on the task's evaluation images")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.legend(title="evaluated task")
    save_figure(figure, path)
    return series


def plot_relative_updates(updates: pd.DataFrame, title: str, path: str | Path) -> pd.DataFrame:
    """||W_after - W_before|| / ||W_before|| per batch and layer, on a log scale."""
    layers = [c for c in updates.columns if c.startswith("fc")]
    figure, axis = _figure(figsize=(8, 4))
    for layer in layers:
        axis.plot(updates["step"], updates[layer], linewidth=0.8, label=layer)
    axis.set_yscale("log")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("relative update ||ΔW|| / ||W||")
    axis.set_title(title)
    axis.legend(title="layer")
    save_figure(figure, path)
    return updates[["step", *layers]]


def plot_gradient_maps(gradients: dict, title: str, path: str | Path) -> list[str]:
    """The accumulated signed gradient of each weight matrix, one heatmap per layer
    (rows = output units, columns = inputs); dead units show as empty rows and columns."""
    layers = sorted(k for k in gradients if k.startswith("fc"))
    figure, axes = _figure(1, len(layers), figsize=(4.5 * len(layers), 4))
    for axis, layer in zip(axes, layers, strict=True):
        values = gradients[layer]
        limit = float(abs(values).max()) or 1.0
        image = axis.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                            interpolation="nearest")
        axis.set_title(f"{layer} ({values.shape[0]} x {values.shape[1]})")
        axis.set_xlabel("input")
        axis.set_ylabel("output unit")
        axis.grid(False)
        figure.colorbar(image, ax=axis, shrink=0.8)
    figure.suptitle(title)
    # Fixed margins: tight_layout draws the figure an extra time.
    figure.subplots_adjust(left=0.05, right=0.98, top=0.84, bottom=0.12, wspace=0.3)
    save_figure(figure, path)
    return layers


def plot_probability_profile(arrays: dict, title: str, path: str | Path) -> int:
    """Mean softmax per true class, and a strip of example images each titled with its true
    and predicted digit (wrong ones marked) over a bar chart of its top-5 probabilities.

    The strip is one image axis (the examples side by side) over one bar axis (five bars per
    example, labelled with their digits): three axes instead of two per example, which is
    what the drawing time scales with. Returns the number of example images drawn.
    """
    import numpy as np

    images = np.asarray(arrays["example_images"], dtype=float)
    count = len(arrays["example_labels"])
    gap = 4  # blank pixels between two examples
    with plt.rc_context(STYLE):
        figure = plt.figure(figsize=(max(8, 1.3 * count), 8))
        profile_axis = figure.add_axes((0.07, 0.5, 0.8, 0.38))
        colorbar_axis = figure.add_axes((0.89, 0.5, 0.02, 0.38))
        strip_axis = figure.add_axes((0.07, 0.24, 0.9, 0.17))
        bars_axis = figure.add_axes((0.07, 0.05, 0.9, 0.15))

        profile = arrays["profile"]
        image = profile_axis.imshow(profile, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        profile_axis.set_yticks(range(len(arrays["profile_classes"])),
                                [str(c) for c in arrays["profile_classes"]])
        outputs = profile.shape[1]
        profile_axis.set_xticks(range(outputs))
        # domain-IL: two outputs, the digit's position within its task
        profile_axis.set_xlabel("output (digit)" if outputs == 10 else
                                "output (position within the task)")
        profile_axis.set_ylabel("true digit")
        profile_axis.set_title("mean softmax output per true class")
        profile_axis.grid(False)
        figure.colorbar(image, cax=colorbar_axis)

        if count:
            height, width = images.shape[1:3]
            strip = np.full((height, count * (width + gap) - gap), np.nan)
            for i in range(count):
                strip[:, i * (width + gap) : i * (width + gap) + width] = images[i]
            strip_axis.imshow(strip, cmap="gray_r", interpolation="nearest")
            for i in range(count):
                true, predicted = arrays["example_labels"][i], arrays["example_predictions"][i]
                target = arrays.get("example_targets", arrays["example_labels"])[i]
                wrong = " ✗" if target != predicted else ""
                strip_axis.text(i * (width + gap) + width / 2, -2, f"{true} → {predicted}{wrong}",
                                ha="center", va="bottom", fontsize=9,
                                color="crimson" if wrong else "black")
        strip_axis.axis("off")

        slots = 6  # five bars and a gap per example
        shown = np.asarray(arrays["example_top5_probs"]).shape[1] if count else 5
        positions = np.arange(count)[:, None] * slots + np.arange(shown)[None, :]
        bars_axis.bar(positions.ravel(), np.asarray(arrays["example_top5_probs"]).ravel(),
                      color="steelblue")
        bars_axis.set_xticks(
            positions.ravel(),
            [str(c) for c in np.asarray(arrays["example_top5_classes"]).ravel()], fontsize=7,
        )
        bars_axis.set_xlim(-1, max(count * slots - 1, 1))
        bars_axis.set_ylim(0, 1)
        bars_axis.set_ylabel("top-5 p")
        bars_axis.grid(False)
        figure.suptitle(title)
    save_figure(figure, path)
    return count


def plot_latent_map(arrays: dict, title: str, path: str | Path) -> list[str]:
    """2-D t-SNE of h2 (and h1 where computed), coloured by digit. Returns the panels drawn."""
    panels = [name for name in ("tsne_h1", "tsne_h2") if name in arrays]
    figure, axes = _figure(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
    labels = arrays["tsne_labels"]
    for axis, name in zip(axes[0], panels, strict=True):
        points = arrays[name]
        for digit in sorted(set(labels.tolist())):
            chosen = labels == digit
            axis.scatter(points[chosen, 0], points[chosen, 1], s=6, color=DIGIT_COLORS(digit),
                         label=str(digit))
        axis.set_title(f"t-SNE of {name.split('_')[1]}")
        axis.set_xlabel("t-SNE 1")
        axis.set_ylabel("t-SNE 2")
        axis.legend(title="digit", markerscale=2, fontsize=8)
    figure.suptitle(title)
    figure.subplots_adjust(left=0.08, right=0.97, top=0.86, bottom=0.11, wspace=0.25)
    save_figure(figure, path)
    return panels


def hidden_feature_row_labels(arrays: dict) -> list[str]:
    """Row labels of the hidden-features map: the digit, starred where not trained yet."""
    seen = arrays.get("hidden_features_seen")
    labels = arrays["hidden_features_labels"]
    if seen is None:
        seen = [True] * len(labels)
    return [f"{d}" if s else f"{d}*" for d, s in zip(labels, seen, strict=True)]


def plot_hidden_features(arrays: dict, title: str, path: str | Path) -> tuple[int, int]:
    """h2 of a fixed batch of evaluation images (rows, labelled by digit) x units: the same
    images after every task, digits not trained yet starred."""
    features = arrays["hidden_features"]
    figure, axis = _figure(figsize=(9, 4.5))
    image = axis.imshow(features, aspect="auto", cmap="magma", interpolation="nearest")
    axis.set_yticks(range(len(features)), hidden_feature_row_labels(arrays), fontsize=6)
    axis.set_xlabel("h2 unit")
    axis.set_ylabel("evaluation image (true digit; * not trained yet)")
    axis.set_title(title)
    axis.grid(False)
    figure.colorbar(image, ax=axis, label="activation")
    save_figure(figure, path)
    return features.shape


BIAS_SOURCE_LABELS = {
    "linear_bias": "bias (linear layer)",
    "batchnorm_shift": "effective bias (BN shift β)",
}


def bias_label(source) -> str:
    """How a figure names an effective bias of `source` (see clexp.analysis.effective_biases)."""
    return BIAS_SOURCE_LABELS.get(str(source), "bias")


def plot_weight_histograms(arrays: dict, title: str, path: str | Path) -> int:
    """Histograms of weights (top) and effective biases (bottom: BatchNorm's shift beta where
    BatchNorm follows the layer, else the linear bias) per layer. Returns the panel count."""
    layers = ("fc1", "fc2", "fc3")
    figure, axes = _figure(2, 3, figsize=(12, 6))
    for row, kind in enumerate(("weight", "bias")):
        for column, layer in enumerate(layers):
            counts = arrays[f"hist_{layer}_{kind}_counts"]
            edges = arrays[f"hist_{layer}_{kind}_edges"]
            axis = axes[row, column]
            axis.stairs(counts, edges, fill=True, alpha=0.7)
            source = arrays.get(f"hist_{layer}_bias_source", "linear_bias")
            axis.set_title(f"{layer} {'weights' if kind == 'weight' else bias_label(source)}")
            axis.set_xlabel("value")
            axis.set_ylabel("count")
    figure.suptitle(title)
    figure.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.09, hspace=0.5,
                           wspace=0.3)
    save_figure(figure, path)
    return 6


# ---- per run ----


def plot_accuracy_matrix(table: pd.DataFrame, title: str, path: str | Path) -> pd.DataFrame:
    """Heatmap of the accuracy matrix (rows: after task t; columns: evaluated task)."""
    columns = [c for c in table.columns if c.startswith("task")]
    matrix = table[columns].to_numpy(dtype=float)
    figure, axis = _figure(figsize=(1.3 * len(columns) + 3, 0.8 * len(matrix) + 2))
    axis.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            axis.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                      color="white" if matrix[i, j] < 0.6 else "black", fontsize=9)
    axis.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axis.set_yticks(range(len(matrix)), [f"after task {t}" for t in table["after_task"]])
    axis.set_xlabel("evaluated task")
    axis.set_title(title)
    axis.grid(False)
    figure.tight_layout()
    save_figure(figure, path)
    return table[["after_task", *columns]]


def plot_lines_per_task(frame: pd.DataFrame, columns: list[str], ylabel: str, title: str,
                        path: str | Path, log: bool = False) -> pd.DataFrame:
    """One line per column of `frame` against its `task` column."""
    figure, axis = _figure(figsize=(7, 4))
    for column in columns:
        axis.plot(frame["task"], frame[column], marker="o", label=column)
    axis.set_xticks(list(frame["task"]))
    axis.set_xlabel("after task")
    axis.set_ylabel(ylabel)
    if log:
        axis.set_yscale("log")
    axis.set_title(title)
    axis.legend(fontsize=8)
    save_figure(figure, path)
    return frame[["task", *columns]]


# ---- across experiments ----


def plot_sweep(table: pd.DataFrame, knob: str, title: str, path: str | Path,
               log_x: bool = False) -> pd.DataFrame:
    """A knob vs final accuracy (left axis) and sparsity (right axis), one point per
    experiment. An empty table (no such experiments in the run) draws a note instead."""
    figure, axis = _figure(figsize=(7, 4))
    if table.empty:
        axis.text(0.5, 0.5, "no experiment of this kind in the run", ha="center",
                  va="center", transform=axis.transAxes)
    else:
        # A log axis cannot show knob = 0: that point becomes a dotted reference line.
        positive = table[knob].astype(float) > 0
        shown = table[positive] if log_x else table
        axis.plot(shown[knob], shown["final_val_acc"], marker="o", color="tab:blue",
                  label="final accuracy")
        axis.set_ylabel("final accuracy", color="tab:blue")
        twin = axis.twinx()
        twin.plot(shown[knob], shown["final_sparsity"], marker="s", color="tab:red",
                  label="final sparsity")
        twin.set_ylabel("population sparsity", color="tab:red")
        if log_x and positive.any():
            axis.set_xscale("log")
        if log_x and not positive.all():
            zero = table[~positive].iloc[0]
            axis.axhline(zero["final_val_acc"], color="tab:blue", linestyle=":",
                         label=f"{knob} = 0 accuracy")
            twin.axhline(zero["final_sparsity"], color="tab:red", linestyle=":")
        axis.legend(loc="lower left", fontsize=8)
    axis.set_xlabel(knob)
    axis.set_title(title)
    save_figure(figure, path)
    return table


def plot_eval_loss_comparison(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Evaluation loss after each task: one line per experiment, styled by group."""
    styles = {"plain": "-", "BN": "--", "OGD + BN": ":"}
    figure, axis = _figure(figsize=(8, 4.5))
    for experiment, rows in table.groupby("experiment", sort=False):
        group = rows["group"].iloc[0]
        axis.plot(rows["task"], rows["val_loss"], marker="o",
                  linestyle=styles.get(group, "-"), label=f"{experiment} ({group})")
    if table.empty:
        axis.text(0.5, 0.5, "no experiment of this kind in the run", ha="center",
                  va="center", transform=axis.transAxes)
    else:
        axis.legend(fontsize=7)
    axis.set_xlabel("after task")
    axis.set_ylabel("evaluation loss (seen classes)")
    axis.set_title("Evaluation loss: plain vs BN vs OGD + BN")
    save_figure(figure, path)
    return table


def plot_tuning_sweep(table: pd.DataFrame, title: str, path: str | Path) -> dict:
    """Validation ACC against the first tuned setting, one line per value of the second (if
    any), the chosen point circled (`clexp.tuning.sweep_series`: the data drawn, returned)."""
    from clexp.tuning import sweep_series

    data = sweep_series(table)
    figure, axis = _figure(figsize=(7, 4))
    for label, (xs, ys) in data["series"].items():
        axis.plot(xs, ys, marker="o", label=label)
    x, y = data["chosen"]
    axis.plot([x], [y], marker="o", markersize=14, markerfacecolor="none",
              markeredgecolor="black", linestyle="none", label="chosen")
    if data["log_x"]:
        axis.set_xscale("log")
    axis.set_xlabel(data["x"])
    axis.set_ylabel("validation ACC (mean over selection seeds)")
    axis.legend(loc="best", fontsize=8)
    axis.set_title(title)
    save_figure(figure, path)
    return data
