"""A recorded two-task run of the notebook's OGD variant, and the comparison with it.

`tests/test_ogd_gtl.py` checks that the notebook's mean-loss OGD still trains as it did before
OGD-GTL was added. Float training differs between CPUs (vector unit, BLAS kernels) and thread
counts in the last bits, and a run amplifies those bits, so the check compares a short,
well-conditioned run within a tolerance instead of bit for bit:

- `gradient`: BatchNorm MLP, SGD, the gradient projected (the notebook's SGD variant);
- `step`: plain MLP, AdamW, the optimizer's step projected (the notebook's Adam variant). Not
  BatchNorm here: a bias in front of BatchNorm has a zero gradient up to rounding, which
  AdamW's normalisation turns into full-size steps of rounding's sign, so that run is not
  reproducible across CPUs at any useful tolerance.

Measured spread of one run across ways of computing it (largest difference relative to the
largest entry of the same tensor): one against two threads, and AVX-512 against AVX2 kernels
(ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2), at most 3e-5. Real changes move the
run far more: leaving the projection out moves the second task's log by 3.5e-3 to 0.125 and
its weights by 1.4e-2 to 4.4e-2; a learning rate 1 % higher moves the run by 4e-2 to 0.8.
`RTOL` is set between the two.

The reference was recorded with the code before OGD-GTL existed (commit 0398029, torch 2.14.1,
one thread, x86-64 with AVX-512), whose run of these settings equals today's code bit for bit on
that machine. To record it again from another checkout's code:

    PYTHONPATH=<checkout>/src python tests/ogd_reference.py tests/configs/ogd_notebook_run.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "configs" / "ogd_notebook_run.json"

RTOL = 1e-3
# Entries kept of each tensor (evenly spaced over the flattened tensor, all of a smaller one).
SAMPLES = 64
LOG_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


def run_options(projection: str) -> dict:
    """Settings of the two-task run (besides `run_settings`' defaults)."""
    sgd = projection == "gradient"
    return dict(name="ogd", ogd=True, ogd_project=projection, norm="batch" if sgd else "none",
                optimizer="sgd" if sgd else "adamw", lr=0.01,
                weight_decay=0.0 if sgd else 0.01, epochs=2, batch_size=16,
                tasks=[[1, 2], [3, 4]])


def summarize(array: np.ndarray) -> dict:
    """Shape, largest magnitude, sum and sampled entries of a tensor, in float64."""
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    picks = np.unique(np.linspace(0, flat.size - 1, min(SAMPLES, flat.size)).round().astype(int))
    return {
        "shape": list(array.shape),
        "max_abs": float(np.abs(flat).max()) if flat.size else 0.0,
        "sum": float(flat.sum()),
        "index": picks.tolist(),
        "value": flat[picks].tolist(),
    }


def record_run(folder: Path, projection: str) -> dict:
    """The per-epoch log of both tasks, and a summary of each task's stored basis and model
    tensors. One thread, as the reference was taken."""
    from clexp.checkpoint import load_checkpoint
    from clexp.training import run_training_task

    from helpers import run_settings, write_synthetic_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = write_synthetic_dataset(folder / f"{projection}-data.npz", per_class=20)
        run = run_settings(**run_options(projection))
        record, previous = {}, None
        for task in (1, 2):
            path = folder / f"{projection}{task}.pt"
            log = run_training_task(run, 0, task, data, path, previous_checkpoint=previous,
                                    device="cpu", instruments=False)["log"]
            state = load_checkpoint(path)
            tensors = {"ogd_basis": state["ogd_basis"]}
            tensors.update({f"model.{name}": value for name, value in state["model"].items()})
            record[f"task{task}"] = {
                "log": {key: [float(row[key]) for row in log] for key in LOG_KEYS},
                "tensors": {name: summarize(value.numpy()) for name, value in
                            sorted(tensors.items())},
            }
            previous = path
    finally:
        torch.set_num_threads(threads)
    return record


def differences(run: dict, reference: dict) -> list[str]:
    """What differs between a recorded run and the reference beyond RTOL, one line each
    (empty when they agree). Log values are compared relative to max(1, |value|), tensor
    entries and sums relative to the reference tensor's largest magnitude."""
    found = []

    def close(name, got, want, scale):
        got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        if got.shape != want.shape:
            found.append(f"{name}: shape {got.shape}, reference {want.shape}")
            return
        error = np.abs(got - want) / scale
        if error.size and error.max() > RTOL:
            found.append(f"{name}: differs by {error.max():.2e} of its scale (tolerance {RTOL})")

    for task, want in reference.items():
        got = run.get(task)
        if got is None:
            found.append(f"{task}: missing")
            continue
        for key, values in want["log"].items():
            close(f"{task} log {key}", got["log"][key],
                  values, np.maximum(1.0, np.abs(values)) if values else 1.0)
        if sorted(got["tensors"]) != sorted(want["tensors"]):
            found.append(f"{task}: tensors {sorted(got['tensors'])}, "
                         f"reference {sorted(want['tensors'])}")
            continue
        for name, summary in want["tensors"].items():
            mine = got["tensors"][name]
            if mine["shape"] != summary["shape"] or mine["index"] != summary["index"]:
                found.append(f"{task} {name}: shape {mine['shape']}, "
                             f"reference {summary['shape']}")
                continue
            scale = max(summary["max_abs"], 1e-12)
            close(f"{task} {name} entries", mine["value"], summary["value"], scale)
            close(f"{task} {name} max_abs", mine["max_abs"], summary["max_abs"], scale)
            # A sum adds `size` rounding errors of the entries' scale.
            close(f"{task} {name} sum", mine["sum"], summary["sum"],
                  scale * max(1.0, np.sqrt(np.prod(summary["shape"]))))
    return found


def main(path: str) -> None:
    import tempfile

    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as folder:
        reference = {projection: record_run(Path(folder), projection)
                     for projection in ("gradient", "step")}
    Path(path).write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(REFERENCE))
