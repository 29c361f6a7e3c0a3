"""The three continual-learning scenarios (van de Ven & Tolias 2019), as training and evaluation
see them: which outputs a sample is scored on, and what its target is.

- `class` (class-incremental, the study's main setting): one head of ten outputs; every
  sample is scored on all ten, its target is its digit.
- `task` (task-incremental): still ten outputs, but a sample is scored on its own task's
  outputs only (the "active outputs"; the task identity is known in training and at test
  time). The other outputs are masked to -inf, so they get exactly zero gradient and never
  win the argmax. Replayed images and joint training follow the same rule: each image on its
  own task's outputs.
- `domain` (domain-incremental): as many outputs as the largest task has classes (two for
  Split-MNIST); a digit's target is its position within its task (1, 3, 5, 7, 9 -> 0 and
  2, 4, 6, 8, 0 -> 1 for the default task list), and every sample is scored on all outputs.

Which tasks decide the outputs (`output_tasks`): the run's task list, except for joint
training, whose single task holds every class: there the config's task list is kept as
`scenario_tasks`, so that the joint upper bound of the task- and domain-incremental scenarios
is multi-task training on each image's own outputs.

A class-incremental run's settings never hold `scenario` (its config hash is the one it had
before scenarios existed); any other run's hold `scenario` and `scenario_tasks`.

The torch side (`Scenario`) serves training; `correct_np` / `scored_logits_np` the evaluation
on numpy arrays. Both agree by construction (tested).
"""

from __future__ import annotations

import numpy as np

SCENARIOS = ("class", "task", "domain")
NUM_CLASSES = 10


def scenario_of(run) -> str:
    """The run's scenario (`class` when its settings do not name one)."""
    return run.get("scenario") or "class"


def output_tasks(run) -> list:
    """The task list that decides which outputs belong together (see the module docstring)."""
    return run.get("scenario_tasks") or run.get("tasks") or []


def output_count(run) -> int:
    """Outputs of the network: ten, or in domain-IL the size of the largest task."""
    if scenario_of(run) == "domain":
        return max(len(t) for t in output_tasks(run))
    return NUM_CLASSES


def position_table(tasks) -> np.ndarray:
    """Class -> its position within its task (classes in no task keep their own number)."""
    table = np.arange(NUM_CLASSES)
    for task in tasks:
        for index, cls in enumerate(task):
            table[cls] = index
    return table


def task_table(tasks) -> np.ndarray:
    """Class -> the index of its task (-1: in no task)."""
    table = np.full(NUM_CLASSES, -1)
    for index, task in enumerate(tasks):
        table[list(task)] = index
    return table


def same_task_table(tasks) -> np.ndarray:
    """(10, 10) booleans: output c is active for a sample of class y (task-IL). A class in no
    task is active only for itself."""
    owner = task_table(tasks)
    table = (owner[:, None] == owner[None, :]) & (owner[:, None] >= 0)
    return table | np.eye(NUM_CLASSES, dtype=bool)


def targets_np(run, labels: np.ndarray) -> np.ndarray:
    """The targets of digits `labels` in the run's scenario."""
    if scenario_of(run) == "domain":
        return position_table(output_tasks(run))[labels]
    return labels


def scored_logits_np(run, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The logits each sample is scored on: in task-IL the other tasks' outputs are -inf."""
    if scenario_of(run) != "task":
        return logits
    active = same_task_table(output_tasks(run))[labels]
    return np.where(active, logits, -np.inf)


def correct_np(run, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Booleans: each sample predicted right in the run's scenario."""
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    return scored_logits_np(run, logits, labels).argmax(1) == targets_np(run, labels)


class Scenario:
    """The run's scenario on the training device: loss, targets and correctness of batches."""

    def __init__(self, run, device=None):
        import torch

        self.kind = scenario_of(run)
        self.tasks = output_tasks(run)
        self.outputs = output_count(run)
        self.position = torch.as_tensor(position_table(self.tasks), device=device)
        self.same_task = torch.as_tensor(same_task_table(self.tasks), device=device)

    def targets(self, labels):
        """Digits -> the scenario's targets."""
        if self.kind == "domain":
            return self.position.to(labels.device)[labels]
        return labels

    def scored(self, logits, labels):
        """The logits each sample is scored on (task-IL: other tasks' outputs at -inf, so
        they get zero gradient and never win the argmax)."""
        if self.kind != "task":
            return logits
        active = self.same_task.to(labels.device)[labels]
        return logits.masked_fill(~active, float("-inf"))

    def loss(self, logits, labels):
        """Mean cross-entropy of the batch in the scenario (class-IL: over all ten logits,
        exactly `cross_entropy(logits, labels)`)."""
        import torch

        if self.kind == "class":
            return torch.nn.functional.cross_entropy(logits, labels)
        return torch.nn.functional.cross_entropy(self.scored(logits, labels),
                                                 self.targets(labels))

    def correct(self, logits, labels):
        """Booleans: each sample predicted right in the scenario."""
        if self.kind == "class":
            return logits.argmax(1) == labels
        return self.scored(logits, labels).argmax(1) == self.targets(labels)
