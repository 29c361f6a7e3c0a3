"""Train one task of one run: load the previous checkpoint, train, save the next one.

`train_task` is the training loop on tensors held in memory (batches are sliced from them, no
DataLoader). `run_training_task` wraps it with the data file and the checkpoints, which is what
the workflow's `train_task` rule calls.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clexp.checkpoint import damaged_checkpoint, load_checkpoint, save_checkpoint
from clexp.config import config_hash, seen_classes, training_config
from clexp.data import class_mask, fixed_sample, load_dataset
from clexp.errors import ConfigError, DivergenceError, StateError
from clexp.methods.base import Method, Naive, StateContext, TaskContext, check_model_like
from clexp.methods.registry import build_method
from clexp.model import MLP, build_model
from clexp.ogd import empty_basis
from clexp.scenario import Scenario
from clexp.tuning import with_selection

LOGGER = logging.getLogger("clexp.training")

CURVE_COLUMNS = ["step", "epoch", "batch", "eval_task", "acc"]
# train_loss = train_ce + train_penalty (the L1 activation penalty; 0 without it); val_loss is
# cross-entropy only, so it compares with train_ce. steps: the optimizer steps of the epoch
# (what the study's speed is measured per: `python -m clexp.bench study`).
LOG_COLUMNS = [
    "task", "epoch", "lr", "train_loss", "train_ce", "train_penalty", "train_acc", "val_loss",
    "val_acc", "ogd_basis_size", "steps",
]


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device):
    """uint8 images -> float32 in [0, 1]; labels -> int64; both on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device=device, dtype=torch.float32)
    return x.div_(255.0), torch.from_numpy(np.ascontiguousarray(labels)).to(device)


def split_tensors(data: dict, split: str, selection, device: torch.device):
    """Images and labels of `split` ("train" or "eval") at `selection` (mask or indices)."""
    return to_tensors(data[f"{split}_images"][selection], data[f"{split}_labels"][selection],
                      device)


def task_learning_rate(run: dict, task: int) -> float:
    """The learning rate of task `task` (1-based): reduced by the factor after the first."""
    factor = run["lr_factor_after_first_task"] if task > 1 else 1.0
    return run["lr"] * factor


def build_optimizer(model: nn.Module, run: dict, task: int) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), Adam (no weight decay: `clexp.config` rejects any, as
    torch's Adam would add it to the gradient as an L2 penalty) or SGD, at the task's learning
    rate."""
    lr = task_learning_rate(run, task)
    # AdamW and Adam: PyTorch's fused kernel (CPU and CUDA), the same update in one pass over
    # the parameters (a fifth of a CPU training step less than the multi-tensor version;
    # rounding differs in the last bit). SGD: the multi-tensor version, the same additions in
    # fewer calls.
    if run["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=run["weight_decay"],
                                 fused=True)
    if run["optimizer"] == "adam":
        # betas (0.9, 0.999), torch's default, as van de Ven & Tolias' main.py sets them
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    if run["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=run["momentum"],
                               weight_decay=run["weight_decay"], foreach=True)
    raise ValueError(f"optimizer must be adamw, adam or sgd, got {run['optimizer']!r}")


def training_loss_terms(logits, h1, h2, labels, l1_activation: float,
                        scenario: Scenario | None = None):
    """(cross-entropy, lambda * (mean|h1| + mean|h2|) or None when lambda = 0). The
    cross-entropy is the scenario's (`clexp.scenario.Scenario.loss`; default and class-IL:
    over all logits)."""
    if scenario is None:
        cross_entropy = nn.functional.cross_entropy(logits, labels)
    else:
        cross_entropy = scenario.loss(logits, labels)
    if l1_activation > 0:
        return cross_entropy, l1_activation * (h1.abs().mean() + h2.abs().mean())
    return cross_entropy, None


def training_loss(logits, h1, h2, labels, l1_activation: float) -> torch.Tensor:
    """Cross-entropy over all logits, plus lambda * (mean|h1| + mean|h2|) when lambda > 0."""
    cross_entropy, penalty = training_loss_terms(logits, h1, h2, labels, l1_activation)
    return cross_entropy if penalty is None else cross_entropy + penalty


def correct_of(logits, labels, scenario: Scenario | None):
    """Booleans: each sample predicted right (the scenario's rule; None: all logits)."""
    return logits.argmax(1) == labels if scenario is None else scenario.correct(logits, labels)


@torch.no_grad()
def evaluate_loss_accuracy(model: nn.Module, images, labels, scenario: Scenario | None = None
                           ) -> tuple[float, float]:
    """Cross-entropy and accuracy in evaluation mode, one batched forward pass, in the
    scenario (None: all logits)."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    logits, _ = model(images)
    model.train(was_training)
    if scenario is None:
        loss = nn.functional.cross_entropy(logits, labels).item()
    else:
        loss = scenario.loss(logits, labels).item()
    return loss, correct_of(logits, labels, scenario).float().mean().item()


class Instruments:
    """What `train_task` records besides the epoch log, all cheap enough for every batch.

    - forgetting curve: accuracy on the evaluation sets in `curve_sets` (the current and every
      earlier task, a bounded number of images each, held as tensors and evaluated together
      in one forward pass) before training, after every `curve_stride`-th batch of the first
      epoch, then after every epoch;
    - relative updates: per batch and weight matrix, ||W_after - W_before|| / ||W_before||,
      with W_before a copy taken before the optimizer step;
    - gradient sums: the accumulated signed gradient of each weight matrix over the task, as
      the optimizer receives it (after the method's gradient transform, e.g. OGD's projection).

    The per-batch records use torch's multi-tensor (`_foreach`) operations, the ones the
    optimizers use: one call for all layers instead of one per layer.
    """

    def __init__(self, model: MLP, curve_sets=(), curve_stride: int = 1,
                 scenario: Scenario | None = None):
        self.model = model
        self.scenario = scenario
        curve_sets = list(curve_sets)
        self.curve_sizes = [len(y) for _, y in curve_sets]
        if curve_sets:
            self.curve_images = torch.cat([x for x, _ in curve_sets])
            self.curve_labels = torch.cat([y for _, y in curve_sets])
        self.curve_stride = max(1, int(curve_stride))
        self.layers = model.weight_layers()
        self.curve: list[dict] = []
        self.updates: list[dict] = []
        self.gradient_sums = {
            name: torch.zeros_like(layer.weight) for name, layer in self.layers.items()
        }
        self._weights = [layer.weight for layer in self.layers.values()]
        self._sums = list(self.gradient_sums.values())
        self._before = [torch.empty_like(weight) for weight in self._weights]

    @torch.no_grad()
    def record_curve(self, step: int, epoch: int, batch: int) -> None:
        if not self.curve_sizes:
            return
        was_training = self.model.training
        self.model.eval()
        correct = correct_of(self.model(self.curve_images)[0], self.curve_labels,
                             self.scenario).float()
        self.model.train(was_training)
        accuracies = torch.stack([c.mean() for c in correct.split(self.curve_sizes)]).tolist()
        for index, accuracy in enumerate(accuracies, start=1):
            self.curve.append({"step": step, "epoch": epoch, "batch": batch,
                               "eval_task": index, "acc": accuracy})

    @torch.no_grad()
    def before_step(self) -> None:
        torch._foreach_add_(self._sums, [weight.grad for weight in self._weights])
        torch._foreach_copy_(self._before, self._weights)

    @torch.no_grad()
    def after_step(self, step: int, epoch: int, batch: int) -> None:
        changes = torch._foreach_norm(torch._foreach_sub(self._weights, self._before))
        ratios = (torch.stack(changes) / torch.stack(torch._foreach_norm(self._before))).tolist()
        row = {"step": step, "epoch": epoch, "batch": batch}
        row.update(zip(self.layers, ratios, strict=True))
        self.updates.append(row)
        if epoch == 1 and batch % self.curve_stride == 0:
            self.record_curve(step, epoch, batch)


# Batches into a new task after which the previous task's accuracy is measured (for every
# seed): forgetting happens within a few dozen batches (STUDY.md).
ONSET_BATCHES = (10, 25, 50)


class PreviousTaskWatch:
    """The previous task's accuracy while a new task trains, for every seed: before the first
    step, after each of ONSET_BATCHES batches and after every epoch, on the forgetting curve's
    sample of the previous task's evaluation images (one small forward pass each, in
    evaluation mode: no random numbers drawn, no BatchNorm statistics moved, so training is
    the same with or without it)."""

    def __init__(self, model: MLP, images: torch.Tensor, labels: torch.Tensor,
                 scenario: Scenario | None = None):
        self.model, self.images, self.labels = model, images, labels
        self.scenario = scenario
        self.before: float | None = None
        self.by_batch: dict[str, float] = {}
        self.by_epoch: list[float] = []

    @torch.no_grad()
    def accuracy(self) -> float:
        was_training = self.model.training
        self.model.eval()
        correct = correct_of(self.model(self.images)[0], self.labels, self.scenario)
        self.model.train(was_training)
        return correct.float().mean().item()

    def start(self) -> None:
        self.before = self.accuracy()

    def after_step(self, step: int) -> None:
        if step in ONSET_BATCHES:
            self.by_batch[str(step)] = self.accuracy()

    def after_epoch(self) -> None:
        self.by_epoch.append(self.accuracy())

    def record(self) -> dict:
        """metrics.json's `previous_task_acc_before`, `_by_batch` (batches -> accuracy; a task
        shorter than a listed count has no entry for it) and `_by_epoch`."""
        return {"previous_task_acc_before": self.before,
                "previous_task_acc_by_batch": dict(self.by_batch),
                "previous_task_acc_by_epoch": list(self.by_epoch)}


def relative_weight_change(before: dict[str, torch.Tensor], model: MLP) -> dict[str, float]:
    """Per weight matrix, ||W_end - W_start|| / ||W_start|| over a whole task."""
    return {name: ((layer.weight.detach() - before[name]).norm()
                   / before[name].norm()).item()
            for name, layer in model.weight_layers().items()}


def train_task(
    model: MLP,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    run: dict,
    generator: torch.Generator,
    method: Method | None = None,
    eval_images: torch.Tensor | None = None,
    eval_labels: torch.Tensor | None = None,
    where: str = "",
    task: int = 1,
    instruments: Instruments | None = None,
    context: TaskContext | None = None,
    watch: PreviousTaskWatch | None = None,
) -> dict:
    """Train one task; return `log` (a row per epoch), `epochs_run` and `stopped_early`.

    A log row holds the columns of `LOG_COLUMNS`: the epoch's mean training loss split into
    `train_ce` (cross-entropy, times the method's `cross_entropy_weight`: 1 but for LwF's
    paper weighting) and `train_penalty` (the L1 activation penalty plus the method's term:
    EWC, SI, LwF), with `train_loss` the loss minimised (their sum), and `val_loss`
    (cross-entropy) and `val_acc` on `eval_images`, and `steps`, the optimizer steps taken.

    Runs `epochs` epochs, or with `stop_at_train_acc` up to `max_epochs` epochs, stopping after
    the first epoch whose training accuracy reaches the threshold, or with `iterations`
    exactly that many optimizer steps: epochs (passes through the task's data, reshuffled
    each time) until the budget is spent, the last one stopping where it ends; every pass,
    the last partial one too, is an epoch of the log, the forgetting curve and the previous
    task's watch, and counts in `epochs_run`. `method` (default: naive)
    hooks in at its points (see `clexp.methods.base`): the batch, an extra loss term, the
    gradient before the step, the step after it; its `start_task` is called with `context`
    first (the caller consolidates with `end_task` afterwards). The logged losses are those
    minimised (over the joined batch with replay); the training accuracy, which early stopping
    reads, counts the task's own samples only. Raises DivergenceError, naming `where`, the
    epoch and the batch, when the loss is not finite. `instruments`, when given, records the
    forgetting curve, relative updates and gradients; `watch`, when given, the previous
    task's accuracy at the points of `PreviousTaskWatch`.
    """
    if method is None:
        method = Naive(run, model, 0)
    scenario = method.scenario
    if context is None:
        context = TaskContext(task=task, tasks=run["tasks"], images=images, labels=labels,
                              indices=np.arange(len(labels)), train_images=np.zeros((0, 784)),
                              train_labels=labels.cpu().numpy(), batch_size=run["batch_size"])
    if len(labels) < 2:
        raise ConfigError(
            f"{where} task {task}: {len(labels)} training image(s), and a batch needs at least "
            "two (BatchNorm cannot normalise one); raise data_subset.train_images_per_class."
        )
    method.start_task(context)
    threshold = run["stop_at_train_acc"]
    budget = run.get("iterations")
    max_epochs = run["max_epochs"] if threshold is not None else run["epochs"]
    if budget is not None:
        # every pass takes at least one step (a task has two images or more), so at most
        # `budget` passes
        max_epochs = budget
    weight = method.cross_entropy_weight()
    batch_size = run["batch_size"]
    count = len(labels)
    log, stopped_early, step = [], False, 0
    model.train()
    if instruments is not None:
        instruments.record_curve(step=0, epoch=0, batch=0)
    if watch is not None:
        watch.start()
    for epoch in range(1, max_epochs + 1):
        epoch_start = step
        order = torch.randperm(count, generator=generator).to(images.device)
        loss_sum = torch.zeros((), device=images.device)
        cross_entropy_sum = torch.zeros((), device=images.device)
        penalty_sum = torch.zeros((), device=images.device)
        correct = torch.zeros((), device=images.device, dtype=torch.long)
        seen = 0
        for batch, start in enumerate(range(0, count, batch_size), start=1):
            index = order[start : start + batch_size]
            if len(index) < 2:
                continue  # BatchNorm cannot normalise a batch of one
            x, y = method.batch(images[index], labels[index])
            logits, (h1, h2) = model(x)
            cross_entropy, penalty = training_loss_terms(logits, h1, h2, y, run["l1_activation"],
                                                         scenario)
            if weight != 1.0:
                cross_entropy = weight * cross_entropy
            extra = method.penalty(model, x, y, logits)
            if extra is not None:
                penalty = extra if penalty is None else penalty + extra
            loss = cross_entropy if penalty is None else cross_entropy + penalty
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise DivergenceError(
                    f"{where} task {task} epoch {epoch} batch {batch}: the loss is {loss_value}. "
                    "Training diverged; lower the learning rate (lr) of this experiment. "
                    "No checkpoint was written."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            method.before_step()
            if instruments is not None:
                instruments.before_step()
            optimizer.step()
            method.after_step()
            step += 1
            if instruments is not None:
                instruments.after_step(step, epoch, batch)
            if watch is not None:
                watch.after_step(step)
            own = len(index)  # the task's samples come first in the batch
            loss_sum += loss.detach() * own
            cross_entropy_sum += cross_entropy.detach() * own
            if penalty is not None:
                penalty_sum += penalty.detach() * own
            correct += scenario.correct(logits.detach()[:own], y[:own]).sum()
            seen += own
            if budget is not None and step == budget:
                break  # the budget ends inside this pass
        train_acc = correct.item() / seen
        val_loss, val_acc = (float("nan"), float("nan"))
        if eval_images is not None:
            val_loss, val_acc = evaluate_loss_accuracy(model, eval_images, eval_labels,
                                                       scenario)
        if instruments is not None and epoch > 1:
            instruments.record_curve(step, epoch, batch)
        if watch is not None:
            watch.after_epoch()
        log.append({
            "task": task,
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum.item() / seen,
            "train_ce": cross_entropy_sum.item() / seen,
            "train_penalty": penalty_sum.item() / seen,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "ogd_basis_size": 0,
            **method.log_fields(),
            "steps": step - epoch_start,
        })
        if threshold is not None and train_acc >= threshold:
            stopped_early = epoch < max_epochs
            break
        if budget is not None and step == budget:
            break
    return {"log": log, "epochs_run": len(log), "stopped_early": stopped_early}


def random_state(device: torch.device) -> dict:
    """The states of the generators training draws from, for the checkpoint.

    `torch_rng`: the CPU generator (initialisation, dropout on the CPU). `cuda_rng`, only when
    `device` is a CUDA device: one state per visible GPU, which dropout on the GPU draws from.
    """
    state = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_random_state(state: dict, device: torch.device, seed: int, task: int) -> None:
    """Put the generators back where `random_state` found them at the end of task `task - 1`.

    A checkpoint written without `cuda_rng` (on the CPU) resumed on CUDA seeds the GPU
    generators from (`seed`, `task`), so that masks still differ between seeds and tasks
    instead of every task starting from CUDA's default seed.
    """
    torch.set_rng_state(state["torch_rng"])
    if device.type != "cuda":
        return
    saved = state.get("cuda_rng")
    if saved:
        torch.cuda.set_rng_state_all(saved[: torch.cuda.device_count()])
    else:
        torch.cuda.manual_seed_all(int(np.random.SeedSequence([seed, task]).generate_state(1)[0]))


def curve_evaluation_sets(data: dict, tasks, task: int, images_per_task: int, seed: int,
                          device: torch.device) -> list:
    """The forgetting curve's evaluation images: for each task up to `task`, a class-balanced
    sample of `images_per_task` drawn with the run's `seed` (`clexp.data.fixed_sample`), the
    same images whichever task is being trained."""
    return [
        split_tensors(data, "eval", fixed_sample(data["eval_labels"], classes, images_per_task,
                                                 seed), device)
        for classes in tasks[:task]
    ]


@torch.no_grad()
def per_task_accuracy_of(model: nn.Module, images, labels, tasks,
                         scenario: Scenario | None = None) -> list[float]:
    """Accuracy (evaluation mode, in the scenario; None: all logits) on each task's
    classes."""
    model.eval()
    correct = correct_of(model(images)[0], labels, scenario)
    result = []
    for task in tasks:
        mask = torch.isin(labels, torch.tensor(task, device=labels.device))
        result.append(correct[mask].float().mean().item())
    return result


@dataclass
class RunState:
    """What carries over from one task of a run to the next (all of it is checkpointed)."""

    model: MLP
    optimizer: torch.optim.Optimizer
    method: Method
    generator: torch.Generator
    init_per_task_acc: list
    seed: int


def new_run(run: dict, seed: int, data: dict, target: torch.device) -> RunState:
    """The state before task 1: a network initialised with `seed`, a fresh optimizer and
    method, and the untrained network's accuracy per task (for forward transfer)."""
    generator = torch.Generator()
    torch.manual_seed(seed)
    generator.manual_seed(seed)
    model = build_model(run).to(target)
    optimizer = build_optimizer(model, run, 1)
    method = build_method(run, model, seed)
    eval_all = split_tensors(data, "eval", slice(None), target)
    init_per_task_acc = per_task_accuracy_of(model, *eval_all, run["tasks"], method.scenario)
    return RunState(model, optimizer, method, generator, list(init_per_task_acc), seed)


def method_state_of(state: dict, method: Method) -> dict | None:
    """The method state a checkpoint holds (None: none). A checkpoint written before methods
    had their own state holds OGD's basis as `ogd_basis` only."""
    if "method_state" in state:
        return state["method_state"]
    if method.name == "ogd" and "ogd_basis" in state:
        return dict(method.state_dict(), basis=state["ogd_basis"])
    return None


def resume_run(run: dict, seed: int, task: int, state: dict, target: torch.device,
               train_labels: np.ndarray, path: str | Path) -> RunState:
    """The state a checkpoint holds, for training task `task`, with the global random-number
    generators restored (`restore_random_state`).

    Everything is checked before it steers training: the model's and optimizer's tensors
    (shapes, finite values) and the method's state (`Method.check_state`, against
    `train_labels`, the dataset's training labels). Raises CheckpointError naming `path`,
    what is wrong and the fix; a NaN or infinity loaded from the file is reported as damage,
    not as divergence.
    """
    model = build_model(run).to(target)
    try:
        check_model_like(state.get("model"), model.state_dict(), "model")
        model.load_state_dict(state["model"])
        optimizer = build_optimizer(model, run, state["task"] + 1)
        optimizer.load_state_dict(state["optimizer"])
        method = build_method(run, model, seed)
        for key, value in state["optimizer"]["state"].items():
            for name, tensor in value.items():
                if (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
                        and not bool(torch.isfinite(tensor).all())):
                    raise StateError(f"optimizer.state.{key}.{name} holds NaN or infinite "
                                     "values")
        method_state = method_state_of(state, method)
        if method_state is None and method.requires_state:
            raise StateError(f"method_state is missing; method {method.name} needs it to "
                             "continue where the previous task ended")
        if method_state is not None:
            method.check_state(method_state, StateContext(state["task"], run["tasks"], model,
                                                          train_labels))
            method.load_state_dict(method_state)
        generator = torch.Generator()
        restore_random_state(state, target, seed, task)
        generator.set_state(state["shuffle_rng"])
        init_per_task_acc = [float(a) for a in state["init_per_task_acc"]]
    except StateError as error:
        raise damaged_checkpoint(path, str(error)) from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
        text = str(error).splitlines()[0] if str(error) else ""
        raise damaged_checkpoint(path, f"{type(error).__name__}: {text}"[:300]) from None
    if len(init_per_task_acc) != len(run["tasks"]):
        raise damaged_checkpoint(path, f"init_per_task_acc has {len(init_per_task_acc)} "
                                       f"values for {len(run['tasks'])} tasks")
    return RunState(model, optimizer, method, generator, init_per_task_acc, seed)


def train_run_task(
    state: RunState,
    run: dict,
    task: int,
    data: dict,
    target: torch.device,
    where: str = "",
    curve_images_per_task: int = 200,
    curve_stride: int = 1,
    instruments: bool = True,
) -> tuple[dict, Instruments | None]:
    """Train task `task` (1-based) of `run` from `state`, then let the method consolidate.

    The optimizer gets the task's learning rate; with `reset_optimizer` it starts the task
    with a fresh state (tasks > 1). Returns `train_task`'s result and the instruments (None
    with `instruments` false).
    """
    tasks = run["tasks"]
    if task > 1 and run.get("reset_optimizer", False):
        state.optimizer = build_optimizer(state.model, run, task)
    for group in state.optimizer.param_groups:
        group["lr"] = task_learning_rate(run, task)

    train_mask = class_mask(data["train_labels"], tasks[task - 1])
    images, labels = split_tensors(data, "train", train_mask, target)
    eval_mask = class_mask(data["eval_labels"], seen_classes(tasks, task))
    eval_images, eval_labels = split_tensors(data, "eval", eval_mask, target)
    recorder = None
    if instruments:
        curve_sets = curve_evaluation_sets(data, tasks, task, curve_images_per_task,
                                           state.seed, target)
        recorder = Instruments(state.model, curve_sets, curve_stride, state.method.scenario)
    context = TaskContext(
        task=task, tasks=tasks, images=images, labels=labels,
        indices=np.flatnonzero(train_mask), train_images=data["train_images"],
        train_labels=data["train_labels"], batch_size=run["batch_size"],
    )
    watch = None
    if task > 1:
        watch = PreviousTaskWatch(state.model, *curve_evaluation_sets(
            data, [tasks[task - 2]], 1, curve_images_per_task, state.seed, target)[0],
            scenario=state.method.scenario)
    weights_before = {name: layer.weight.detach().clone()
                      for name, layer in state.model.weight_layers().items()}
    LOGGER.info(
        "%s task %d: training on %d images of classes %s, lr %g, method %s",
        where, task, len(labels), tasks[task - 1], task_learning_rate(run, task),
        state.method.name,
    )
    result = train_task(
        state.model, state.optimizer, images, labels, run, state.generator,
        method=state.method, eval_images=eval_images, eval_labels=eval_labels, where=where,
        task=task, instruments=recorder, context=context, watch=watch,
    )
    result["task_record"] = {
        **(watch.record() if watch else {}),
        "relative_weight_change": relative_weight_change(weights_before, state.model),
    }
    result["method_record"] = state.method.task_record()
    state.method.end_task(context)
    return result, recorder


def run_training_task(
    run: dict,
    seed: int,
    task: int,
    data_path: str | Path,
    checkpoint_path: str | Path,
    previous_checkpoint: str | Path | None = None,
    device: str = "auto",
    curve_images_per_task: int = 200,
    curve_stride: int = 1,
    instruments: bool = True,
) -> dict:
    """Train task `task` (1-based) of `run` and save its checkpoint.

    Returns `log` (a row per epoch), `forgetting_curve` (rows of step, epoch, batch,
    eval_task, acc), `relative_updates` (rows of step, epoch, batch and one column per weight
    matrix) and `gradient_sums` (weight-matrix name -> accumulated gradient, numpy).

    Task 1 starts from a network initialised with `seed`; task t > 1 resumes model, optimizer,
    method state (OGD basis, Fisher, buffer, ...) and random-number generators (CPU, and
    CUDA's on a GPU) from `previous_checkpoint`. The forgetting curve evaluates
    `curve_images_per_task` class-balanced images of each task, drawn with `seed`, the same for
    the whole run. With `instruments` false the per-batch records are not taken (the three
    records come back empty); they only read the model, so the checkpoint is the same either
    way. A tuned experiment trains at the values its selection file chose
    (`clexp.tuning.with_selection`); its checkpoints record them.
    """
    run = with_selection(run)
    settings = training_config(run)
    identity = config_hash(settings)
    where = f"experiment {run['name']} seed {seed}"
    target = resolve_device(device)
    # AdamW's state of weights that stopped getting gradient (dead units, blank pixels) decays
    # into the subnormal range (< 1.2e-38), where CPU arithmetic is ~6x slower; a third of the
    # state is there by the last tasks. Flushed to zero, such values change no weight: their
    # updates (~1e-34) are far below a weight's float32 resolution.
    torch.set_flush_denormal(True)
    data = load_dataset(data_path)

    if task == 1:
        state = new_run(settings, seed, data, target)
    else:
        state = resume_run(settings, seed, task, load_checkpoint(
            previous_checkpoint, run["name"], seed, task - 1, identity), target,
            data["train_labels"], previous_checkpoint)
    result, recorder = train_run_task(state, settings, task, data, target, where,
                                      curve_images_per_task, curve_stride, instruments)
    LOGGER.info("%s task %d: %d epoch(s) run, saving the checkpoint", where, task,
                result["epochs_run"])
    save_checkpoint(checkpoint_of(state, settings, seed, task, result), checkpoint_path)
    return {
        "log": result["log"],
        "forgetting_curve": recorder.curve if recorder else [],
        "relative_updates": recorder.updates if recorder else [],
        "gradient_sums": ({k: v.cpu().numpy() for k, v in recorder.gradient_sums.items()}
                          if recorder else {}),
    }


def checkpoint_of(state: RunState, settings: dict, seed: int, task: int, result: dict) -> dict:
    """The checkpoint dict after task `task` (see `clexp.checkpoint` for the keys)."""
    method = state.method
    method_state = method.state_dict()
    # OGD's basis once: the same tensor under both keys is saved once (OGD-GTL's basis has
    # hundreds of rows of the parameter count; two copies from the GPU would double the file)
    basis = method_state["basis"] if method.name == "ogd" else empty_basis(state.model)
    return {
        "model": {k: v.cpu() for k, v in state.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(),
        "ogd_basis": basis,
        "method": method.name,
        "method_state": method_state,
        "method_record": result["method_record"],
        "task_record": result["task_record"],
        **random_state(next(state.model.parameters()).device),
        "shuffle_rng": state.generator.get_state(),
        "run": settings,
        "config_hash": config_hash(settings),
        "experiment": settings["name"],
        "seed": seed,
        "task": task,
        "epochs_run": result["epochs_run"],
        "stopped_early": result["stopped_early"],
        "init_per_task_acc": list(state.init_per_task_acc),
    }
