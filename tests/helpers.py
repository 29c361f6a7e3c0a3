"""Small synthetic datasets and settings for unit tests (no MNIST needed)."""

from __future__ import annotations

import numpy as np

from clexp.config import DEFAULT_OPTIONS, DEFAULT_TASKS
from clexp.data import save_dataset


def synthetic_arrays(per_class: int = 40, eval_per_class: int = 20, seed: int = 0) -> dict:
    """Ten classes of uint8 'images', each class lighting up its own block of pixels."""
    rng = np.random.default_rng(seed)

    def split(count):
        labels = np.repeat(np.arange(10), count)
        images = rng.integers(0, 60, size=(len(labels), 784)).astype(np.uint8)
        for cls in range(10):
            images[labels == cls, cls * 78 : cls * 78 + 60] = 255
        order = rng.permutation(len(labels))
        return images[order], labels[order].astype(np.int64)

    train_images, train_labels = split(per_class)
    eval_images, eval_labels = split(eval_per_class)
    return {
        "train_images": train_images, "train_labels": train_labels,
        "eval_images": eval_images, "eval_labels": eval_labels,
    }


def write_synthetic_dataset(path, **kwargs):
    save_dataset(synthetic_arrays(**kwargs), path)
    return path


def run_settings(name: str = "test", **overrides) -> dict:
    """Resolved settings of a sequential experiment on the default tasks."""
    run = dict(DEFAULT_OPTIONS, name=name, dataset="mnist", tasks=[list(t) for t in DEFAULT_TASKS])
    run.update(overrides)
    return run
