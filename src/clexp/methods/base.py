"""The method interface: the few points where a continual-learning method meets training.

The training loop (`clexp.training.train_task`) calls, for every task:

    method.start_task(context)                  # before the task's first batch
    for every batch (x, y):
        x, y = method.batch(x, y)               # replay adds stored samples
        loss = task loss + method.penalty(model, x, y, logits)   # EWC, SI, LwF
        loss.backward()
        method.before_step()                    # transform the gradient (OGD, A-GEM)
        optimizer.step()
        method.after_step()                     # SI's path integral, OGD's step projection
    method.end_task(context)                    # consolidate: Fisher, importance, basis, ...

`state_dict()` / `load_state_dict()` carry everything a method needs in the checkpoint (tensors
and plain values only: checkpoints load with weights_only), so task t resumes from task t-1
exactly. A method draws random numbers only from its own generator, seeded from the run's seed
and saved in its state, so adding a method changes no other random sequence.

`Naive` is the method with no hooks: plain sequential training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

# Offset between the run's seed and a method's own generator, so the two sequences differ.
GENERATOR_SEED_OFFSET = 7919


@dataclass
class TaskContext:
    """What a method may look at for one task.

    `images`, `labels`: the task's training tensors (on the training device); `indices`: their
    positions in the dataset's training split; `train_images`, `train_labels`: the whole
    training split as stored (uint8 numpy), for methods that keep samples by index.
    """

    task: int
    tasks: list
    images: torch.Tensor
    labels: torch.Tensor
    indices: np.ndarray
    train_images: np.ndarray
    train_labels: np.ndarray
    batch_size: int
    extra: dict = field(default_factory=dict)

    def old_classes(self) -> list[int]:
        """Classes of the tasks before this one."""
        return [c for t in self.tasks[: self.task - 1] for c in t]


class Method:
    """Plain sequential training; subclasses override the hooks they need."""

    name = "naive"

    def __init__(self, run: dict, model: nn.Module, seed: int):
        self.run = run
        self.model = model
        self.generator = torch.Generator().manual_seed(seed + GENERATOR_SEED_OFFSET)

    def option(self, key: str):
        """The run's value of a method option, or its registered default."""
        from clexp.methods.registry import all_options

        return self.run.get(key, all_options()[key])

    def parameters(self) -> list[torch.Tensor]:
        """The model's trainable parameters, in the order of a flattened gradient."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def start_task(self, context: TaskContext) -> None:
        """Called before the task's first batch."""

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch to train on; the task's own samples stay first."""
        return x, y

    def penalty(self, model: nn.Module, x, y, logits) -> torch.Tensor | None:
        """An extra loss term (None: no term)."""
        return None

    def before_step(self) -> None:
        """Called after backward, before the optimizer step: may change the gradients."""

    def after_step(self) -> None:
        """Called after the optimizer step."""

    def end_task(self, context: TaskContext) -> None:
        """Consolidate after the task (called once training of the task ends)."""

    def log_fields(self) -> dict:
        """Values the epoch log records for this method."""
        return {}

    def task_record(self) -> dict:
        """Values measured over the last task, saved in the checkpoint (plain Python)."""
        return {}

    def state_dict(self) -> dict:
        """Everything the method carries to the next task (tensors and plain values)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.generator.set_state(state["generator"])


class Naive(Method):
    """Sequential training without any continual-learning mechanism."""


def flat_parameters(parameters) -> torch.Tensor:
    """The parameters concatenated into one detached vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in parameters])


def restore_buffers(model: nn.Module, buffers: dict) -> None:
    """Copy saved buffers (BatchNorm running statistics) back into `model`."""
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
