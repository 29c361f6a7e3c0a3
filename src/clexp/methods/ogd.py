"""OGD as a method: the basis from `clexp.ogd`, a projection before or after the step.

`ogd_project: gradient` (the study's variant, Farajtabar et al. 2020) projects every batch
gradient onto the basis' orthogonal complement before the optimizer step. With SGD without
momentum or decay the applied update is then orthogonal too; with AdamW it is not (per-parameter
scaling, momentum carried over from the previous task, decoupled decay).
`ogd_project: step` leaves the gradient alone and projects the optimizer's applied step
(parameters after minus before) instead, which keeps the update orthogonal with any optimizer.

Either way the method measures, at every step of a task with a non-empty basis, the applied
update's alignment with the basis, |cos(dtheta, span(B))| = ||B dtheta|| / ||dtheta||, and
reports its mean and max over the task (`task_record`).
"""

from __future__ import annotations

import torch

from clexp.methods.base import Method, TaskContext, flat_parameters
from clexp.ogd import (
    GradientProjector,
    average_task_gradient,
    empty_basis,
    extend_basis,
    project_out,
)

PROJECTIONS = ("gradient", "step")


def alignment(update: torch.Tensor, basis: torch.Tensor) -> float:
    """|cos| between `update` and its closest direction in the span of the orthonormal rows."""
    wide = update.to(torch.float64)
    norm = wide.norm()
    if basis.shape[0] == 0 or norm == 0:
        return 0.0
    return float((basis @ wide).norm() / norm)


class OGD(Method):
    """Orthogonal Gradient Descent with one stored direction per task."""

    name = "ogd"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.projection = self.option("ogd_project")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"ogd_project must be one of {PROJECTIONS}, got {self.projection!r}")
        self.basis = empty_basis(model).to(next(model.parameters()).device)
        self._alignments: list[float] = []
        self._before: torch.Tensor | None = None
        self._projector = None

    def start_task(self, context: TaskContext) -> None:
        self._alignments = []
        active = self.basis.shape[0] > 0
        self._projector = (GradientProjector(self.model, self.basis)
                           if active and self.projection == "gradient" else None)

    @torch.no_grad()
    def before_step(self) -> None:
        if self.basis.shape[0] == 0:
            return
        if self._projector is not None:
            self._projector()
        self._before = flat_parameters(self.parameters())

    @torch.no_grad()
    def after_step(self) -> None:
        if self.basis.shape[0] == 0:
            return
        parameters = self.parameters()
        update = flat_parameters(parameters) - self._before
        if self.projection == "step":
            update = project_out(update, self.basis)
            applied = self._before + update
            offset = 0
            for p in parameters:
                p.copy_(applied[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            update = flat_parameters(parameters) - self._before
        self._alignments.append(alignment(update, self.basis))

    def end_task(self, context: TaskContext) -> None:
        direction = average_task_gradient(self.model, context.images, context.labels,
                                          context.batch_size)
        self.basis = extend_basis(self.basis, direction)

    def log_fields(self) -> dict:
        return {"ogd_basis_size": int(self.basis.shape[0])}

    def task_record(self) -> dict:
        values = self._alignments
        return {
            "ogd_update_alignment_mean": sum(values) / len(values) if values else None,
            "ogd_update_alignment_max": max(values) if values else None,
            "ogd_update_alignment_steps": len(values),
        }

    def state_dict(self) -> dict:
        return dict(super().state_dict(), basis=self.basis.cpu())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.basis = state["basis"].to(device=self.basis.device, dtype=torch.float64)
