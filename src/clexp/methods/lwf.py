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

`lwf_weighting: paper` weights the two terms as van de Ven & Tolias' code does for split
MNIST ("Three scenarios for continual learning", 2019): while task t trains,
loss = CE / t + (1 - 1/t) * T^2 * distillation, with no alpha. From GMvandeVen/
continual-learning at commit 10811aa0a8801710d9b53bc7867b1d51fc1bdd70: train.py calls
`train_a_batch(..., rnt=1./task)` with the current batch replayed ("current" replay with soft
targets is their LwF), encoder.py's `train_a_batch` takes `rnt*loss_cur + (1-rnt)*loss_replay`
(the replay term averaged over the previous tasks in task-IL), and utils.py's `loss_fn_kd`
(commit 26f00dbdf0896e07c4d94b9254def750738f4f9a) multiplies the distillation by T**2. Their
distillation is a cross-entropy against the soft targets, ours the KL divergence: the same
gradient. Where theirs differs and this option does not follow: in class-IL their softmax (of
the cross-entropy and of the distillation, whose targets they pad with zeros) runs over the
classes seen so far, ours over all ten outputs and over the old classes respectively.
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


def paper_weights(task: int, temperature: float) -> tuple[float, float]:
    """(weight of the cross-entropy, weight of the distillation) while task `task` (1-based)
    trains, as van de Ven & Tolias weight them: 1/t and (1 - 1/t) T^2."""
    share = 1.0 / task
    return share, (1.0 - share) * temperature**2


class LwF(Method):
    """Distillation on the previous model's old-class outputs."""

    name = "lwf"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.paper = self.option("lwf_weighting") == "paper"
        # paper: no alpha (clexp.config drops it); the weights follow the task (start_task)
        self.alpha = 1.0 if self.paper else float(self.option("lwf_alpha"))
        self.temperature = float(self.option("lwf_temperature"))
        self.previous: nn.Module | None = None
        self.groups: list[list[int]] = []
        self.weight = 1.0  # of the cross-entropy

    def start_task(self, context: TaskContext) -> None:
        self.groups = distilled_outputs(self.scenario, context)
        if self.paper:
            self.weight, self.alpha = paper_weights(context.task, self.temperature)

    def cross_entropy_weight(self) -> float:
        return self.weight

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
