"""Averaged Gradient Episodic Memory (Chaudhry et al. 2019).

Before every step, a reference gradient g_ref is computed on `agem_sample_size` images drawn
from the replay buffer (the same class-balanced buffer of indices as ER). When the batch
gradient g conflicts with it (g . g_ref < 0), g is replaced by its projection
g - (g . g_ref / g_ref . g_ref) g_ref, whose dot product with g_ref is zero. The reference pass
runs in training mode like the batch's own; BatchNorm's running statistics are restored after
it, so only the task's batches move them.
"""

from __future__ import annotations

import torch

from clexp.methods.base import restore_buffers
from clexp.methods.er import ER
from clexp.ogd import flat_gradient


def agem_project(gradient: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A-GEM's projection of a flat gradient, computed in float64."""
    g, r = gradient.to(torch.float64), reference.to(torch.float64)
    dot = g @ r
    if dot >= 0:
        return gradient
    return (g - (dot / (r @ r)) * r).to(gradient.dtype)


class AGEM(ER):
    """A-GEM: the buffer is never trained on directly, only used for the reference gradient."""

    name = "agem"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.sample_size = int(self.option("agem_sample_size"))
        self.projected_steps = 0

    def batch(self, x, y):
        return x, y

    def start_task(self, context) -> None:
        super().start_task(context)
        self.projected_steps = 0

    def before_step(self) -> None:
        if self.images is None:
            return
        parameters = self.parameters()
        gradient = flat_gradient(self.model).detach().clone()
        x, y = self.sample(self.sample_size)
        saved = {name: b.clone() for name, b in self.model.named_buffers()}
        self.model.zero_grad(set_to_none=True)
        self.scenario.loss(self.model(x)[0], y).backward()  # replayed images: their own outputs
        reference = flat_gradient(self.model).detach()
        restore_buffers(self.model, saved)
        projected = agem_project(gradient, reference)
        self.projected_steps += int(projected is not gradient)
        offset = 0
        with torch.no_grad():
            for p in parameters:
                p.grad = projected[offset : offset + p.numel()].view_as(p).clone()
                offset += p.numel()

    def task_record(self) -> dict:
        return {"agem_projected_steps": self.projected_steps}
