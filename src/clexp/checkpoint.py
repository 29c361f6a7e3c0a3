"""Checkpoints: everything task t+1 needs to resume exactly where task t ended.

A checkpoint is a plain dict saved with `torch.save` and loaded with `weights_only=True`, so a
checkpoint file can never execute code. Keys: `model`, `optimizer` (state dicts), `ogd_basis`
(k x P tensor; empty for methods other than OGD), `method` (its name), `method_state` (the
method's `state_dict`: basis, Fisher, importance, buffer indices, snapshot, its generator),
`method_record` (what the method measured over the task), `task_record` (what the loop
measured over the task for every seed: the previous task's accuracy while this one trains and
the relative weight change per layer; see `clexp.training.PreviousTaskWatch`), `torch_rng`
and `shuffle_rng` (generator states), `cuda_rng` (a list of per-GPU generator states; only
in checkpoints written on CUDA), `run` (the resolved training settings), `config_hash`,
`experiment`, `seed`, `task` (1-based), `epochs_run`, `stopped_early`, `init_per_task_acc`
(the untrained network's accuracy per task, for FWT), `clexp_version`.

`load_checkpoint` checks that the file is readable and belongs to the run; what it holds is
checked where it is used (`clexp.training.resume_run`: the model's and optimizer's tensors and
the method's `check_state`), and every such error ends with `rebuild_advice`.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from clexp import __version__
from clexp.errors import CheckpointError
from clexp.files import atomic_path


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Save a checkpoint dict atomically (temporary file, then rename)."""
    state = dict(state, clexp_version=__version__)
    # Serialised in memory, written by Python: a full disk then raises ENOSPC (reported by
    # atomic_path), where torch's own writer says only "basic_ios::clear: iostream error".
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(buffer.getbuffer())


def rebuild_advice(path: str | Path) -> str:
    """How to rebuild a bad checkpoint: the end of every CheckpointError's message."""
    # Deleting the file is what rebuilds it (and only what depends on it); --forcerun would
    # take a path after it as one more rule name and replan every training job.
    return (
        f"Delete it (rm {path}) and rerun the workflow (snakemake --cores N): Snakemake "
        "rebuilds the missing checkpoint and everything that depends on it."
    )


def damaged_checkpoint(path: str | Path, what: str) -> CheckpointError:
    """The error for a checkpoint that loads but whose content is wrong (`what`)."""
    return CheckpointError(f"{path}: the checkpoint is damaged ({what}); training from it "
                           f"would be wrong. {rebuild_advice(path)}")


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
    rebuild = rebuild_advice(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        text = str(error)
        if "weights_only" in text or "Weights only" in text:
            # torch's text suggests weights_only=False: never do that with a file that holds
            # code; rebuilding it is the fix.
            reason = "it holds objects other than tensors and plain data, which are never loaded"
        else:
            reason = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:200]
        raise CheckpointError(
            f"{path}: checkpoint cannot be read ({reason}). The file is truncated, corrupt or "
            f"not written by clexp. {rebuild}"
        ) from None
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
