"""Evaluate one checkpoint: accuracies, sparsity and linear probes -> the `metrics.json` dict.

Schema of `metrics.json` (accuracies are fractions in [0, 1]; class keys are strings):
`experiment`, `seed`, `task` (1-based), `num_tasks`, `tasks`, `classes_seen`, `scenario`
(`class`, `task` or `domain`: `clexp.scenario`; every accuracy and loss below is the
scenario's: which outputs score an image and what its target is),
`val_acc`, `val_loss` (evaluation images of the seen classes),
`per_class_acc` (seen classes), `per_task_acc` (one value per task of the run, future tasks
included), `per_task_acc_til` (a class-IL run: the same with the logits masked to each task's
own classes, "masked evaluation", which is not the task-incremental scenario's training; a
task- or domain-IL run: `per_task_acc` again), `init_per_task_acc` (the untrained network,
for forward transfer), `task_share` (the current task's share of the seen classes' evaluation
images), `current_task_mass` (mean softmax probability the earlier tasks' evaluation images
put on the current task's classes; null after task 1 and outside class-IL),
`population_sparsity` (exact zeros in h1 and h2 pooled, evaluation set), `sparsity_h1`,
`sparsity_h2`, `dead_units`, `dead_units_h1`, `dead_units_h2` (fraction of units zero on
every evaluation image: h1 and h2 pooled, each), `probe_acc`, `probe_per_class_acc`,
`probe_coef_norm` (logistic regression on h2 of the seen classes), `probe_unseen_classes`,
`probe_unseen_acc`,
`probe_unseen_per_class_acc` (probe on classes not trained yet; null when not asked or none
are left), `probe_all_acc`, `probe_all_per_class_acc` (probe on all ten classes; null when not
asked), `epochs_run`, `stopped_early`, `ogd_basis_size`, `config_hash`, `method` (the
continual-learning method's name) and what the method measured over the task: for OGD
`ogd_update_alignment_mean`, `ogd_update_alignment_max` (|cos| of the applied update with the
basis' span over the task's steps; null when the basis was empty),
`ogd_update_alignment_steps`, `ogd_projection_rows`, `ogd_basis_bytes` and
`ogd_projection_macs_per_step` (the basis that constrained the task: its rows, its float64 bytes
and the multiply-adds of one projection, 2 k P), for A-GEM `agem_projected_steps`;
`weight_stats`, `bias_stats` (per layer: mean, median, std of the effective bias: BatchNorm's
shift beta for a hidden layer followed by BatchNorm, else the linear layer's bias; see
`clexp.analysis.effective_biases`), `bias_source` (per layer: `batchnorm_shift` or
`linear_bias`), `saliency_norm` (per seen class, on h2), and from the training loop
(`clexp.training.PreviousTaskWatch`; tasks > 1): `previous_task_acc_before`,
`previous_task_acc_by_batch` (batches -> accuracy), `previous_task_acc_by_epoch`, and
`relative_weight_change` (per weight matrix over the task).

The untrained control (`evaluate_untrained`) writes the same schema with `task` 0 (nothing
seen: `val_acc`, `val_loss` NaN, `probe_acc` null), `probe_all_acc` always, and
`probe_acc_by_task`, `probe_per_class_acc_by_task`: the untrained network's probe on the
classes seen after each task, the control of each checkpoint's `probe_acc`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clexp.analysis import checkpoint_analysis, checkpoint_scalars
from clexp.checkpoint import damaged_checkpoint, load_checkpoint
from clexp.config import config_hash, seen_classes, training_config
from clexp.data import balanced_subset, class_mask, load_dataset
from clexp.errors import StateError
from clexp.methods.base import check_model_like
from clexp.methods.registry import method_name
from clexp.metrics import cross_entropy, per_task_accuracy_til, population_sparsity
from clexp.model import build_model
from clexp.probes import linear_probe
from clexp.scenario import correct_np, scenario_of, scored_logits_np, targets_np
from clexp.training import resolve_device, to_tensors
from clexp.tuning import with_selection


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
    `device`: (state, model, torch device). A tuned experiment's settings are filled in from
    its selection (`clexp.tuning.with_selection`), as its training filled them."""
    run = with_selection(run)
    state = load_checkpoint(
        checkpoint_path, run["name"], seed, task, config_hash(training_config(run))
    )
    target = resolve_device(device)
    model = build_model(run).to(target)
    try:  # shapes and finite values, as before training from it (clexp.training.resume_run)
        check_model_like(state["model"], model.state_dict(), "model")
    except StateError as error:
        raise damaged_checkpoint(checkpoint_path, str(error)) from None
    model.load_state_dict(state["model"])
    return state, model, target


def _probe(train, train_labels, evaluation, eval_labels, classes, max_iter):
    train_mask = class_mask(train_labels, classes)
    eval_mask = class_mask(eval_labels, classes)
    return linear_probe(
        train[train_mask], train_labels[train_mask],
        evaluation[eval_mask], eval_labels[eval_mask], max_iter=max_iter,
    )


def mean_correct(correct: np.ndarray) -> float:
    """Fraction of True (nan for no items): the accuracy of these predictions."""
    return float(np.mean(correct)) if len(correct) else float("nan")


def per_task_correct(correct: np.ndarray, labels: np.ndarray, tasks) -> list[float]:
    """Accuracy on the items of each task's classes, one value per task."""
    return [mean_correct(correct[np.isin(labels, t)]) for t in tasks]


def dead_unit_fraction(activations: np.ndarray) -> float:
    """Fraction of units that are zero for every image (units that never fire)."""
    return float(np.mean(np.all(activations == 0, axis=0))) if activations.size else float("nan")


def current_task_mass(logits: np.ndarray, labels: np.ndarray, tasks, task: int) -> float | None:
    """Mean softmax probability that the evaluation images of the earlier tasks put on the
    classes of task `task` (None after the first task: no earlier images)."""
    old = [c for t in tasks[: task - 1] for c in t]
    if task < 2 or not old:
        return None
    items = np.isin(labels, old)
    if not items.any():
        return None
    shifted = logits[items] - logits[items].max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return float(probabilities[:, list(tasks[task - 1])].sum(axis=1).mean())


def task_share(labels: np.ndarray, tasks, task: int) -> float:
    """The current task's share of the evaluation images of the classes seen so far: the
    accuracy of a network that gets the last task right and every earlier one wrong."""
    seen = np.isin(labels, seen_classes(tasks, task))
    current = np.isin(labels, tasks[task - 1])
    return float(current.sum() / seen.sum()) if seen.any() else float("nan")


def _probe_inputs(model, data, probe_settings, target):
    """The probes' training features (h2 of a class-balanced training subset, the same
    images for every checkpoint) and labels."""
    indices = balanced_subset(
        data["train_labels"], range(10), probe_settings["train_images_per_class"], seed=0
    )
    return hidden_outputs(model, data["train_images"][indices], target)["h2"], \
        data["train_labels"][indices]


def measure_network(model, run: dict, seed: int, task: int, data: dict, probe_settings: dict,
                    target, all_classes_probe: bool) -> tuple[dict, dict]:
    """What `metrics.json` measures of a network after task `task` (0: before training),
    with the evaluation outputs (logits, h1, h2) for the analysis."""
    tasks = run["tasks"]
    seen = seen_classes(tasks, task) if task else []
    evaluation = hidden_outputs(model, data["eval_images"], target)
    eval_labels = data["eval_labels"]
    logits = evaluation["logits"]
    # right or wrong in the run's scenario (class-IL: the argmax over all ten outputs)
    correct = correct_np(run, logits, eval_labels)
    seen_mask = class_mask(eval_labels, seen)
    scenario = scenario_of(run)
    if scenario == "class":
        # masked evaluation of a class-IL run: each task's logits on their own
        masked = per_task_accuracy_til(logits, eval_labels, tasks)
    else:  # the scenario's own accuracy (task-IL: the same masking; domain-IL: no masking)
        masked = per_task_correct(correct, eval_labels, tasks)
    probe_h2, probe_labels = _probe_inputs(model, data, probe_settings, target)
    max_iter = probe_settings["max_iter"]

    def probe_on(classes):
        return _probe(probe_h2, probe_labels, evaluation["h2"], eval_labels, classes, max_iter)

    probe = probe_on(seen)
    all_trained = sorted({cls for t in tasks for cls in t})
    unseen = [c for c in run["probe_unseen"] if c not in seen] if run["probe_unseen"] else []
    unseen_probe = probe_on(unseen) if unseen else None
    by_task = []
    if task == 0:
        # The control for every probe of the run: the untrained network probed on the
        # classes seen after each task (the classes of the trained run's probe_acc).
        by_task = [probe_on(seen_classes(tasks, t)) for t in range(1, len(tasks) + 1)]
    same_as_last = by_task and sorted(seen_classes(tasks, len(tasks))) == all_trained
    all_probe = ((by_task[-1] if same_as_last else probe_on(all_trained))
                 if all_classes_probe else None)
    metrics = {
        "experiment": run["name"],
        "seed": seed,
        "task": task,
        "num_tasks": len(tasks),
        "tasks": tasks,
        "classes_seen": seen,
        "scenario": scenario,
        "val_acc": mean_correct(correct[seen_mask]),
        "val_loss": cross_entropy(scored_logits_np(run, logits, eval_labels)[seen_mask],
                                  targets_np(run, eval_labels)[seen_mask]),
        "per_class_acc": {str(c): mean_correct(correct[eval_labels == c]) for c in seen},
        "per_task_acc": per_task_correct(correct, eval_labels, tasks),
        "per_task_acc_til": masked,
        "task_share": task_share(eval_labels, tasks, task) if task else None,
        # the pull of the current task's outputs on old images: class-IL only (task-IL
        # masks those outputs away, domain-IL shares them between tasks)
        "current_task_mass": (current_task_mass(logits, eval_labels, tasks, task)
                              if scenario == "class" else None),
        "population_sparsity": population_sparsity(evaluation["h1"], evaluation["h2"]),
        "sparsity_h1": population_sparsity(evaluation["h1"]),
        "sparsity_h2": population_sparsity(evaluation["h2"]),
        "dead_units": dead_unit_fraction(np.hstack([evaluation["h1"], evaluation["h2"]])),
        "dead_units_h1": dead_unit_fraction(evaluation["h1"]),
        "dead_units_h2": dead_unit_fraction(evaluation["h2"]),
        "probe_acc": probe["acc"] if probe else None,
        "probe_per_class_acc": probe["per_class_acc"] if probe else None,
        "probe_coef_norm": probe["coef_norm"] if probe else None,
        "probe_unseen_classes": unseen,
        "probe_unseen_acc": unseen_probe["acc"] if unseen_probe else None,
        "probe_unseen_per_class_acc": unseen_probe["per_class_acc"] if unseen_probe else None,
        "probe_all_acc": all_probe["acc"] if all_probe else None,
        "probe_all_per_class_acc": all_probe["per_class_acc"] if all_probe else None,
    }
    parameters = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    metrics.update(checkpoint_scalars(parameters, eval_labels, evaluation, tasks[:task]))
    if task == 0:
        metrics["probe_acc_by_task"] = [p["acc"] if p else None for p in by_task]
        metrics["probe_per_class_acc_by_task"] = [p["per_class_acc"] if p else None
                                                  for p in by_task]
    return metrics, evaluation


def evaluate_untrained(run: dict, seed: int, data_path: str | Path, probe_settings: dict,
                       device: str = "auto") -> dict:
    """The untrained control: the network task 1 of `run` starts from (initialised with
    `seed`, as `clexp.training.new_run` does), measured like a checkpoint (task 0).

    `run` needs `name`, `tasks`, `norm`, `dropout` and `probe_unseen` (and `method` / `ogd`
    for the method's name): what the untrained network and its measurement depend on.
    Beside the checkpoint metrics it holds `probe_acc_by_task` and
    `probe_per_class_acc_by_task`: the probe on the classes seen after each task 1..T,
    and always `probe_all_acc` (all the run's classes)."""
    run = with_selection(run)
    target = resolve_device(device)
    torch.manual_seed(seed)
    model = build_model(run).to(target)
    data = load_dataset(data_path)
    metrics, _ = measure_network(model, run, seed, 0, data, probe_settings, target, True)
    metrics.update({"epochs_run": 0, "stopped_early": False, "ogd_basis_size": 0,
                    "method": method_name(run)})
    return metrics


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
    metrics, evaluation = measure_network(model, run, seed, task, data, probe_settings, target,
                                          run["probe_all_classes"])
    metrics.update({
        "init_per_task_acc": list(state["init_per_task_acc"]),
        "epochs_run": state["epochs_run"],
        "stopped_early": state["stopped_early"],
        "ogd_basis_size": int(state["ogd_basis"].shape[0]),
        "config_hash": state["config_hash"],
        "method": state.get("method", "ogd" if run["ogd"] else "naive"),
        **(state.get("task_record") or {}),
        **(state.get("method_record") or {}),
    })
    arrays: dict = {}
    if analysis_settings is not None:
        parameters = {k: v.numpy() for k, v in state["model"].items()}
        arrays = checkpoint_analysis(
            parameters, data["eval_images"], data["eval_labels"], evaluation, tasks[:task],
            analysis_settings, tsne_h1=run["tsne_h1"], seed=seed,
            run_classes=[cls for t in tasks for cls in t], run=run,
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
        run_classes=[cls for t in run["tasks"] for cls in t], run=run,
    )
    return arrays
