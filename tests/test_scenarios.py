"""The three scenarios as trained: which outputs a sample is scored on, its target, and how the
methods follow (van de Ven & Tolias 2019)."""

import numpy as np
import pytest
import torch
import yaml

from clexp.config import check_config, config_hash, resolve_experiment, training_config
from clexp.data import load_dataset
from clexp.errors import ConfigError
from clexp.evaluation import evaluate_checkpoint
from clexp.methods.base import TaskContext
from clexp.methods.ewc import diagonal_fisher
from clexp.methods.registry import build_method
from clexp.model import MLP, build_model
from clexp.scenario import Scenario, correct_np, position_table, targets_np
from clexp.training import run_training_task, to_tensors

from helpers import run_settings, synthetic_arrays, write_synthetic_dataset

TASKS = [[1, 2], [3, 4], [5, 6]]


def scenario_run(scenario: str, **overrides) -> dict:
    run = run_settings(tasks=[list(t) for t in TASKS], epochs=1, batch_size=16, **overrides)
    if scenario != "class":
        run.update(scenario=scenario, scenario_tasks=[list(t) for t in TASKS])
    return run


def logit_gradient(scenario: Scenario, labels, outputs: int = 10) -> torch.Tensor:
    logits = torch.randn(len(labels), outputs, requires_grad=True)
    scenario.loss(logits, torch.tensor(labels)).backward()
    return logits.grad


def test_a_task_incremental_step_gives_zero_gradient_to_other_tasks_logits():
    gradient = logit_gradient(Scenario(scenario_run("task")), [3, 4, 4, 3])
    assert (gradient[:, [3, 4]].abs() > 0).all()
    others = [c for c in range(10) if c not in (3, 4)]
    assert torch.equal(gradient[:, others], torch.zeros(4, len(others)))
    # ... and the network's output layer: only the rows of the task's own classes move
    torch.manual_seed(0)
    model = MLP()
    x = torch.rand(4, 784)
    Scenario(scenario_run("task")).loss(model(x)[0], torch.tensor([3, 4, 4, 3])).backward()
    rows = model.fc3.weight.grad.abs().sum(1)
    assert (rows[[3, 4]] > 0).all() and (rows[others] == 0).all()
    # class-IL: every output gets gradient
    assert (logit_gradient(Scenario(scenario_run("class")), [3, 4]).abs() > 0).all()


def test_task_incremental_prediction_is_the_argmax_over_the_tasks_own_outputs():
    run = scenario_run("task")
    logits = np.zeros((2, 10))
    logits[:, 9] = 10.0          # the strongest output belongs to no task of these images
    logits[0, 2], logits[1, 3] = 1.0, 1.0
    assert correct_np(run, logits, np.array([2, 4])).tolist() == [True, False]
    assert correct_np(scenario_run("class"), logits, np.array([2, 4])).tolist() == [False] * 2
    scenario = Scenario(run)
    assert scenario.correct(torch.tensor(logits), torch.tensor([2, 4])).tolist() == [True, False]


def test_domain_incremental_labels_and_outputs_are_remapped():
    run = scenario_run("domain")
    assert position_table(TASKS)[[1, 2, 3, 4, 5, 6]].tolist() == [0, 1, 0, 1, 0, 1]
    assert targets_np(run, np.array([1, 4, 5, 2])).tolist() == [0, 1, 0, 1]
    assert Scenario(run).targets(torch.tensor([6, 3])).tolist() == [1, 0]
    model = build_model(run)
    assert model(torch.rand(3, 784))[0].shape == (3, 2)
    assert build_model(scenario_run("task"))(torch.rand(3, 784))[0].shape == (3, 10)
    # the loss is the cross-entropy of the two outputs against the position
    logits = torch.randn(4, 2)
    labels = torch.tensor([1, 4, 5, 2])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(Scenario(run).loss(logits, labels), expected)


def test_the_config_resolves_scenarios_and_keeps_class_incremental_hashes():
    config = yaml.safe_load(open("config.yaml"))
    seq = resolve_experiment(config, "seq")
    assert "scenario" not in seq and "scenario_tasks" not in seq
    config["experiments"]["seq_class"] = {"scenario": "class"}
    assert config_hash(training_config(resolve_experiment(config, "seq_class"))) == \
        config_hash(training_config(dict(seq, name="seq_class")))
    config["experiments"]["joint_task"] = {"joint": True, "scenario": "task"}
    joint = resolve_experiment(config, "joint_task")
    assert joint["tasks"] == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 0]]
    assert joint["scenario_tasks"] == config["tasks"]  # the joint bound keeps each task's outputs
    config["experiments"]["bad"] = {"scenario": "task", "tasks": [[1, 2], [3]]}
    with pytest.raises(ConfigError, match=r"experiments\.bad\.scenario: task \[3\] has one"):
        check_config(config)


def lwf_with_snapshot(run, seed=0):
    torch.manual_seed(seed)
    model = build_model(run)
    method = build_method(dict(run, method="lwf"), model, seed)
    method.end_task(None)  # snapshot the current model as the "previous" one
    with torch.no_grad():   # then move the model away from it
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    context = TaskContext(task=3, tasks=TASKS, images=None, labels=None, indices=None,
                          train_images=None, train_labels=None, batch_size=16)
    method.start_task(context)
    return model, method


def test_lwf_in_task_incremental_distils_only_the_old_tasks_outputs():
    run = scenario_run("task")
    model, method = lwf_with_snapshot(run)
    assert method.groups == [[1, 2], [3, 4]]
    x = torch.rand(8, 784)
    logits = model(x)[0]
    logits.retain_grad()
    method.penalty(model, x, torch.full((8,), 5), logits).backward()
    active = logits.grad.abs().sum(0)
    assert (active[[1, 2, 3, 4]] > 0).all()
    assert (active[[0, 5, 6, 7, 8, 9]] == 0).all()  # the current task's and unused outputs
    # each old task is its own softmax: the per-task average of two distillations
    from clexp.methods.lwf import distillation
    with torch.no_grad():
        previous = method.previous(x)[0]
        expected = method.alpha * (distillation(logits[:, [1, 2]], previous[:, [1, 2]], 2.0)
                                   + distillation(logits[:, [3, 4]], previous[:, [3, 4]],
                                                  2.0)) / 2
        assert torch.allclose(method.penalty(model, x, None, logits), expected)
    # class-IL: the old classes in one softmax; domain-IL: both outputs
    assert lwf_with_snapshot(scenario_run("class"))[1].groups == [[1, 2, 3, 4]]
    assert lwf_with_snapshot(scenario_run("domain"))[1].groups == [[0, 1]]


@pytest.mark.parametrize("method_name", ["er", "agem"])
def test_a_replayed_image_is_scored_on_its_own_tasks_outputs(method_name):
    """ER's joined batch and A-GEM's reference batch: the gradient on the logits of a replayed
    image of task 1 lies on task 1's outputs only, and the domain-IL target is its position."""
    arrays = synthetic_arrays(per_class=20)
    run = scenario_run("task", method=method_name, buffer_size=8, agem_sample_size=4)
    torch.manual_seed(0)
    model = build_model(run)
    method = build_method(run, model, 0)
    mask = np.isin(arrays["train_labels"], TASKS[0])
    images, labels = to_tensors(arrays["train_images"][mask], arrays["train_labels"][mask],
                                "cpu")
    context = TaskContext(task=1, tasks=TASKS, images=images, labels=labels,
                          indices=np.flatnonzero(mask), train_images=arrays["train_images"],
                          train_labels=arrays["train_labels"], batch_size=16)
    method.end_task(context)
    method.start_task(TaskContext(task=2, tasks=TASKS, images=None, labels=None, indices=None,
                                  train_images=arrays["train_images"],
                                  train_labels=arrays["train_labels"], batch_size=16))
    replay_x, replay_y = method.sample(4)
    assert set(replay_y.tolist()) <= {1, 2}
    logits = model(replay_x)[0]
    logits.retain_grad()
    method.scenario.loss(logits, replay_y).backward()
    rows = logits.grad.abs().sum(0)
    assert (rows[[1, 2]] > 0).all() and (rows[[0, 3, 4, 5, 6, 7, 8, 9]] == 0).all()
    if method_name == "er":
        x, y = method.batch(torch.rand(4, 784), torch.tensor([3, 4, 3, 4]))
        assert len(y) == 8 and set(y[4:].tolist()) <= {1, 2}  # the replayed labels kept
        domain = build_method(scenario_run("domain", method="er", buffer_size=8),
                              build_model(scenario_run("domain")), 0)
        assert domain.scenario.targets(replay_y).tolist() == \
            position_table(TASKS)[replay_y.numpy()].tolist()


def test_the_fisher_of_a_task_incremental_run_is_over_the_tasks_outputs():
    """Brute force: per image, sum over the task's outputs c of p(c|x) (d log p(c|x))^2 with
    the softmax over those outputs only."""
    torch.manual_seed(0)
    model = MLP()
    x = torch.rand(5, 784)
    fisher = diagonal_fisher(model, x, chunk=2, active=[3, 4])
    expected = torch.zeros_like(fisher)
    model.eval()
    for image in x:
        log_probs = torch.log_softmax(model(image[None])[0][0, [3, 4]], dim=0)
        for c in range(2):
            grads = torch.autograd.grad(log_probs[c], list(model.parameters()),
                                        retain_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            expected += log_probs[c].exp().detach() * flat.square()
    assert torch.allclose(fisher, expected / len(x), rtol=1e-4, atol=1e-9)
    assert not torch.allclose(fisher, diagonal_fisher(model, x, chunk=2), rtol=1e-2)
    method = build_method(scenario_run("task", method="ewc"), model, 0)
    context = TaskContext(task=2, tasks=TASKS, images=x, labels=None, indices=None,
                          train_images=None, train_labels=None, batch_size=16)
    assert method.fisher_outputs(context) == [3, 4]
    assert build_method(scenario_run("domain", method="ewc"), build_model(
        scenario_run("domain")), 0).fisher_outputs(context) is None


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "data.npz", per_class=60)


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_a_run_is_trained_and_evaluated_in_its_scenario(scenario, data_path, tmp_path):
    """Task- and domain-IL runs: the evaluation's numbers are the scenario's (recomputed here
    from the checkpoint's outputs), the log's validation accuracy too, and the masked
    columns equal the scenario's own."""
    run = scenario_run(scenario, norm="batch")
    previous = None
    for task in (1, 2):
        result = run_training_task(run, 0, task, data_path, tmp_path / f"t{task}.pt",
                                   previous, device="cpu")
        previous = tmp_path / f"t{task}.pt"
    probe = {"train_images_per_class": 20, "max_iter": 100}
    metrics, _ = evaluate_checkpoint(run, 0, 2, previous, data_path, probe, device="cpu")
    assert metrics["scenario"] == scenario
    data = load_dataset(data_path)
    state = torch.load(previous, weights_only=True)
    model = build_model(run)
    model.load_state_dict(state["model"])
    model.eval()
    with torch.no_grad():
        logits = model(to_tensors(data["eval_images"], data["eval_labels"], "cpu")[0])[0]
    labels = data["eval_labels"]
    correct = correct_np(run, logits.numpy(), labels)
    for index, task in enumerate(TASKS):
        assert metrics["per_task_acc"][index] == pytest.approx(
            correct[np.isin(labels, task)].mean())
    assert metrics["per_task_acc_til"] == metrics["per_task_acc"]
    seen = np.isin(labels, TASKS[0] + TASKS[1])
    assert metrics["val_acc"] == pytest.approx(correct[seen].mean())
    assert result["log"][-1]["val_acc"] == pytest.approx(metrics["val_acc"], abs=1e-6)
    assert metrics["current_task_mass"] is None
    # two tasks of two easy synthetic classes: learnt in the scenario
    assert metrics["per_task_acc"][1] > 0.9


def test_the_tiny_study_trains_each_scenario_and_reports_the_table(tiny_run):
    """End to end: task_seq and domain_lwf are trained in their scenarios, and the report's
    scenario table shows their ACC from the summary."""
    import json

    import pandas as pd

    metrics = json.loads((tiny_run / "results/domain_lwf/seed0/task5/metrics.json").read_text())
    assert metrics["scenario"] == "domain" and metrics["method"] == "lwf"
    state = torch.load(tiny_run / "results/domain_lwf/seed0/task5/checkpoint.pt",
                       weights_only=True)
    assert state["model"]["fc3.weight"].shape == (2, 84)
    task = json.loads((tiny_run / "results/task_seq/seed0/task5/metrics.json").read_text())
    assert task["scenario"] == "task" and task["per_task_acc_til"] == task["per_task_acc"]
    summary = pd.read_csv(tiny_run / "results/summary.csv").set_index("experiment")
    table = pd.read_csv(tiny_run / "results/study/scenarios.csv")
    rows = {r["method"]: r for r in table.to_dict("records")}
    assert rows["None (lower bound)"]["task_experiment"] == "task_seq"
    assert rows["None (lower bound)"]["task_mean"] == pytest.approx(
        summary.loc["task_seq", "avg_acc"])
    assert rows["None (lower bound)"]["class_mean"] == pytest.approx(summary.loc["seq",
                                                                                 "avg_acc"])
    assert rows["LwF"]["domain_mean"] == pytest.approx(summary.loc["domain_lwf", "avg_acc"])
    page = (tiny_run / "results/report.html").read_text()
    section = page[page.index("The reference methods in the three scenarios"):]
    section = section[: section.index("</table>")]
    assert f"{summary.loc['task_seq', 'avg_acc']:.3f}" in section
    assert f"{summary.loc['domain_lwf', 'avg_acc']:.3f}" in section
    # task-IL keeps far more of each task than class-IL's plain run (the scenarios differ)
    assert summary.loc["task_seq", "avg_acc"] > summary.loc["seq", "avg_acc"] + 0.3
