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
from torch.func import functional_call, jacrev, vmap

from clexp.methods.base import Method, TaskContext, flat_parameters

FISHER_CHUNK = 32  # images per vectorised Jacobian: ten gradients of every parameter per image


def diagonal_fisher(model: nn.Module, images: torch.Tensor, chunk: int = FISHER_CHUNK):
    """The diagonal Fisher as one flat vector over the trainable parameters (float32)."""
    was_training = model.training
    model.eval()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def log_probs(parameters, x):
        logits = functional_call(model, (parameters, buffers), (x.unsqueeze(0),))[0]
        return torch.log_softmax(logits, dim=1)[0]

    jacobian = vmap(jacrev(log_probs), in_dims=(None, 0))
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.no_grad():
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk]
            probs = torch.softmax(model(x)[0], dim=1)
            grads = jacobian(params, x)  # name -> (N, C, *shape)
            for n in names:
                squared = grads[n].pow(2).flatten(2)
                fisher[n] += torch.einsum("nc,ncp->p", probs, squared).view_as(fisher[n])
    model.train(was_training)
    return torch.cat([fisher[n].reshape(-1) for n in names]) / max(len(images), 1)


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
        fisher = diagonal_fisher(self.model, images).unsqueeze(0)
        anchor = flat_parameters(self.parameters()).unsqueeze(0)
        if self.online and self.fishers.shape[0] > 0:
            self.fishers = self.gamma * self.fishers + fisher
            self.anchors = anchor
        else:
            self.fishers = torch.cat([self.fishers, fisher])
            self.anchors = torch.cat([self.anchors, anchor])

    def state_dict(self) -> dict:
        return dict(super().state_dict(), fishers=self.fishers.cpu(), anchors=self.anchors.cpu())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        device = self.fishers.device
        self.fishers = state["fishers"].to(device)
        self.anchors = state["anchors"].to(device)
