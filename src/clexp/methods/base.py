"""The method interface: the few points where a continual-learning method meets training.

The training loop (`clexp.training.train_task`) calls, for every task:

    method.start_task(context)                  # before the task's first batch
    for every batch (x, y):
        x, y = method.batch(x, y)               # replay adds stored samples
        loss = method.cross_entropy_weight() * task loss         # 1 but for LwF's paper
               + method.penalty(model, x, y, logits)             # EWC, SI, LwF
        loss.backward()
        method.before_step()                    # transform the gradient (OGD, A-GEM)
        optimizer.step()
        method.after_step()                     # SI's path integral, OGD's step projection
    method.end_task(context)                    # consolidate: Fisher, importance, basis, ...

`state_dict()` / `load_state_dict()` carry everything a method needs in the checkpoint (tensors
and plain values only: checkpoints load with weights_only), so task t resumes from task t-1
exactly. A checkpoint is data from disk: before `load_state_dict`, `check_state(state, context)`
checks it (keys, types, shapes against the model, finite values, what the method's consolidation
guarantees) and raises StateError saying what is wrong. A method that changes `state_dict` must
define its own `check_state` (enforced when the class is defined), so new state is never loaded
unchecked. A method draws random numbers only from its own generator, seeded from the run's seed
and saved in its state, so adding a method changes no other random sequence.

`Naive` is the method with no hooks: plain sequential training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from clexp.errors import StateError
from clexp.scenario import Scenario

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


@dataclass
class StateContext:
    """What a method's checkpointed state is checked against.

    `task`: the checkpoint's task (1-based; tasks 1..task are consolidated); `tasks`: the run's
    task list; `model`: the run's model (its parameters give the shapes); `train_labels`: the
    dataset's training labels (numpy), which stored indices point into.
    """

    task: int
    tasks: list
    model: nn.Module
    train_labels: np.ndarray

    def parameter_count(self) -> int:
        """Entries of the flattened trainable parameters (the length of a flat gradient)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def state_tensor(state: dict, key: str, *, dims: int | None = None, shape=None,
                 kind: str = "float", finite: bool = True, non_negative: bool = False,
                 name: str | None = None) -> torch.Tensor:
    """`state[key]`, checked: a tensor of `kind` ("float", "int64" or "uint8") with `dims`
    dimensions and `shape` (None entries: any size), finite, and >= 0 with `non_negative`.

    Raises StateError naming the key (`name`, default `key`) and what is wrong.
    """
    name = name or key
    if not isinstance(state, dict) or key not in state:
        raise StateError(f"{name} is missing")
    value = state[key]
    if not isinstance(value, torch.Tensor):
        raise StateError(f"{name} is a {type(value).__name__}, not a tensor")
    kinds = {"float": value.is_floating_point(), "int64": value.dtype == torch.int64,
             "uint8": value.dtype == torch.uint8}
    if not kinds[kind]:
        raise StateError(f"{name} has dtype {value.dtype}, expected {kind}")
    if dims is not None and value.dim() != dims:
        raise StateError(f"{name} has shape {tuple(value.shape)}, expected {dims} dimension(s)")
    if shape is not None and any(e is not None and e != n for e, n in zip(shape, value.shape,
                                                                           strict=True)):
        expected = tuple("any" if e is None else e for e in shape)
        raise StateError(f"{name} has shape {tuple(value.shape)}, expected {expected}")
    if kind == "float" and finite and not bool(torch.isfinite(value).all()):
        raise StateError(f"{name} holds NaN or infinite values")
    if non_negative and bool((value < 0).any()):
        raise StateError(f"{name} holds negative values (min {value.min().item():.4g}); it is "
                         "a non-negative quantity")
    return value


def check_model_like(state, reference: dict, name: str) -> None:
    """`state` holds the tensors of the module state dict `reference`: same keys, shapes and
    dtypes, finite floating-point values."""
    if not isinstance(state, dict):
        raise StateError(f"{name} is a {type(state).__name__}, not a model state dict")
    missing = sorted(set(reference) - set(state))
    extra = sorted(set(state) - set(reference))
    if missing or extra:
        raise StateError(f"{name} does not match the model (missing: {missing or 'none'}; "
                         f"unexpected: {extra or 'none'})")
    for key, expected in reference.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.dtype != expected.dtype:
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise StateError(f"{name}.{key} is {kind}, expected a {expected.dtype} tensor")
        if value.shape != expected.shape:
            raise StateError(f"{name}.{key} has shape {tuple(value.shape)}, expected "
                             f"{tuple(expected.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise StateError(f"{name}.{key} holds NaN or infinite values")


class Method:
    """Plain sequential training; subclasses override the hooks they need."""

    name = "naive"
    # Whether a checkpoint must hold this method's state to resume (Naive's generator is never
    # drawn from, so a checkpoint without it trains the same).
    requires_state = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if ("state_dict" in own or "load_state_dict" in own) and "check_state" not in own:
            raise TypeError(
                f"{cls.__name__} defines what it checkpoints (state_dict / load_state_dict) "
                "but no check_state: every method checks its state before it is loaded "
                "(clexp.methods.base)"
            )

    def __init__(self, run: dict, model: nn.Module, seed: int):
        self.run = run
        self.model = model
        self.generator = torch.Generator().manual_seed(seed + GENERATOR_SEED_OFFSET)
        # Which outputs score a sample, and its target (clexp.scenario): the task loss, the
        # method's own losses (replay, reference gradients, distillation) and the Fisher
        # follow the run's scenario.
        self.scenario = Scenario(run, next(model.parameters()).device)

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

    def cross_entropy_weight(self) -> float:
        """The weight of the task loss (the cross-entropy) in this task's loss, read once
        after `start_task`; 1 leaves it as it is."""
        return 1.0

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

    def check_state(self, state: dict, context: StateContext) -> None:
        """Raise StateError when `state` (from a checkpoint after task `context.task`) is not
        what `state_dict` writes at that point. Subclasses check their own keys after calling
        this."""
        if not isinstance(state, dict):
            raise StateError(f"the method state is a {type(state).__name__}, not a dict")
        state_tensor(state, "generator", dims=1, kind="uint8",
                     shape=tuple(self.generator.get_state().shape))


class Naive(Method):
    """Sequential training without any continual-learning mechanism."""

    requires_state = False


def flat_parameters(parameters) -> torch.Tensor:
    """The parameters concatenated into one detached vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in parameters])


def restore_buffers(model: nn.Module, buffers: dict) -> None:
    """Copy saved buffers (BatchNorm running statistics) back into `model`."""
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
