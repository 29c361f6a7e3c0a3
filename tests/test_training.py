import numpy as np
import pytest
import torch

from clexp.checkpoint import load_checkpoint
from clexp.errors import CheckpointError, DivergenceError
from clexp.model import MLP
from clexp.training import (
    build_optimizer,
    run_training_task,
    task_learning_rate,
    to_tensors,
    train_task,
    training_loss,
)

from helpers import run_settings, synthetic_arrays, write_synthetic_dataset


def tensors(classes=(1, 2)):
    arrays = synthetic_arrays()
    mask = np.isin(arrays["train_labels"], classes)
    return to_tensors(arrays["train_images"][mask], arrays["train_labels"][mask], "cpu")


def test_one_sgd_step_moves_the_weights_by_lr_times_the_gradient():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(optimizer="sgd", lr=0.1, weight_decay=0.0, epochs=1, batch_size=1000)
    optimizer = build_optimizer(model, run, task=1)
    x, y = tensors()
    before = model.fc1.weight.detach().clone()
    logits, (h1, h2) = model(x)
    training_loss(logits, h1, h2, y, 0.0).backward()
    expected = before - 0.1 * model.fc1.weight.grad
    model.zero_grad()
    train_task(model, optimizer, x, y, run, torch.Generator().manual_seed(0))
    assert torch.allclose(model.fc1.weight, expected, atol=1e-6)


def test_training_a_task_learns_it():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(epochs=3, batch_size=16)
    x, y = tensors()
    result = train_task(model, build_optimizer(model, run, 1), x, y, run,
                        torch.Generator().manual_seed(0), eval_images=x, eval_labels=y)
    assert result["epochs_run"] == 3
    assert [row["epoch"] for row in result["log"]] == [1, 2, 3]
    assert result["log"][-1]["train_loss"] < result["log"][0]["train_loss"]
    assert result["log"][-1]["val_acc"] > 0.9


def test_l1_penalty_adds_lambda_times_mean_absolute_activations():
    logits = torch.tensor([[1.0, 0.0]])
    labels = torch.tensor([0])
    h1, h2 = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 2.0, 4.0]])
    plain = training_loss(logits, h1, h2, labels, 0.0)
    penalised = training_loss(logits, h1, h2, labels, 0.5)
    assert penalised.item() == pytest.approx(plain.item() + 0.5 * (2.0 + 2.0))


def test_learning_rate_is_reduced_after_the_first_task():
    run = run_settings(lr=1e-3, lr_factor_after_first_task=0.2)
    assert task_learning_rate(run, 1) == pytest.approx(1e-3)
    assert task_learning_rate(run, 2) == pytest.approx(2e-4)
    model = MLP()
    assert build_optimizer(model, run, 3).param_groups[0]["lr"] == pytest.approx(2e-4)


def test_optimizer_choice_and_weight_decay():
    model = MLP()
    adamw = build_optimizer(model, run_settings(weight_decay=0.1), 1)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.1
    sgd = build_optimizer(model, run_settings(optimizer="sgd", momentum=0.0), 1)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.0


def test_early_stopping_on_training_accuracy():
    x, y = tensors()
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(stop_at_train_acc=0.5, max_epochs=10, batch_size=16)
    result = train_task(model, build_optimizer(model, run, 1), x, y, run,
                        torch.Generator().manual_seed(0))
    assert result["stopped_early"] and result["epochs_run"] < 10
    assert result["log"][-1]["train_acc"] >= 0.5
    assert all(row["train_acc"] < 0.5 for row in result["log"][:-1])
    # A threshold of 1.0 on a task with shuffled labels is never reached: max_epochs run.
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    run = run_settings(stop_at_train_acc=1.0, max_epochs=3, batch_size=16)
    result = train_task(model, build_optimizer(model, run, 1), x, shuffled, run,
                        torch.Generator().manual_seed(0))
    assert result["epochs_run"] == 3 and not result["stopped_early"]


def test_divergence_names_the_run_and_writes_no_checkpoint(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="exploding", optimizer="sgd", lr=1e12, weight_decay=0.0)
    checkpoint = tmp_path / "task1" / "checkpoint.pt"
    named = r"experiment exploding seed 3 task 1 epoch \d+ batch \d+: the loss is"
    with pytest.raises(DivergenceError, match=named):
        run_training_task(run, 3, 1, data, checkpoint, device="cpu")
    assert not checkpoint.exists()


def test_tasks_chain_through_checkpoints(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="chain", epochs=1, lr_factor_after_first_task=0.5)
    first, second = tmp_path / "t1.pt", tmp_path / "t2.pt"
    run_training_task(run, 0, 1, data, first, device="cpu")
    log = run_training_task(run, 0, 2, data, second, previous_checkpoint=first,
                            device="cpu")["log"]
    state = load_checkpoint(second, "chain", 0, 2)
    assert state["task"] == 2 and log[0]["lr"] == pytest.approx(5e-4)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4)
    assert len(state["init_per_task_acc"]) == 5
    assert not torch.equal(state["model"]["fc1.weight"],
                           load_checkpoint(first)["model"]["fc1.weight"])
    with pytest.raises(CheckpointError, match="expected 2"):
        run_training_task(run, 0, 3, data, tmp_path / "t3.pt", previous_checkpoint=first,
                          device="cpu")


def test_same_seed_same_weights(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="repeat", epochs=1, dropout=0.2)
    for name in ("a.pt", "b.pt"):
        run_training_task(run, 7, 1, data, tmp_path / name, device="cpu")
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
