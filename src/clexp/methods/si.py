"""Synaptic Intelligence (Zenke, Poole & Ganguli 2017).

During a task, each parameter's contribution to the drop of the loss is integrated along the
training path: w_i += -g_i * dtheta_i at every step, g the gradient of the task loss (the SI
penalty's own gradient, known in closed form, is taken out) and dtheta the applied update. At
the end of the task the importance grows by Omega_i += max(w_i, 0) / (Delta_i^2 + xi), Delta_i
the parameter's total change over the task and xi the damping. A negative path integral (the
parameter moved against its gradient, which momentum can do) adds no importance.

Penalty while training later tasks: c * sum_i Omega_i (theta_i - theta*_i)^2, theta* the
parameters at the end of the previous task. Defaults c = 1 and xi = 1e-3 (the paper's split
MNIST values).
"""

from __future__ import annotations

import torch

from clexp.methods.base import Method, StateContext, TaskContext, flat_parameters, state_tensor


class SI(Method):
    """SI with strength `si_c` and damping `si_xi`."""

    name = "si"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.strength = float(self.option("si_c"))
        self.damping = float(self.option("si_xi"))
        anchor = flat_parameters(self.parameters())
        self.anchor = anchor                        # theta* (end of the previous task)
        self.importance = torch.zeros_like(anchor)  # Omega
        self.path = torch.zeros_like(anchor)        # w, this task's running integral
        self._gradient = torch.zeros_like(anchor)
        self._before = torch.zeros_like(anchor)

    def _flat(self) -> torch.Tensor:
        return torch.cat([p.reshape(-1) for p in self.parameters()])

    def penalty(self, model, x, y, logits):
        if not bool(self.importance.any()):
            return None
        return self.strength * (self.importance * (self._flat() - self.anchor).pow(2)).sum()

    def start_task(self, context: TaskContext) -> None:
        self.anchor = flat_parameters(self.parameters())
        self.path = torch.zeros_like(self.anchor)

    @torch.no_grad()
    def before_step(self) -> None:
        gradient = torch.cat([
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in self.parameters()
        ])
        theta = self._flat()
        # the task loss' gradient: minus the penalty's, 2 c Omega (theta - theta*)
        self._gradient = gradient - 2 * self.strength * self.importance * (theta - self.anchor)
        self._before = theta.clone()

    @torch.no_grad()
    def after_step(self) -> None:
        self.path -= self._gradient * (self._flat() - self._before)

    @torch.no_grad()
    def end_task(self, context: TaskContext) -> None:
        change = self._flat() - self.anchor
        self.importance += self.path.clamp(min=0) / (change.pow(2) + self.damping)
        self.anchor = flat_parameters(self.parameters())
        self.path = torch.zeros_like(self.anchor)

    def state_dict(self) -> dict:
        return dict(super().state_dict(), anchor=self.anchor.cpu(),
                    importance=self.importance.cpu(), path=self.path.cpu())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        device = self.anchor.device
        self.anchor = state["anchor"].to(device)
        self.importance = state["importance"].to(device)
        self.path = state["path"].to(device)

    def check_state(self, state: dict, context: StateContext) -> None:
        """Anchor, importance and path integral, each of the model's parameter count;
        importance non-negative."""
        super().check_state(state, context)
        shape = (context.parameter_count(),)
        state_tensor(state, "anchor", shape=shape, dims=1)
        state_tensor(state, "importance", shape=shape, dims=1, non_negative=True)
        state_tensor(state, "path", shape=shape, dims=1)
