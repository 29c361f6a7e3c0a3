"""Learning without Forgetting (Li & Hoiem 2016).

At the end of each task the model is snapshotted. While training a later task, the loss gets
alpha * KL(softmax(z_prev / T) || softmax(z / T)), z_prev the snapshot's logits on the same
batch, over the outputs of the scenario (`distilled_outputs`): class-incremental, the old
classes' logits (classes of the earlier tasks) in one softmax; task-incremental, each old
task's own logits in a softmax of their own, the terms averaged over the old tasks;
domain-incremental, both outputs. The snapshot's logits are taken (evaluation mode: no
dropout, BatchNorm with running statistics). The KL divergence is the paper's modified
cross-entropy minus the targets' entropy, which does not depend on the model: the same
gradient, and zero when the model equals its snapshot. Defaults T = 2 and alpha (the paper's
lambda_o) = 1, as in the paper.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from clexp.errors import StateError
from clexp.methods.base import Method, StateContext, TaskContext, check_model_like
from clexp.scenario import Scenario


def distillation(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float):
    """Mean over the batch of KL(softmax(target/T) || softmax(logits/T))."""
    target = torch.log_softmax(target_logits / temperature, dim=1)
    current = torch.log_softmax(logits / temperature, dim=1)
    return (target.exp() * (target - current)).sum(dim=1).mean()


def distilled_outputs(scenario: Scenario, context: TaskContext) -> list[list[int]]:
    """The groups of outputs distilled while task `context.task` trains, each a softmax of
    its own: class-IL, the old classes' outputs together; task-IL, each old task's own
    outputs (the terms averaged over the old tasks, as in van de Ven & Tolias' code);
    domain-IL, every output (all tasks share them). None before task 2."""
    if context.task < 2:
        return []
    if scenario.kind == "task":
        return [sorted(int(c) for c in t) for t in context.tasks[: context.task - 1]]
    if scenario.kind == "domain":
        return [list(range(scenario.outputs))]
    return [context.old_classes()]


class LwF(Method):
    """Distillation on the previous model's old-class outputs."""

    name = "lwf"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.alpha = float(self.option("lwf_alpha"))
        self.temperature = float(self.option("lwf_temperature"))
        self.previous: nn.Module | None = None
        self.groups: list[list[int]] = []

    def start_task(self, context: TaskContext) -> None:
        self.groups = distilled_outputs(self.scenario, context)

    def penalty(self, model, x, y, logits):
        if self.previous is None or not self.groups:
            return None
        with torch.no_grad():
            previous = self.previous(x)[0]
        terms = [distillation(logits[:, g], previous[:, g], self.temperature)
                 for g in self.groups]
        return self.alpha * torch.stack(terms).mean()

    def end_task(self, context: TaskContext) -> None:
        self._snapshot({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def _snapshot(self, state: dict) -> None:
        self.previous = copy.deepcopy(self.model)
        self.previous.load_state_dict(state)
        self.previous.eval()
        for p in self.previous.parameters():
            p.requires_grad_(False)

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.previous is not None:
            state["previous_model"] = {k: v.cpu() for k, v in self.previous.state_dict().items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "previous_model" in state:
            self._snapshot(state["previous_model"])

    def check_state(self, state: dict, context: StateContext) -> None:
        """The snapshot of the model after the checkpoint's task: every checkpoint follows a
        consolidated task, so it is required."""
        super().check_state(state, context)
        if "previous_model" not in state:
            raise StateError("previous_model (the snapshot distilled from) is missing")
        check_model_like(state["previous_model"], context.model.state_dict(), "previous_model")
