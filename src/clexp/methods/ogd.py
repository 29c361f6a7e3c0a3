"""OGD as a method: the basis from `clexp.ogd`, a projection before or after the step.

What is stored after each task (`ogd_directions`):

- `mean_loss` (default): the notebook's mean-loss variant, ONE direction per task, the mean
  cross-entropy gradient over the task's training data (`clexp.ogd.average_task_gradient`).
  It is the study's own variant, not the algorithm of the paper.
- `gtl`: OGD-GTL, Farajtabar et al. 2020 ("Orthogonal Gradient Descent for Continual
  Learning"): for `ogd_memory` (m) training images of the task, drawn without replacement with
  the method's generator, the gradient of each image's ground-truth logit
  (`clexp.ogd.ground_truth_logit_gradients`; the output of its target in the run's scenario),
  up to m directions per task, each Gram-Schmidt-orthonormalised against the basis.

`ogd_project: gradient` (the notebook's choice) projects every batch gradient onto the basis'
orthogonal complement before the optimizer step. With SGD without momentum or decay the applied
update is then orthogonal too; with AdamW it is not (per-parameter scaling, momentum carried
over from the previous task, decoupled decay).
`ogd_project: step` leaves the gradient alone and projects the optimizer's applied step
(parameters after minus before) instead, which keeps the update orthogonal with any optimizer.

Either way the method measures, at every step of a task with a non-empty basis, the applied
update's alignment with the basis, |cos(dtheta, span(B))| = ||B dtheta|| / ||dtheta||, and
reports its mean and max over the task (`task_record`), with what the basis cost during the
task: its memory and the multiply-adds of one projection.
"""

from __future__ import annotations

import torch

from clexp.errors import StateError
from clexp.methods.base import Method, StateContext, TaskContext, state_tensor
from clexp.ogd import (
    FlatBuffer,
    GradientProjector,
    average_task_gradient,
    empty_basis,
    extend_basis,
    extend_basis_rows,
    ground_truth_logit_gradients,
    project_out_,
)

PROJECTIONS = ("gradient", "step")
DIRECTIONS = ("mean_loss", "gtl")
# |B B^T - I| of a stored basis: Gram-Schmidt twice in float64 keeps it near 1e-15.
ORTHONORMAL_TOLERANCE = 1e-6


def alignment(update: torch.Tensor, basis: torch.Tensor, wide: torch.Tensor | None = None
              ) -> float:
    """|cos| between `update` and its closest direction in the span of the orthonormal rows
    (computed in float64; `wide`, when given, is the float64 working vector)."""
    wide = update.to(torch.float64) if wide is None else wide.copy_(update)
    norm = wide.norm()
    if basis.shape[0] == 0 or norm == 0:
        return 0.0
    return float((basis @ wide).norm() / norm)


class OGD(Method):
    """Orthogonal Gradient Descent: the notebook's mean-loss variant (one direction per task)
    or OGD-GTL (up to `ogd_memory` directions per task)."""

    name = "ogd"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.projection = self.option("ogd_project")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"ogd_project must be one of {PROJECTIONS}, got {self.projection!r}")
        self.directions = self.option("ogd_directions")
        if self.directions not in DIRECTIONS:
            raise ValueError(f"ogd_directions must be one of {DIRECTIONS}, got "
                             f"{self.directions!r}")
        self.memory = int(self.option("ogd_memory"))
        if self.memory < 1:
            raise ValueError(f"ogd_memory must be at least 1, got {self.memory}")
        self.basis = empty_basis(model).to(next(model.parameters()).device)
        self._alignments: list[float] = []
        self._projector = None
        # Per task with a non-empty basis: the parameters before the step and after it, flat,
        # and the float64 working vector (kept, not allocated at every step).
        self._parameters: list[torch.Tensor] = []
        self._before = self._after = self._wide = None

    def start_task(self, context: TaskContext) -> None:
        self._alignments = []
        self._projector = None
        if self.basis.shape[0] == 0:
            return
        self._parameters = self.parameters()
        self._before, self._after = FlatBuffer(self._parameters), FlatBuffer(self._parameters)
        self._wide = torch.empty(len(self._before.flat), dtype=self.basis.dtype,
                                 device=self.basis.device)
        if self.projection == "gradient":
            self._projector = GradientProjector(self.model, self.basis)

    @torch.no_grad()
    def before_step(self) -> None:
        if self.basis.shape[0] == 0:
            return
        if self._projector is not None:
            self._projector()
        self._before.gather(self._parameters)

    @torch.no_grad()
    def after_step(self) -> None:
        if self.basis.shape[0] == 0:
            return
        before = self._before.flat
        update = self._after.gather(self._parameters).sub_(before)
        if self.projection == "step":
            project_out_(update, self.basis, self._wide)
            update.add_(before)  # the parameters to apply: before + the projected step
            self._after.scatter(self._parameters)
            update.sub_(before)  # the step as applied (after rounding to the parameters' dtype)
        self._alignments.append(alignment(update, self.basis, self._wide))

    def end_task(self, context: TaskContext) -> None:
        if self.directions == "mean_loss":
            direction = average_task_gradient(self.model, context.images, context.labels,
                                              context.batch_size, loss=self.scenario.loss)
            self.basis = extend_basis(self.basis, direction)
            return
        images, labels = context.images, context.labels
        if self.memory < len(images):
            chosen = torch.randperm(len(images), generator=self.generator)[: self.memory]
            chosen = chosen.to(images.device)
            images, labels = images[chosen], labels[chosen]
        gradients = ground_truth_logit_gradients(self.model, images,
                                                 self.scenario.targets(labels))
        self.basis = extend_basis_rows(self.basis, gradients)

    def directions_per_task(self) -> int:
        """The most directions one task adds to the basis."""
        return self.memory if self.directions == "gtl" else 1

    def log_fields(self) -> dict:
        return {"ogd_basis_size": int(self.basis.shape[0])}

    def task_record(self) -> dict:
        """The update's alignment with the basis over the task's steps, and the basis that
        constrained the task: its rows, its memory in bytes, and the multiply-adds of one
        projection (B v, then B^T of that: 2 k P)."""
        values = self._alignments
        rows, size = self.basis.shape
        return {
            "ogd_update_alignment_mean": sum(values) / len(values) if values else None,
            "ogd_update_alignment_max": max(values) if values else None,
            "ogd_update_alignment_steps": len(values),
            "ogd_projection_rows": int(rows),
            "ogd_basis_bytes": int(self.basis.element_size() * rows * size),
            "ogd_projection_macs_per_step": int(2 * rows * size),
        }

    def state_dict(self) -> dict:
        return dict(super().state_dict(), basis=self.basis.cpu())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.basis = state["basis"].to(device=self.basis.device, dtype=torch.float64)

    def check_state(self, state: dict, context: StateContext) -> None:
        """At most one direction per consolidated task (OGD-GTL: `ogd_memory`), of the
        model's parameter count, with orthonormal rows (what the projection assumes)."""
        super().check_state(state, context)
        basis = state_tensor(state, "basis", dims=2, shape=(None, context.parameter_count()))
        per_task = self.directions_per_task()
        if basis.shape[0] > context.task * per_task:
            stored = "one" if per_task == 1 else f"{per_task} (ogd_memory)"
            raise StateError(f"basis has {basis.shape[0]} directions after {context.task} "
                             f"task(s); OGD ({self.directions}) stores at most {stored} per "
                             "task")
        gram = basis.to(torch.float64) @ basis.to(torch.float64).T
        error = (gram - torch.eye(len(gram), dtype=torch.float64)).abs().max().item() \
            if len(gram) else 0.0
        if error > ORTHONORMAL_TOLERANCE:
            raise StateError(f"basis rows are not orthonormal (largest deviation of B B^T "
                             f"from I: {error:.3g})")
