"""A class-balanced replay buffer of indices into the dataset's training split (ER, A-GEM).

After each task the buffer is refilled to `size` slots shared equally among all classes seen so
far (the first `size mod classes` classes get one more): each old class keeps the first of its
stored indices, each new class gets a random sample (the method's generator) of its training
images. Only indices are stored, so checkpoints stay small; the images are looked up in the
dataset file when a task starts.
"""

from __future__ import annotations

import numpy as np
import torch

from clexp.errors import StateError
from clexp.methods.base import StateContext, state_tensor


def expected_class_counts(size: int, tasks, task: int, train_labels: np.ndarray) -> dict:
    """Class -> stored images after tasks 1..`task`, as `ReplayBuffer.add_task` fills the
    buffer (in the order classes were added): each task's new classes, sorted, get a share of
    `size`, at most the class's training images; an old class keeps at most its new share."""
    available = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=10)
    counts: dict[int, int] = {}
    for classes in tasks[:task]:
        new = sorted(int(c) for c in dict.fromkeys(classes)
                     if c not in counts and c < len(available) and available[c] > 0)
        order = list(counts) + new
        base, extra = divmod(size, max(len(order), 1))
        quota = {c: base + (1 if i < extra else 0) for i, c in enumerate(order)}
        counts = {c: min(counts[c], quota[c]) for c in counts}
        counts.update({c: min(quota[c], int(available[c])) for c in new})
    return counts


def check_buffer_state(state, size: int, context: StateContext, name: str = "buffer") -> None:
    """Raise StateError unless `state` is the buffer `ReplayBuffer.state_dict` writes after
    task `context.task` of `size` slots: indices into the training split, each labelled with
    the dataset's label, no index twice, and the class quotas `expected_class_counts`."""
    if not isinstance(state, dict):
        raise StateError(f"{name} is missing" if state is None else
                         f"{name} is a {type(state).__name__}, not a dict")
    if state.get("size") != size or isinstance(state.get("size"), bool):
        raise StateError(f"{name}.size is {state.get('size')!r}, expected {size} (buffer_size)")
    indices = state_tensor(state, "indices", dims=1, kind="int64", name=f"{name}.indices")
    labels = state_tensor(state, "labels", dims=1, kind="int64", name=f"{name}.labels")
    if len(indices) != len(labels):
        raise StateError(f"{name} holds {len(indices)} indices but {len(labels)} labels")
    count = len(context.train_labels)
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= count):
        raise StateError(f"{name}.indices point outside the training split (0..{count - 1}): "
                         f"min {int(indices.min())}, max {int(indices.max())}")
    if len(set(indices.tolist())) != len(indices):
        raise StateError(f"{name}.indices hold an index more than once")
    actual = np.asarray(context.train_labels)[indices.numpy()]
    wrong = int((actual != labels.numpy()).sum())
    if wrong:
        raise StateError(f"{name}: {wrong} of {len(labels)} stored labels differ from the "
                         "dataset's labels at the stored indices")
    expected = expected_class_counts(size, context.tasks, context.task, context.train_labels)
    sequence = [c for c, n in expected.items() for _ in range(n)]
    if labels.tolist() != sequence:
        found = {int(c): int((labels == c).sum()) for c in dict.fromkeys(labels.tolist())}
        raise StateError(f"{name} holds {found or 'no images'} (class: images); after task "
                         f"{context.task} it holds {expected}")


class ReplayBuffer:
    """Indices (int64) and their labels, grouped by class in the order classes were seen."""

    def __init__(self, size: int):
        self.size = int(size)
        self.indices = torch.zeros(0, dtype=torch.int64)
        self.labels = torch.zeros(0, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def classes(self) -> list[int]:
        """Stored classes in the order they were added."""
        seen: list[int] = []
        for label in self.labels.tolist():
            if label not in seen:
                seen.append(label)
        return seen

    def add_task(self, indices: np.ndarray, labels: np.ndarray, generator: torch.Generator):
        """Rebalance for the classes in `labels` (a task's training indices and labels)."""
        old = self.classes()
        new = [int(c) for c in dict.fromkeys(labels.tolist()) if int(c) not in old]
        classes = old + sorted(new)
        base, extra = divmod(self.size, max(len(classes), 1))
        quota = {c: base + (1 if i < extra else 0) for i, c in enumerate(classes)}
        kept_indices, kept_labels = [], []
        for c in old:
            stored = self.indices[self.labels == c][: quota[c]]
            kept_indices.append(stored)
            kept_labels.append(torch.full((len(stored),), c, dtype=torch.int64))
        for c in sorted(new):
            candidates = torch.from_numpy(np.asarray(indices)[np.asarray(labels) == c]).long()
            order = torch.randperm(len(candidates), generator=generator)[: quota[c]]
            chosen = candidates[order]
            kept_indices.append(chosen)
            kept_labels.append(torch.full((len(chosen),), c, dtype=torch.int64))
        self.indices = torch.cat(kept_indices) if kept_indices else self.indices
        self.labels = torch.cat(kept_labels) if kept_labels else self.labels

    def tensors(self, train_images: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored images (float in [0, 1]) and labels on `device`."""
        chosen = self.indices.numpy()
        images = torch.from_numpy(np.ascontiguousarray(train_images[chosen]))
        images = images.to(device=device, dtype=torch.float32).div_(255.0)
        return images, self.labels.to(device)

    def state_dict(self) -> dict:
        """Size, indices and labels (tensors: the checkpoint stores them as they are)."""
        return {"size": self.size, "indices": self.indices.clone(), "labels": self.labels.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.size = int(state["size"])
        self.indices = state["indices"].clone()
        self.labels = state["labels"].clone()
