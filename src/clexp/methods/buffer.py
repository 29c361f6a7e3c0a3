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
