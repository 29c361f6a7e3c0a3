"""The methods inside the training loop: resume equals an uninterrupted run, for every method
in every scenario; OGD's gradient maps and optimizer options."""

import numpy as np
import pytest
import torch

from clexp.checkpoint import load_checkpoint
from clexp.data import load_dataset
from clexp.methods.registry import build_method, method_names
from clexp.model import MLP
from clexp.training import (
    Instruments,
    build_optimizer,
    new_run,
    resolve_device,
    run_training_task,
    to_tensors,
    train_run_task,
    train_task,
)

from helpers import run_settings, synthetic_arrays, write_synthetic_dataset

SMALL = {"ewc_fisher_images": 40, "buffer_size": 20, "agem_sample_size": 8}


def settings_for(method: str, **overrides) -> dict:
    from clexp.methods.registry import METHODS

    options = {k: v for k, v in SMALL.items() if k in METHODS[method].options}
    return run_settings(name=method, method=method, ogd=method == "ogd", epochs=1,
                        batch_size=16, norm="batch", dropout=0.2,
                        tasks=[[1, 2], [3, 4], [5, 6]], **options, **overrides)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "data.npz", per_class=60)


def tensors_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def scenario_settings(method: str, scenario: str) -> dict:
    run = settings_for(method)
    if scenario != "class":
        run.update(scenario=scenario, scenario_tasks=[list(t) for t in run["tasks"]])
    return run


@pytest.mark.parametrize("scenario", ["class", "task", "domain"])
@pytest.mark.parametrize("method", method_names())
def test_task_two_resumed_from_a_checkpoint_equals_an_uninterrupted_run(method, scenario,
                                                                        data_path, tmp_path):
    run = scenario_settings(method, scenario)
    run_training_task(run, 0, 1, data_path, tmp_path / "t1.pt", device="cpu")
    run_training_task(run, 0, 2, data_path, tmp_path / "t2.pt",
                      previous_checkpoint=tmp_path / "t1.pt", device="cpu")
    resumed = load_checkpoint(tmp_path / "t2.pt")

    data = load_dataset(data_path)
    target = resolve_device("cpu")
    state = new_run(run, 0, data, target)
    train_run_task(state, run, 1, data, target)
    train_run_task(state, run, 2, data, target)
    model = {k: v.cpu() for k, v in state.model.state_dict().items()}
    assert tensors_equal(resumed["model"], model)
    assert tensors_equal(resumed["method_state"], state.method.state_dict())
    assert tensors_equal(resumed["optimizer"]["state"], state.optimizer.state_dict()["state"])
    assert resumed["method"] == method
    # the method did something in task 2 (its state is not the fresh one)
    outputs = 2 if scenario == "domain" else 10
    assert resumed["model"]["fc3.weight"].shape[0] == outputs
    fresh = build_method(run, MLP(num_classes=outputs, norm="batch", dropout=0.2),
                         0).state_dict()
    if method != "naive":
        assert not tensors_equal(resumed["method_state"], fresh)


@pytest.mark.parametrize("method", ["lwf", "si"])
def test_the_papers_protocol_resumes_exactly_and_steps_its_budget(method, data_path, tmp_path):
    """Other widths, Adam, an iteration budget (10 steps of batch 16 on a task's 120 images:
    a pass of 8 and a partial one) and LwF's paper weighting: a resumed task 2 equals an
    uninterrupted run, and Adam's step count is the budget per task."""
    extra = {"lwf_weighting": "paper"} if method == "lwf" else {}
    run = settings_for(method, hidden=[40, 30], optimizer="adam", weight_decay=0.0,
                       iterations=10, **extra)
    run_training_task(run, 0, 1, data_path, tmp_path / "t1.pt", device="cpu")
    run_training_task(run, 0, 2, data_path, tmp_path / "t2.pt",
                      previous_checkpoint=tmp_path / "t1.pt", device="cpu")
    resumed = load_checkpoint(tmp_path / "t2.pt")
    data = load_dataset(data_path)
    state = new_run(run, 0, data, resolve_device("cpu"))
    for task in (1, 2):
        train_run_task(state, run, task, data, resolve_device("cpu"))
    assert tensors_equal(resumed["model"], state.model.state_dict())
    assert resumed["model"]["fc2.weight"].shape == (30, 40)
    assert float(resumed["optimizer"]["state"][0]["step"]) == 20  # 10 steps per task
    assert resumed["epochs_run"] == 2  # 120 images at batch 16: 8 steps a pass


def test_reset_optimizer_starts_every_task_with_a_fresh_state(data_path, tmp_path):
    steps = {}
    for reset in (False, True):
        run = settings_for("ogd", reset_optimizer=reset)
        run_training_task(run, 0, 1, data_path, tmp_path / f"{reset}1.pt", device="cpu")
        run_training_task(run, 0, 2, data_path, tmp_path / f"{reset}2.pt",
                          previous_checkpoint=tmp_path / f"{reset}1.pt", device="cpu")
        first = load_checkpoint(tmp_path / f"{reset}1.pt")["optimizer"]["state"][0]["step"]
        second = load_checkpoint(tmp_path / f"{reset}2.pt")["optimizer"]["state"][0]["step"]
        steps[reset] = (float(first), float(second))
    task_steps = steps[False][0]  # both tasks have the same number of batches
    assert steps[False][1] == 2 * task_steps
    assert steps[True][1] == task_steps


def test_ogd_alignment_is_recorded_in_the_checkpoint_per_task(data_path, tmp_path):
    run = settings_for("ogd", ogd_project="step", optimizer="adamw")
    run_training_task(run, 0, 1, data_path, tmp_path / "t1.pt", device="cpu")
    run_training_task(run, 0, 2, data_path, tmp_path / "t2.pt",
                      previous_checkpoint=tmp_path / "t1.pt", device="cpu")
    first = load_checkpoint(tmp_path / "t1.pt")["method_record"]
    second = load_checkpoint(tmp_path / "t2.pt")["method_record"]
    assert first["ogd_update_alignment_mean"] is None  # empty basis during task 1
    assert second["ogd_update_alignment_steps"] > 0
    assert second["ogd_update_alignment_max"] < 1e-6


def test_gradient_maps_accumulate_the_gradient_after_ogds_projection():
    """A basis of unit vectors on some fc1 weights: the projected gradient is exactly zero
    there, so the accumulated map is too; without the projection it is not."""
    arrays = synthetic_arrays()
    mask = np.isin(arrays["train_labels"], [1, 2])
    x, y = to_tensors(arrays["train_images"][mask], arrays["train_labels"][mask], "cpu")
    chosen = torch.arange(40) * 784 + 100  # units 0-39's weight on a pixel lit by class 1
    sums = {}
    for name in ("naive", "ogd"):
        torch.manual_seed(0)
        model = MLP()
        run = run_settings(method=name, ogd=name == "ogd", epochs=1, batch_size=16)
        method = build_method(run, model, 0)
        if name == "ogd":
            count = sum(p.numel() for p in model.parameters())
            method.basis = torch.zeros(len(chosen), count, dtype=torch.float64)
            method.basis[torch.arange(len(chosen)), chosen] = 1.0
        instruments = Instruments(model)
        train_task(model, build_optimizer(model, run, 1), x, y, run,
                   torch.Generator().manual_seed(0), method=method, instruments=instruments)
        sums[name] = instruments.gradient_sums["fc1"].reshape(-1)[chosen]
    assert (sums["ogd"] == 0).all()
    assert (sums["naive"] != 0).any()
