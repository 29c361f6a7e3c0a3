"""Elastic Weight Consolidation (Kirkpatrick et al. 2017) and its online variant
(Schwarz et al. 2018).

After each task the diagonal Fisher information of the model's predictive distribution is
estimated on `ewc_fisher_images` of the task's training images (a random sample drawn with the
method's generator; 1000 by default, all when null): F_i = mean over images x of
sum_c p(c|x) (d log p(c|x) / d theta_i)^2 -- the expectation over the model's own outputs, as in
the paper, computed exactly over the ten classes (no label sampling), in evaluation mode (no
dropout; BatchNorm with its running statistics).

Penalty while training later tasks: lambda/2 * sum over stored tasks k of
sum_i F_k,i (theta_i - theta*_k,i)^2, theta*_k the parameters after task k. Online EWC keeps one
running Fisher F <- gamma F + F_new and one anchor (the latest parameters).

lambda is not fixed by the paper for split MNIST; the default (100) is in the range used for
MLPs trained like this study's (Adam 1e-3, a few epochs; Hsu et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from clexp.errors import StateError
from clexp.methods.base import Method, StateContext, TaskContext, flat_parameters, state_tensor

FISHER_CHUNK = 1024  # images per forward pass of the Fisher estimate


def _normalised_input(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """x-hat of a normalisation layer in evaluation mode: its output before the affine map."""
    if isinstance(module, nn.BatchNorm1d):
        return nn.functional.batch_norm(inputs, module.running_mean, module.running_var,
                                        training=False, eps=module.eps)
    return nn.functional.layer_norm(inputs, module.normalized_shape, eps=module.eps)


def diagonal_fisher(model: nn.Module, images: torch.Tensor, chunk: int = FISHER_CHUNK,
                    active: list[int] | None = None):
    """The diagonal Fisher as one flat vector over the trainable parameters (float32), of the
    predictive distribution over the `active` outputs (the scenario's: a softmax over those
    logits only; None: all outputs).

    Computed exactly, without per-sample gradients: in evaluation mode every image passes the
    network on its own, and each layer's per-sample gradient for class c factorises as
    delta_c (the gradient of log p(c|x) at the layer's output) times what the layer multiplies
    it with (its input for a linear weight, 1 for a bias, x-hat for a normalisation scale).
    Squared and weighted by p(c|x), the sum over classes therefore only needs
    D = sum_c p(c|x) delta_c^2 per layer output (one backward pass per class for all images):
    a linear weight's Fisher is D^T (input^2), a bias' the sum of D, a normalisation scale's
    the sum of D * x-hat^2. Supports the layers the study's MLP has: Linear, BatchNorm1d and
    LayerNorm (any other module with parameters raises TypeError).
    """
    was_training = model.training
    model.eval()
    layers = [m for m in model.modules() if list(m.parameters(recurse=False))]
    for module in layers:
        if not isinstance(module, (nn.Linear, nn.BatchNorm1d, nn.LayerNorm)):
            raise TypeError(f"diagonal_fisher: no Fisher formula for {type(module).__name__}")
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: seen.__setitem__(m, (i[0], o)))
             for m in layers]
    fisher = {p: torch.zeros_like(p) for p in model.parameters()}
    try:
        for start in range(0, len(images), chunk):
            with torch.enable_grad():
                seen.clear()
                logits = model(images[start : start + chunk])[0]
                if active is not None:
                    logits = logits[:, active]
                log_probs = torch.log_softmax(logits, dim=1)
                probs = log_probs.detach().exp()
                outputs = [seen[m][1] for m in layers]
                weighted = [torch.zeros_like(o) for o in outputs]  # D per layer output
                classes = log_probs.shape[1]
                for c in range(classes):
                    deltas = torch.autograd.grad(log_probs[:, c].sum(), outputs,
                                                 retain_graph=c < classes - 1)
                    for total, delta in zip(weighted, deltas, strict=True):
                        total.addcmul_(delta.square(), probs[:, c : c + 1])
            with torch.no_grad():
                for module, total in zip(layers, weighted, strict=True):
                    inputs = seen[module][0].detach()
                    if isinstance(module, nn.Linear):
                        fisher[module.weight] += total.T @ inputs.square()
                    elif module.weight is not None:
                        scale = (total * _normalised_input(module, inputs).square()).sum(0)
                        fisher[module.weight] += scale
                    if module.bias is not None:
                        fisher[module.bias] += total.sum(0)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    parts = [fisher[p].reshape(-1) for p in model.parameters() if p.requires_grad]
    return torch.cat(parts) / max(len(images), 1)


class EWC(Method):
    """EWC; `ewc_online: true` gives online EWC with decay `ewc_gamma`."""

    name = "ewc"

    def __init__(self, run, model, seed):
        super().__init__(run, model, seed)
        self.strength = float(self.option("ewc_lambda"))
        self.online = bool(self.option("ewc_online"))
        self.gamma = float(self.option("ewc_gamma"))
        self.fisher_images = self.option("ewc_fisher_images")
        device = next(model.parameters()).device
        count = sum(p.numel() for p in self.parameters())
        self.fishers = torch.zeros(0, count, device=device)
        self.anchors = torch.zeros(0, count, device=device)

    def penalty(self, model, x, y, logits):
        if self.fishers.shape[0] == 0 or self.strength == 0:
            return None
        theta = torch.cat([p.reshape(-1) for p in self.parameters()])
        return 0.5 * self.strength * (self.fishers * (theta - self.anchors).pow(2)).sum()

    def end_task(self, context: TaskContext) -> None:
        images = context.images
        if self.fisher_images is not None and self.fisher_images < len(images):
            chosen = torch.randperm(len(images), generator=self.generator)[: self.fisher_images]
            images = images[chosen.to(images.device)]
        fisher = diagonal_fisher(self.model, images, active=self.fisher_outputs(context))
        fisher = fisher.unsqueeze(0)
        anchor = flat_parameters(self.parameters()).unsqueeze(0)
        if self.online and self.fishers.shape[0] > 0:
            self.fishers = self.gamma * self.fishers + fisher
            self.anchors = anchor
        else:
            self.fishers = torch.cat([self.fishers, fisher])
            self.anchors = torch.cat([self.anchors, anchor])

    def fisher_outputs(self, context: TaskContext) -> list[int] | None:
        """The outputs the Fisher's predictive distribution is over: the task's own in
        task-IL (its active outputs), every output otherwise (None)."""
        if self.scenario.kind == "task":
            return sorted(int(c) for c in context.tasks[context.task - 1])
        return None

    def state_dict(self) -> dict:
        return dict(super().state_dict(), fishers=self.fishers.cpu(), anchors=self.anchors.cpu())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        device = self.fishers.device
        self.fishers = state["fishers"].to(device)
        self.anchors = state["anchors"].to(device)

    def check_state(self, state: dict, context: StateContext) -> None:
        """One Fisher and anchor per task (online: one running pair), each of the model's
        parameter count; Fishers non-negative."""
        super().check_state(state, context)
        rows = 1 if self.online else context.task
        shape = (rows, context.parameter_count())
        state_tensor(state, "fishers", shape=shape, dims=2, non_negative=True)
        state_tensor(state, "anchors", shape=shape, dims=2)
        if not bool(state["fishers"].any()):
            raise StateError("fishers are all zero (no Fisher information stored)")
