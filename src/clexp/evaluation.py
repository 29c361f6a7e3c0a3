"""Evaluate one checkpoint: accuracies, sparsity and linear probes -> the `metrics.json` dict.

Schema of `metrics.json` (accuracies are fractions in [0, 1]; class keys are strings):
`experiment`, `seed`, `task` (1-based), `num_tasks`, `tasks`, `classes_seen`,
`val_acc`, `val_loss` (evaluation images of the seen classes, all ten logits),
`per_class_acc` (seen classes), `per_task_acc` (one value per task of the run, future tasks
included), `per_task_acc_til` (the same with the logits masked to each task's own classes:
task-incremental evaluation), `init_per_task_acc` (the untrained network, for forward transfer),
`population_sparsity` (exact zeros in h1 and h2 pooled, evaluation set),
`sparsity_h1`, `sparsity_h2`, `probe_acc`, `probe_per_class_acc`, `probe_coef_norm`
(logistic regression on h2 of the seen classes), `probe_unseen_classes`, `probe_unseen_acc`,
`probe_unseen_per_class_acc` (probe on classes not trained yet; null when not asked or none
are left), `probe_all_acc`, `probe_all_per_class_acc` (probe on all ten classes; null when not
asked), `epochs_run`, `stopped_early`, `ogd_basis_size`, `config_hash`, `method` (the
continual-learning method's name) and what the method measured over the task: for OGD
`ogd_update_alignment_mean`, `ogd_update_alignment_max` (|cos| of the applied update with the
basis' span over the task's steps; null when the basis was empty) and
`ogd_update_alignment_steps`, for A-GEM `agem_projected_steps`; `weight_stats`, `bias_stats`
(per layer: mean, median, std of the effective bias: BatchNorm's shift beta for a hidden layer
followed by BatchNorm, else the linear layer's bias; see `clexp.analysis.effective_biases`),
`bias_source` (per layer: `batchnorm_shift` or `linear_bias`) and `saliency_norm` (per seen
class, on h2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clexp.analysis import checkpoint_analysis, checkpoint_scalars
from clexp.checkpoint import load_checkpoint
from clexp.config import config_hash, seen_classes, training_config
from clexp.data import balanced_subset, class_mask, load_dataset
from clexp.metrics import (
    accuracy,
    cross_entropy,
    per_class_accuracy,
    per_task_accuracy,
    per_task_accuracy_til,
    population_sparsity,
)
from clexp.model import build_model
from clexp.probes import linear_probe
from clexp.training import resolve_device, to_tensors


@torch.no_grad()
def hidden_outputs(model, images: np.ndarray, device) -> dict[str, np.ndarray]:
    """Logits, h1 and h2 of uint8 `images` in evaluation mode, as numpy arrays."""
    model.eval()
    x, _ = to_tensors(images, np.zeros(len(images), dtype=np.int64), device)
    logits, (h1, h2) = model(x)
    return {"logits": logits.cpu().numpy(), "h1": h1.cpu().numpy(), "h2": h2.cpu().numpy()}


def restore_model(run: dict, seed: int, task: int, checkpoint_path: str | Path,
                  device: str = "auto"):
    """The checkpoint after task `task` of `run` (checked to be that run's), and its model on
    `device`: (state, model, torch device)."""
    state = load_checkpoint(
        checkpoint_path, run["name"], seed, task, config_hash(training_config(run))
    )
    target = resolve_device(device)
    model = build_model(run).to(target)
    model.load_state_dict(state["model"])
    return state, model, target


def _probe(train, train_labels, evaluation, eval_labels, classes, max_iter):
    train_mask = class_mask(train_labels, classes)
    eval_mask = class_mask(eval_labels, classes)
    return linear_probe(
        train[train_mask], train_labels[train_mask],
        evaluation[eval_mask], eval_labels[eval_mask], max_iter=max_iter,
    )


def evaluate_checkpoint(
    run: dict,
    seed: int,
    task: int,
    checkpoint_path: str | Path,
    data_path: str | Path,
    probe_settings: dict,
    device: str = "auto",
    analysis_settings: dict | None = None,
) -> tuple[dict, dict]:
    """Measure the checkpoint after task `task` of `run`.

    Returns the metrics.json dict and the arrays of analysis.npz (see `clexp.analysis`); with
    `analysis_settings` None, no arrays. The metrics do not depend on `analysis_settings`.
    """
    state, model, target = restore_model(run, seed, task, checkpoint_path, device)
    data = load_dataset(data_path)
    tasks = run["tasks"]
    seen = seen_classes(tasks, task)

    evaluation = hidden_outputs(model, data["eval_images"], target)
    eval_labels = data["eval_labels"]
    predictions = evaluation["logits"].argmax(1)
    seen_mask = class_mask(eval_labels, seen)

    probe_indices = balanced_subset(
        data["train_labels"], range(10), probe_settings["train_images_per_class"], seed=0
    )
    probe_labels = data["train_labels"][probe_indices]
    probe_h2 = hidden_outputs(model, data["train_images"][probe_indices], target)["h2"]
    max_iter = probe_settings["max_iter"]

    probe = _probe(probe_h2, probe_labels, evaluation["h2"], eval_labels, seen, max_iter)
    all_trained = [cls for t in tasks for cls in t]
    unseen = [c for c in run["probe_unseen"] if c not in seen] if run["probe_unseen"] else []
    unseen_probe = (
        _probe(probe_h2, probe_labels, evaluation["h2"], eval_labels, unseen, max_iter)
        if unseen else None
    )
    all_probe = (
        _probe(probe_h2, probe_labels, evaluation["h2"], eval_labels, sorted(set(all_trained)),
               max_iter)
        if run["probe_all_classes"] else None
    )

    metrics = {
        "experiment": run["name"],
        "seed": seed,
        "task": task,
        "num_tasks": len(tasks),
        "tasks": tasks,
        "classes_seen": seen,
        "val_acc": accuracy(predictions[seen_mask], eval_labels[seen_mask]),
        "val_loss": cross_entropy(evaluation["logits"][seen_mask], eval_labels[seen_mask]),
        "per_class_acc": per_class_accuracy(predictions, eval_labels, seen),
        "per_task_acc": per_task_accuracy(predictions, eval_labels, tasks),
        "per_task_acc_til": per_task_accuracy_til(evaluation["logits"], eval_labels, tasks),
        "init_per_task_acc": list(state["init_per_task_acc"]),
        "population_sparsity": population_sparsity(evaluation["h1"], evaluation["h2"]),
        "sparsity_h1": population_sparsity(evaluation["h1"]),
        "sparsity_h2": population_sparsity(evaluation["h2"]),
        "probe_acc": probe["acc"] if probe else None,
        "probe_per_class_acc": probe["per_class_acc"] if probe else None,
        "probe_coef_norm": probe["coef_norm"] if probe else None,
        "probe_unseen_classes": unseen,
        "probe_unseen_acc": unseen_probe["acc"] if unseen_probe else None,
        "probe_unseen_per_class_acc": unseen_probe["per_class_acc"] if unseen_probe else None,
        "probe_all_acc": all_probe["acc"] if all_probe else None,
        "probe_all_per_class_acc": all_probe["per_class_acc"] if all_probe else None,
        "epochs_run": state["epochs_run"],
        "stopped_early": state["stopped_early"],
        "ogd_basis_size": int(state["ogd_basis"].shape[0]),
        "config_hash": state["config_hash"],
        "method": state.get("method", "ogd" if run["ogd"] else "naive"),
        **(state.get("method_record") or {}),
    }
    parameters = {k: v.numpy() for k, v in state["model"].items()}
    metrics.update(checkpoint_scalars(parameters, eval_labels, evaluation, tasks[:task]))
    arrays: dict = {}
    if analysis_settings is not None:
        arrays = checkpoint_analysis(
            parameters, data["eval_images"], eval_labels, evaluation, tasks[:task],
            analysis_settings, tsne_h1=run["tsne_h1"], seed=seed,
            run_classes=[cls for t in tasks for cls in t],
        )
    return metrics, arrays


def analyze_checkpoint(
    run: dict,
    seed: int,
    task: int,
    checkpoint_path: str | Path,
    data_path: str | Path,
    analysis_settings: dict,
    device: str = "auto",
) -> dict:
    """The arrays of analysis.npz of the checkpoint after task `task` (no probes: those are
    in the metrics, which `evaluate_checkpoint` writes for every seed)."""
    state, model, target = restore_model(run, seed, task, checkpoint_path, device)
    data = load_dataset(data_path)
    evaluation = hidden_outputs(model, data["eval_images"], target)
    parameters = {k: v.numpy() for k, v in state["model"].items()}
    arrays = checkpoint_analysis(
        parameters, data["eval_images"], data["eval_labels"], evaluation,
        run["tasks"][:task], analysis_settings, tsne_h1=run["tsne_h1"], seed=seed,
        run_classes=[cls for t in run["tasks"] for cls in t],
    )
    return arrays
