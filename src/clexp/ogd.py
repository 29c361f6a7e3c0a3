"""Orthogonal Gradient Descent: the stored basis, the projection, and the directions it stores.

Two kinds of directions are stored after each task (`clexp.methods.ogd`, `ogd_directions`):

- the notebook's mean-loss variant (`average_task_gradient`): ONE direction per task, the mean
  of the per-batch gradients of the plain cross-entropy loss over the task's training data.
  This is the study's own variant, not the paper's algorithm.
- OGD-GTL, Farajtabar et al. 2020, "Orthogonal Gradient Descent for Continual Learning"
  (`ground_truth_logit_gradients`): for m training images of the task, the gradient of each
  image's ground-truth logit, m directions per task.

Either way each direction is orthogonalised against the basis (Gram-Schmidt, `extend_basis`)
and appended, normalised, if its norm exceeds eps. While training later tasks, every batch
gradient (flattened over all parameters) is projected onto the orthogonal complement of the
basis before the optimizer step.

The basis is a (k, P) float64 tensor of orthonormal rows, P the number of parameters; k = 0 is
an empty (0, P) tensor. Projections are computed in float64: a batch gradient is often nearly
inside the span, and float32 cancellation would leave it measurably non-orthogonal.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-8


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (the length of a flattened gradient)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def empty_basis(model: nn.Module) -> torch.Tensor:
    """A basis with no directions for `model`."""
    return torch.zeros(0, parameter_count(model), dtype=torch.float64)


def flat_gradient(model: nn.Module) -> torch.Tensor:
    """All parameter gradients concatenated into one vector (zeros where a gradient is None)."""
    parts = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        parts.append(p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()))
    return torch.cat(parts)


def project_out_(vector: torch.Tensor, basis: torch.Tensor, wide: torch.Tensor) -> None:
    """Replace `vector` by its component orthogonal to the span of the (orthonormal) basis
    rows, computed in basis.dtype in `wide` (working space of the vector's length, kept by
    callers that project every step, so nothing is allocated per call)."""
    if basis.shape[0] == 0:
        return
    wide.copy_(vector)
    wide.sub_(basis.T @ (basis @ wide))
    vector.copy_(wide)


def project_out(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The component of `vector` orthogonal to the span of the (orthonormal) basis rows (a new
    tensor; `project_out_` in place)."""
    if basis.shape[0] == 0:
        return vector
    result = vector.clone()
    project_out_(result, basis, torch.empty(len(vector), dtype=basis.dtype, device=vector.device))
    return result


class FlatBuffer:
    """One contiguous vector with a view per tensor of `like`: a list of tensors shaped like
    them (parameters, gradients) is gathered into it, or scattered back, by one multi-tensor
    copy, without allocating. The vector is the tensors' flattened concatenation."""

    def __init__(self, like: list[torch.Tensor]):
        self.flat = torch.empty(sum(t.numel() for t in like), dtype=like[0].dtype,
                                device=like[0].device)
        self.views, offset = [], 0
        for tensor in like:
            self.views.append(self.flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()

    @torch.no_grad()
    def gather(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        torch._foreach_copy_(self.views, tensors)
        return self.flat

    @torch.no_grad()
    def scatter(self, tensors: list[torch.Tensor]) -> None:
        torch._foreach_copy_(tensors, self.views)


class GradientProjector:
    """`project_gradients` for one model and basis, set up once for a task's many batches:
    the parameter list, a flat gradient buffer and the float64 working vector are kept."""

    def __init__(self, model: nn.Module, basis: torch.Tensor):
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.basis = basis
        self.buffer = FlatBuffer(self.parameters)
        self.wide = torch.empty(len(self.buffer.flat), dtype=basis.dtype, device=basis.device)

    @torch.no_grad()
    def __call__(self) -> None:
        if self.basis.shape[0] == 0:
            return
        for p in self.parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        gradients = [p.grad for p in self.parameters]
        project_out_(self.buffer.gather(gradients), self.basis, self.wide)
        self.buffer.scatter(gradients)


def _new_row(basis: torch.Tensor, direction: torch.Tensor, eps: float) -> torch.Tensor | None:
    """`direction`'s component orthogonal to the basis rows, normalised; None when its norm
    is at most eps. The projection is applied twice ("twice is enough")."""
    direction = direction.to(device=basis.device, dtype=basis.dtype)
    residual = project_out(project_out(direction, basis), basis)
    norm = residual.norm()
    if norm <= eps:
        return None
    return residual / norm


def extend_basis(basis: torch.Tensor, direction: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Gram-Schmidt `direction` against `basis`; append it normalised if its norm exceeds eps.

    The projection is applied twice ("twice is enough"), which keeps the rows orthonormal to
    float precision even when the new direction is nearly inside the span.
    """
    row = _new_row(basis, direction, eps)
    if row is None:
        return basis
    return torch.cat([basis, row.unsqueeze(0)], dim=0)


def extend_basis_rows(basis: torch.Tensor, directions: torch.Tensor, eps: float = EPS
                      ) -> torch.Tensor:
    """`extend_basis` with each row of `directions` in turn (the same rows, bit for bit), in
    one buffer allocated once: appending hundreds of rows to a large basis one `torch.cat` at
    a time would copy the whole basis for every row."""
    rows = torch.empty(len(basis) + len(directions), basis.shape[1], dtype=basis.dtype,
                       device=basis.device)
    rows[: len(basis)] = basis
    count = len(basis)
    for direction in directions:
        row = _new_row(rows[:count], direction, eps)
        if row is not None:
            rows[count] = row
            count += 1
    return rows[:count].clone() if count < len(rows) else rows


def project_gradients(model: nn.Module, basis: torch.Tensor) -> None:
    """Replace the model's gradient by its projection onto the basis' orthogonal complement."""
    GradientProjector(model, basis)()


def average_task_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, loss=None
) -> torch.Tensor:
    """Mean over the task's batches of the plain cross-entropy gradient (no penalty terms).
    `loss(logits, labels)`: the scenario's cross-entropy (`clexp.scenario.Scenario.loss`,
    on the active outputs); default: over all logits.

    The model is in training mode, as when the projected gradients are taken; BatchNorm running
    statistics are restored afterwards, so this measurement does not change the model.
    """
    was_training = model.training
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model.train()
    total = next(model.parameters()).new_zeros(parameter_count(model))
    batches = 0
    for start in range(0, len(images), batch_size):
        model.zero_grad(set_to_none=True)
        logits, _ = model(images[start : start + batch_size])
        targets = labels[start : start + batch_size]
        if loss is None:
            nn.functional.cross_entropy(logits, targets).backward()
        else:
            loss(logits, targets).backward()
        total += flat_gradient(model)
        batches += 1
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    model.train(was_training)
    return total / max(batches, 1)


GTL_CHUNK = 128  # images per vectorised per-image gradient pass


def ground_truth_logit_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                                 chunk: int = GTL_CHUNK) -> torch.Tensor:
    """(n, P): for each image, the gradient of its ground-truth logit, `logits[target]`, with
    respect to the trainable parameters, flattened like `flat_gradient` (OGD-GTL's stored
    directions, Farajtabar et al. 2020). `targets`: the output index of each image's true
    label in the run's scenario (`clexp.scenario.Scenario.targets`).

    Computed per image with `torch.func` (`grad` of a single-image `functional_call`,
    vectorised by `vmap`), `chunk` images at a time so that memory stays bounded, with the
    model in evaluation mode: BatchNorm normalises with its running statistics (a batch of one
    image has none of its own) and dropout is off. Buffers are read, never written, and the
    model's gradients are left as they were.
    """
    from torch.func import functional_call, grad, vmap

    names = [name for name, p in model.named_parameters() if p.requires_grad]
    trainable = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    fixed = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    fixed.update(dict(model.named_buffers()))

    def logit(parameters, image, target):
        logits, _ = functional_call(model, {**parameters, **fixed}, (image.unsqueeze(0),))
        return logits[0].gather(0, target.reshape(1))[0]  # logits[0, target], under vmap

    per_image = vmap(grad(logit), in_dims=(None, 0, 0))
    was_training = model.training
    model.eval()
    try:
        parts = []
        for start in range(0, len(images), chunk):
            gradients = per_image(trainable, images[start : start + chunk],
                                  targets[start : start + chunk])
            parts.append(torch.cat([gradients[name].reshape(len(gradients[name]), -1)
                                    for name in names], dim=1))
    finally:
        model.train(was_training)
    if not parts:
        return images.new_zeros(0, parameter_count(model))
    return torch.cat(parts)
