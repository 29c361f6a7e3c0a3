"""OGD's two kinds of stored directions: the notebook's mean-loss variant (one direction per
task), whose training must not change, and OGD-GTL (Farajtabar et al. 2020: per-image
gradients of the ground-truth logit)."""

import hashlib

import pytest
import torch

from clexp.checkpoint import load_checkpoint
from clexp.training import run_training_task

from helpers import run_settings, write_synthetic_dataset

# sha256 of a two-task OGD run (`notebook_run_digest`), recorded with the code before OGD-GTL
# existed (commit 0398029; torch 2.14.1, x86-64 CPU, one thread). Reductions depend on the
# thread count and the CPU's vector unit, so the digest is taken on one thread; if torch or the
# CPU changes it, record it again from that commit.
NOTEBOOK_DIGESTS = {
    "gradient": "bcc620c43e7f91f6dd589619fe7f5772562cf4e3d436af7738ffc9ac5f2b47f2",
    "step": "9efd13a207a162316487d37a397b34f1b451da3772deb116b7543013e6877b5f",
}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def notebook_run_digest(folder, projection: str, **options) -> str:
    """sha256 of the per-epoch training loss and accuracy, evaluation loss and accuracy, the
    stored basis and every model tensor of a two-task OGD run (BatchNorm MLP, synthetic data;
    SGD projecting the gradient, or AdamW projecting the step)."""
    data = write_synthetic_dataset(folder / "data.npz", per_class=60)
    sgd = projection == "gradient"
    run = run_settings(name="ogd", ogd=True, ogd_project=projection, norm="batch",
                       optimizer="sgd" if sgd else "adamw", lr=0.01,
                       weight_decay=0.0 if sgd else 0.01, epochs=2, batch_size=16,
                       tasks=[[1, 2], [3, 4]], **options)
    digest = hashlib.sha256()
    previous = None
    for task in (1, 2):
        path = folder / f"{projection}{task}.pt"
        log = run_training_task(run, 0, task, data, path, previous_checkpoint=previous,
                                device="cpu", instruments=False)["log"]
        for row in log:
            for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                digest.update(float(row[key]).hex().encode())
        state = load_checkpoint(path)
        digest.update(state["ogd_basis"].numpy().tobytes())
        for _, value in sorted(state["model"].items()):
            digest.update(value.numpy().tobytes())
        previous = path
    return digest.hexdigest()


@pytest.mark.parametrize("projection", ["gradient", "step"])
def test_the_notebook_variant_trains_exactly_as_before(tmp_path, one_thread, projection):
    assert notebook_run_digest(tmp_path, projection) == NOTEBOOK_DIGESTS[projection]
