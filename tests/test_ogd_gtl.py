"""OGD's two kinds of stored directions: the notebook's mean-loss variant (one direction per
task), whose training must not change, and OGD-GTL (Farajtabar et al. 2020: per-image
gradients of the ground-truth logit)."""

import copy
import json
from unittest.mock import patch

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from clexp.checkpoint import load_checkpoint
from clexp.config import (
    check_config,
    config_hash,
    resolve_experiment,
    training_config,
    validate_config,
)
from clexp.errors import ConfigError, StateError
from clexp.methods.base import StateContext, TaskContext
from clexp.methods.ogd import alignment
from clexp.methods.registry import build_method
from clexp.model import MLP, build_model
from clexp.ogd import extend_basis, extend_basis_rows, flat_gradient, parameter_count
from clexp.training import run_training_task, to_tensors

import ogd_reference
from conftest import REPO
from helpers import run_settings, synthetic_arrays, write_synthetic_dataset

TASKS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]


@pytest.mark.parametrize("projection", ["gradient", "step"])
def test_the_notebook_variant_trains_as_before(tmp_path, projection):
    """The notebook's OGD, SGD projecting the gradient and AdamW projecting the step, trains a
    two-task run as the code before OGD-GTL did, within float rounding across CPUs
    (`ogd_reference`)."""
    reference = json.loads(ogd_reference.REFERENCE.read_text())[projection]
    assert ogd_reference.differences(ogd_reference.record_run(tmp_path, projection),
                                     reference) == []


@pytest.mark.parametrize("projection", ["gradient", "step"])
def test_the_reference_comparison_sees_a_run_that_does_not_project(tmp_path, projection):
    """The same run with the projection left out (the second task trains as plain SGD or
    AdamW) is reported as different, in the log and in the model; the first task, which has
    no basis to project onto, is not."""
    reference = json.loads(ogd_reference.REFERENCE.read_text())[projection]
    keep = lambda vector, basis, wide: None  # noqa: E731
    with patch("clexp.ogd.project_out_", keep), patch("clexp.methods.ogd.project_out_", keep):
        found = ogd_reference.differences(ogd_reference.record_run(tmp_path, projection),
                                          reference)
    assert any(line.startswith("task2 log ") for line in found)
    assert any(line.startswith("task2 model.fc1.weight ") for line in found)
    assert not any(line.startswith("task1") for line in found)


# ---- OGD-GTL's directions ----


def context_for(task, tasks=TASKS, arrays=None):
    """Task `task`'s training tensors of the synthetic data, as the training loop passes them."""
    arrays = arrays or synthetic_arrays()
    indices = np.flatnonzero(np.isin(arrays["train_labels"], tasks[task - 1]))
    images, labels = to_tensors(arrays["train_images"][indices],
                                arrays["train_labels"][indices], "cpu")
    return TaskContext(task=task, tasks=tasks, images=images, labels=labels, indices=indices,
                       train_images=arrays["train_images"], train_labels=arrays["train_labels"],
                       batch_size=16)


def gtl_settings(scenario="class", **overrides) -> dict:
    overrides.setdefault("tasks", [list(t) for t in TASKS])
    run = run_settings(name="gtl", ogd=True, ogd_directions="gtl", norm="batch", dropout=0.2,
                       **overrides)
    if scenario != "class":
        run.update(scenario=scenario, scenario_tasks=[list(t) for t in run["tasks"]])
    return run


def train_a_little(model, method, context, steps=4):
    """A few SGD steps through the method's hooks, then its consolidation."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    method.start_task(context)
    model.train()
    for step in range(steps):
        x, y = context.images[step * 16 :][:16], context.labels[step * 16 :][:16]
        optimizer.zero_grad()
        method.scenario.loss(model(x)[0], y).backward()
        method.before_step()
        optimizer.step()
        method.after_step()
    method.end_task(context)


def test_the_gtl_basis_is_orthonormal_and_projected_gradients_leave_its_span():
    torch.manual_seed(0)
    model = MLP(norm="batch", dropout=0.2)
    method = build_method(gtl_settings(ogd_memory=30), model, seed=0)
    for task in (1, 2):
        train_a_little(model, method, context_for(task))
    basis = method.basis
    assert basis.dtype == torch.float64 and basis.shape == (60, parameter_count(model))
    gram = basis @ basis.T
    assert (gram - torch.eye(len(basis), dtype=torch.float64)).abs().max() < 1e-10
    # a batch gradient of task 3, projected as OGD projects it before the step
    context = context_for(3)
    method.start_task(context)
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(context.images[:16])[0], context.labels[:16]).backward()
    original = flat_gradient(model).clone()
    method.before_step()
    projected = flat_gradient(model)
    assert alignment(original, basis) > 1e-3  # there was something to remove
    assert alignment(projected, basis) < 1e-6


def stored_image(method, context) -> int:
    """The index of the one image `end_task` draws with m = 1 (the same generator state)."""
    state = method.generator.get_state()
    index = int(torch.randperm(len(context.images), generator=method.generator)[0])
    method.generator.set_state(state)
    return index


@pytest.mark.parametrize("scenario", ["class", "task", "domain"])
def test_a_stored_direction_is_the_gradient_of_its_images_ground_truth_logit(scenario):
    torch.manual_seed(0)
    run = gtl_settings(scenario, ogd_memory=1)
    model = build_model(run)
    context = context_for(2)
    method = build_method(run, model, seed=3)
    model.train()
    with torch.no_grad():  # running statistics that are not BatchNorm's initial ones
        model(context.images)
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    index = stored_image(method, context)
    method.end_task(context)
    assert method.basis.shape == (1, parameter_count(model))
    assert model.training  # the mode is restored
    assert all(torch.equal(model.state_dict()[k], v) for k, v in buffers.items())
    # plain autograd on the one image, in evaluation mode; the target per scenario: the digit
    # in class- and task-IL (task 2 holds digits 3 and 4), its position within the task in
    # domain-IL (3 -> 0, 4 -> 1)
    label = int(context.labels[index])
    target = {"class": label, "task": label, "domain": label - 3}[scenario]
    model.eval()
    logit = model(context.images[index][None])[0][0, target]
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(logit,
                                                                     list(model.parameters()))])
    expected = expected.double() / expected.double().norm()
    assert (method.basis[0] - expected).abs().max() < 1e-6
    # not another output's gradient
    other = model(context.images[index][None])[0][0, 1 - target if scenario == "domain"
                                                  else (7 if label != 7 else 8)]
    wrong = torch.cat([g.reshape(-1) for g in torch.autograd.grad(other,
                                                                  list(model.parameters()))])
    assert (method.basis[0] - wrong.double() / wrong.double().norm()).abs().max() > 1e-3


def test_gtl_draws_its_images_from_its_own_generator_and_the_notebook_variant_draws_none():
    torch.manual_seed(0)
    model = MLP(norm="batch")
    context = context_for(1)
    small = build_method(gtl_settings(ogd_memory=5), model, seed=0)
    before = small.generator.get_state()
    global_state = torch.get_rng_state()
    small.end_task(context)
    assert small.basis.shape[0] == 5
    assert not torch.equal(small.generator.get_state(), before)
    assert torch.equal(torch.get_rng_state(), global_state)  # no other sequence moved
    # a memory larger than the task: every image once, and no draw
    large = build_method(gtl_settings(ogd_memory=10_000), model, seed=0)
    before = large.generator.get_state()
    large.end_task(context)
    assert 5 < large.basis.shape[0] <= len(context.images)
    assert torch.equal(large.generator.get_state(), before)
    notebook = build_method(run_settings(ogd=True, norm="batch"), model, seed=0)
    before = notebook.generator.get_state()
    notebook.end_task(context)
    assert notebook.basis.shape[0] == 1
    assert torch.equal(notebook.generator.get_state(), before)


def test_extend_basis_rows_equals_extend_basis_row_by_row():
    generator = torch.Generator().manual_seed(0)
    basis = extend_basis(torch.zeros(0, 300, dtype=torch.float64),
                         torch.randn(300, generator=generator, dtype=torch.float64))
    directions = torch.randn(12, 300, generator=generator, dtype=torch.float64)
    directions[5] = 2 * directions[1] - directions[3]  # inside the span: dropped
    one_by_one = basis
    for direction in directions:
        one_by_one = extend_basis(one_by_one, direction)
    together = extend_basis_rows(basis, directions)
    assert together.shape == (12, 300) and torch.equal(together, one_by_one)


def test_check_state_allows_ogd_memory_directions_per_task_for_gtl_only():
    torch.manual_seed(0)
    model = MLP()
    context = StateContext(task=2, tasks=TASKS, model=model, train_labels=np.zeros(1))
    gtl = build_method(gtl_settings(ogd_memory=3), model, seed=0)
    notebook = build_method(run_settings(ogd=True), model, seed=0)

    def state_with(rows):
        basis = torch.zeros(0, parameter_count(model), dtype=torch.float64)
        for _ in range(rows):
            basis = extend_basis(basis, torch.randn(parameter_count(model)))
        return dict(gtl.state_dict(), basis=basis)

    gtl.check_state(state_with(6), context)
    with pytest.raises(StateError, match=r"basis has 7 directions after 2 task\(s\); OGD \(gtl\) "
                                         r"stores at most 3 \(ogd_memory\) per task"):
        gtl.check_state(state_with(7), context)
    notebook.check_state(state_with(2), context)
    with pytest.raises(StateError, match=r"OGD \(mean_loss\) stores at most one per task"):
        notebook.check_state(state_with(3), context)


@pytest.mark.parametrize(("projection", "optimizer"), [("gradient", "sgd"), ("step", "adamw")])
def test_a_gtl_run_resumes_its_basis_and_records_what_it_costs(tmp_path, projection, optimizer):
    data = write_synthetic_dataset(tmp_path / "data.npz", per_class=40)
    run = gtl_settings(ogd_memory=8, ogd_project=projection, optimizer=optimizer, lr=0.01,
                       weight_decay=0.0, epochs=1, batch_size=16, tasks=[[1, 2], [3, 4], [5, 6]])
    paths = [tmp_path / f"task{t}.pt" for t in (1, 2, 3)]
    for task, path in enumerate(paths, start=1):
        run_training_task(run, 0, task, data, path, device="cpu", instruments=False,
                          previous_checkpoint=paths[task - 2] if task > 1 else None)
    states = [load_checkpoint(path) for path in paths]
    bases = [state["ogd_basis"] for state in states]
    size = bases[0].shape[1]
    assert [len(b) for b in bases] == [8, 16, 24]
    assert torch.equal(bases[1][:8], bases[0]) and torch.equal(bases[2][:16], bases[1])
    assert torch.equal(states[2]["method_state"]["basis"], bases[2])
    records = [state["method_record"] for state in states]
    assert [r["ogd_projection_rows"] for r in records] == [0, 8, 16]
    assert records[2]["ogd_basis_bytes"] == 16 * size * 8
    assert records[2]["ogd_projection_macs_per_step"] == 2 * 16 * size
    # the projection keeps the applied update orthogonal (SGD without momentum projecting the
    # gradient; AdamW projecting the step)
    assert records[2]["ogd_update_alignment_max"] < 1e-6


# ---- settings ----

STUDY = yaml.safe_load((REPO / "config.yaml").read_text())


def study_with(**experiments) -> dict:
    config = copy.deepcopy(STUDY)
    config["experiments"].update(experiments)
    validate_config(config)
    return config


def test_mean_loss_given_explicitly_keeps_the_settings_and_hash_of_the_notebook_variant():
    config = study_with(explicit={"base": "ogd_adam_bn", "ogd_directions": "mean_loss"})
    explicit = dict(resolve_experiment(config, "explicit"), name="ogd_adam_bn")
    assert explicit == resolve_experiment(config, "ogd_adam_bn")
    assert config_hash(training_config(explicit)) == config_hash(
        training_config(resolve_experiment(config, "ogd_adam_bn")))
    assert "ogd_directions" not in explicit and "ogd_memory" not in explicit


def test_gtl_settings_always_hold_their_memory():
    config = study_with(default_memory={"base": "ogd_sgd", "ogd_directions": "gtl"},
                        small={"base": "ogd_sgd", "ogd_directions": "gtl", "ogd_memory": 50})
    check_config(config)
    assert resolve_experiment(config, "default_memory")["ogd_memory"] == 200
    assert resolve_experiment(config, "small")["ogd_memory"] == 50
    # ogd_memory in defaults: the GTL runs use it, every other run's settings are unchanged
    config["defaults"]["ogd_memory"] = 20
    check_config(config)
    assert resolve_experiment(config, "default_memory")["ogd_memory"] == 20
    assert "ogd_memory" not in resolve_experiment(config, "ogd_sgd")
    assert "ogd_memory" not in resolve_experiment(config, "seq")


@pytest.mark.parametrize(("entry", "message"), [
    ({"base": "ogd_sgd", "ogd_memory": 50},
     r"experiments.bad.ogd_memory: 50 is the number of images per task whose gradients OGD-GTL "
     r"stores, and acts only with ogd_directions: gtl"),
    ({"base": "ogd_sgd", "ogd_directions": "mean_loss", "ogd_memory": 200},
     r"experiments.bad.ogd_memory: 200 is the number of images"),
    ({"method": "ewc", "ogd_memory": 50},
     r"experiments.bad.ogd_memory: an option of method ogd, but this experiment's method is ewc"),
    ({"base": "ogd_sgd", "ogd_directions": "gtl", "tune": {"ogd_directions": ["mean_loss",
                                                                              "gtl"]}},
     r"experiments.bad.tune.ogd_directions: cannot be tuned"),
])
def test_ogd_options_that_cannot_act_are_rejected(entry, message):
    config = study_with(bad=entry)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("ogd_directions", "all", r"experiments.bad.ogd_directions: 'all' is not allowed"),
    ("ogd_memory", 0, r"experiments.bad.ogd_memory: 0 is out of range"),
])
def test_the_schema_checks_the_ogd_options(key, value, message):
    config = copy.deepcopy(STUDY)
    config["experiments"]["bad"] = {"ogd": True, key: value}
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


# ---- where the GTL runs are compared and reported ----


def test_gtl_runs_get_their_own_comparison_and_stay_out_of_the_notebooks_sweeps():
    from clexp.comparisons import comparison_groups
    from clexp.study import eval_loss_groups

    groups = comparison_groups(["seq", "seq_bn", "ogd_adam", "ogd_gtl_adam", "task_seq",
                                "task_ogd_gtl"])
    assert groups["ogd_gtl"] == ["seq", "seq_bn", "ogd_adam", "ogd_gtl_adam"]
    assert groups["scenario_task"] == ["task_seq", "task_ogd_gtl"]
    assert "ogd_gtl" not in comparison_groups(["seq", "seq_bn", "ogd_adam"])
    config = study_with()
    settings = {name: resolve_experiment(config, name) for name in config["experiments"]}
    groups = eval_loss_groups(settings)
    assert groups["ogd_adam_bn"] == "OGD + BN"
    assert "ogd_gtl_adam_bn" not in groups and "ogd_gtl_sgd_bn" not in groups


def test_the_report_gives_what_the_gtl_basis_cost_per_task():
    import pandas as pd

    from clexp.report import ogd_basis_cost_html

    size = 105_214
    checkpoints = pd.DataFrame({
        "experiment": ["ogd_gtl_sgd"] * 3 + ["seq"], "seed": 0, "task": [1, 2, 3, 1],
        "ogd_projection_rows": [0, 200, 400, None],
        "ogd_basis_bytes": [0, 200 * size * 8, 400 * size * 8, None]})
    page = ogd_basis_cost_html(checkpoints, ["ogd_gtl_sgd"])
    assert "336.7" in page and "673.4" not in page  # 400 rows x 105,214 x 8 bytes, in MB
    assert f"{2 * 400 * size:,}" in page
    assert ogd_basis_cost_html(checkpoints, ["seq"]) == ""
