"""Accuracy, sparsity and the continual-learning summaries, on numpy arrays.

The accuracy matrix R has one row per checkpoint and one column per task of the run:
R[i, j] is the accuracy on task j's evaluation images after training task i (0-based here;
files and tables count tasks from 1). Class-incremental: predictions use all ten logits.
Task-incremental (the task's identity is given at test time): each task's images are predicted
from the logits of that task's own classes only (`per_task_accuracy_til`); its matrix is built
and summarised the same way.
"""

from __future__ import annotations

import numpy as np


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions (nan for no items)."""
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(predictions == labels))


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray, classes) -> dict[str, float]:
    """Accuracy on the items of each class, keyed by the class as a string."""
    return {str(c): accuracy(predictions[labels == c], labels[labels == c]) for c in classes}


def per_task_accuracy(predictions: np.ndarray, labels: np.ndarray, tasks) -> list[float]:
    """Accuracy on the items of each task's classes, one value per task."""
    return [accuracy(predictions[np.isin(labels, t)], labels[np.isin(labels, t)]) for t in tasks]


def per_task_accuracy_til(logits: np.ndarray, labels: np.ndarray, tasks) -> list[float]:
    """Task-incremental accuracy per task: the argmax over the task's own classes' logits."""
    result = []
    for task in tasks:
        classes = np.asarray(task)
        items = np.isin(labels, classes)
        predictions = classes[logits[items][:, classes].argmax(1)]
        result.append(accuracy(predictions, labels[items]))
    return result


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of `labels` under softmax(`logits`) over all outputs."""
    if len(labels) == 0:
        return float("nan")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(log_norm - shifted[np.arange(len(labels)), labels]))


def population_sparsity(*activations: np.ndarray) -> float:
    """Fraction of exact zeros over all units of all given activation arrays, pooled."""
    zeros = sum(int(np.count_nonzero(a == 0)) for a in activations)
    total = sum(a.size for a in activations)
    return zeros / total if total else float("nan")


def accuracy_matrix(rows) -> np.ndarray:
    """Stack per-checkpoint `per_task_acc` rows into the accuracy matrix R."""
    return np.asarray([list(row) for row in rows], dtype=float)


def average_accuracy(matrix: np.ndarray) -> float:
    """ACC: mean accuracy over all tasks after the last task."""
    return float(np.mean(matrix[-1]))


def backward_transfer(matrix: np.ndarray) -> float:
    """BWT: mean over earlier tasks j of R[T, j] - R[j, j] (negative when forgetting)."""
    last = matrix.shape[0] - 1
    if last == 0:
        return float("nan")
    return float(np.mean([matrix[last, j] - matrix[j, j] for j in range(last)]))


def average_forgetting(matrix: np.ndarray) -> float:
    """Mean over earlier tasks j of the best earlier accuracy on j minus the final one."""
    last = matrix.shape[0] - 1
    if last == 0:
        return float("nan")
    return float(np.mean([matrix[:last, j].max() - matrix[last, j] for j in range(last)]))


def forward_transfer(matrix: np.ndarray, initial: np.ndarray) -> float:
    """FWT: mean over tasks j > 1 of R[j-1, j] - b_j, b the random-init accuracy per task.

    With one head over all classes (class-incremental), a network never predicts a class it
    has not been trained on: training lowers the logits of the classes absent from its
    batches. R[j-1, j] is then about 0 and FWT about -mean(b_j), minus the untrained
    network's accuracy, by construction; it says nothing about the representation. The
    probes on the classes not trained yet (`probe_unseen_acc`, `probe_all_acc` in
    metrics.json) measure forward transfer in that setting.
    """
    count = matrix.shape[0]
    if count < 2:
        return float("nan")
    return float(np.mean([matrix[j - 1, j] - initial[j] for j in range(1, count)]))
