"""Checkpoints: everything task t+1 needs to resume exactly where task t ended.

A checkpoint is a plain dict saved with `torch.save` and loaded with `weights_only=True`, so a
checkpoint file can never execute code. Keys: `model`, `optimizer` (state dicts), `ogd_basis`
(k x P tensor), `torch_rng` and `shuffle_rng` (generator states), `cuda_rng` (a list of
per-GPU generator states; only in checkpoints written on CUDA), `run` (the resolved training
settings), `config_hash`, `experiment`, `seed`, `task` (1-based), `epochs_run`,
`stopped_early`, `init_per_task_acc` (the untrained network's accuracy per task, for FWT),
`clexp_version`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clexp import __version__
from clexp.errors import CheckpointError
from clexp.files import atomic_path


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Save a checkpoint dict atomically (temporary file, then rename)."""
    state = dict(state, clexp_version=__version__)
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(
    path: str | Path,
    experiment: str | None = None,
    seed: int | None = None,
    task: int | None = None,
    config_hash: str | None = None,
) -> dict:
    """Load a checkpoint safely and check it belongs to the expected run and task.

    Raises CheckpointError naming the file and how to rebuild it when the file is unreadable or
    records another experiment, seed, task or configuration.
    """
    path = Path(path)
    rebuild = (
        f"Delete {path} and rebuild it (snakemake --cores N --forcerun train_task "
        f"{path}), or rerun the workflow with --rerun-incomplete."
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: checkpoint cannot be read ({type(error).__name__}: {error}). "
            f"The file is truncated or corrupt. {rebuild}"
        ) from error
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a clexp checkpoint. {rebuild}")
    expected = {"experiment": experiment, "seed": seed, "task": task, "config_hash": config_hash}
    for key, value in expected.items():
        if value is not None and state.get(key) != value:
            raise CheckpointError(
                f"{path}: checkpoint belongs to another run ({key} is {state.get(key)!r}, "
                f"expected {value!r}). {rebuild}"
            )
    return state
