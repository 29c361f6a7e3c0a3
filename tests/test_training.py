import numpy as np
import pytest
import torch

from clexp.checkpoint import load_checkpoint
from clexp.data import fixed_sample, load_dataset
from clexp.errors import CheckpointError, DivergenceError
from clexp.model import MLP
from clexp.training import (
    LOG_COLUMNS,
    build_optimizer,
    curve_evaluation_sets,
    random_state,
    restore_random_state,
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


def test_train_log_splits_cross_entropy_and_penalty():
    x, y = tensors()
    torch.manual_seed(0)
    model = MLP()
    logits, (h1, h2) = model(x)
    cross_entropy = torch.nn.functional.cross_entropy(logits, y).item()
    penalty = 0.5 * (h1.abs().mean() + h2.abs().mean()).item()
    # one batch of the whole task: the epoch's means are those of the untrained network
    run = run_settings(l1_activation=0.5, epochs=1, batch_size=len(y))
    row = train_task(model, build_optimizer(model, run, 1), x, y, run,
                     torch.Generator().manual_seed(0))["log"][0]
    assert {"train_ce", "train_penalty", "train_loss"} <= set(LOG_COLUMNS)
    assert row["train_ce"] == pytest.approx(cross_entropy, rel=1e-6)
    assert row["train_penalty"] == pytest.approx(penalty, rel=1e-6)
    assert row["train_loss"] == pytest.approx(row["train_ce"] + row["train_penalty"], rel=1e-6)
    plain = run_settings(epochs=1, batch_size=16)
    for row in train_task(model, build_optimizer(model, plain, 1), x, y, plain,
                          torch.Generator().manual_seed(0))["log"]:
        assert row["train_penalty"] == 0.0 and row["train_ce"] == row["train_loss"]


def test_fixed_sample_is_class_balanced_seeded_and_the_same_for_a_class_in_any_sample():
    labels = np.repeat(np.arange(10), 50)
    sample = fixed_sample(labels, [1, 2], 30, seed=3)
    assert np.bincount(labels[sample], minlength=10)[[1, 2]].tolist() == [15, 15]
    assert np.array_equal(sample, fixed_sample(labels, [1, 2], 30, seed=3))
    assert not np.array_equal(sample, fixed_sample(labels, [1, 2], 30, seed=4))
    # not the first items in file order
    assert not np.array_equal(sample, np.flatnonzero(np.isin(labels, [1, 2]))[:30])
    # a class's items do not depend on which other classes share the sample
    wide = fixed_sample(labels, range(10), 150, seed=3)
    assert np.array_equal(wide[labels[wide] == 2], sample[labels[sample] == 2])
    uneven = fixed_sample(labels, [0, 1, 2], 8, seed=0)
    assert np.bincount(labels[uneven], minlength=3).tolist()[:3] == [3, 3, 2]


def test_forgetting_curve_images_are_balanced_seeded_and_the_same_in_every_task(tmp_path):
    data = load_dataset(write_synthetic_dataset(tmp_path / "data.npz"))
    tasks = [[1, 2], [3, 4], [5, 6]]
    while_task1 = curve_evaluation_sets(data, tasks, 1, 10, seed=5, device="cpu")
    while_task3 = curve_evaluation_sets(data, tasks, 3, 10, seed=5, device="cpu")
    other_seed = curve_evaluation_sets(data, tasks, 3, 10, seed=6, device="cpu")
    assert len(while_task1) == 1 and len(while_task3) == 3
    assert torch.equal(while_task1[0][0], while_task3[0][0])
    assert not torch.equal(while_task3[0][0], other_seed[0][0])
    for (_, labels), classes in zip(while_task3, tasks, strict=True):
        assert torch.bincount(labels, minlength=10)[classes].tolist() == [5, 5]


class FakeCuda:
    """Stands in for torch.cuda on a machine without a GPU: one "device" whose generator is a
    CPU generator, from which the "GPU" dropout masks are drawn."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(67280421310721)  # CUDA's default seed

    def get_rng_state_all(self):
        return [self.generator.get_state()]

    def set_rng_state_all(self, states):
        self.generator.set_state(states[0])

    def manual_seed_all(self, seed):
        self.generator.manual_seed(seed)

    def device_count(self):
        return 1

    def dropout_masks(self, count=3):
        return [torch.bernoulli(torch.full((64, 120), 0.8), generator=self.generator)
                for _ in range(count)]


def test_resumed_gpu_dropout_masks_equal_an_uninterrupted_runs(monkeypatch):
    fake = FakeCuda()
    for name in ("get_rng_state_all", "set_rng_state_all", "manual_seed_all", "device_count"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    cuda = torch.device("cuda")
    torch.manual_seed(11)
    fake.manual_seed_all(11)  # what torch.manual_seed does for the GPUs
    fake.dropout_masks()  # task 1
    saved = random_state(cuda)  # into the checkpoint
    uninterrupted = fake.dropout_masks()  # task 2 in the same process
    assert "cuda_rng" in saved and "cuda_rng" not in random_state(torch.device("cpu"))
    fake.manual_seed_all(67280421310721)  # a new process: CUDA's default state
    restore_random_state(saved, cuda, seed=11, task=2)
    resumed = fake.dropout_masks()
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed, strict=True))
    # a checkpoint written on the CPU, resumed on CUDA: seeded by (seed, task), not the default
    fake.manual_seed_all(67280421310721)
    default = fake.dropout_masks(1)[0]
    fake.manual_seed_all(67280421310721)
    restore_random_state({"torch_rng": torch.get_rng_state()}, cuda, seed=11, task=2)
    seeded = fake.dropout_masks(1)[0]
    restore_random_state({"torch_rng": torch.get_rng_state()}, cuda, seed=12, task=2)
    assert not torch.equal(seeded, default) and not torch.equal(seeded, fake.dropout_masks(1)[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resumed_task_on_cuda_draws_the_same_dropout_masks(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="gpu", epochs=1, dropout=0.5)
    first = tmp_path / "t1.pt"
    run_training_task(run, 0, 1, data, first, device="cuda")
    assert "cuda_rng" in load_checkpoint(first)
    # uninterrupted: task 2 right after task 1, the GPU generator where task 1 left it
    run_training_task(run, 0, 2, data, tmp_path / "a.pt", previous_checkpoint=first,
                      device="cuda")
    torch.cuda.manual_seed_all(12345)  # as a new process would find it: elsewhere
    run_training_task(run, 0, 2, data, tmp_path / "b.pt", previous_checkpoint=first,
                      device="cuda")
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


class CountingSGD(torch.optim.SGD):
    """SGD that counts its steps."""

    steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


@pytest.mark.parametrize("iterations, passes", [(1, 1), (7, 3), (9, 3), (10, 4)])
def test_iterations_train_exactly_that_many_steps(iterations, passes):
    torch.manual_seed(0)
    model = MLP()
    x, y = tensors()
    x, y = x[:40], y[:40]  # 40 images at batch 16: passes of 3 steps (16, 16, 8)
    run = run_settings(iterations=iterations, batch_size=16, epochs=1)
    optimizer = CountingSGD(model.parameters(), lr=0.01)
    result = train_task(model, optimizer, x, y, run, torch.Generator().manual_seed(0),
                        eval_images=x, eval_labels=y)
    assert optimizer.steps == iterations
    # the log counts the steps of each pass: 3 per full pass, the rest in the last one
    steps = [row["steps"] for row in result["log"]]
    assert sum(steps) == iterations and steps[:-1] == [3] * (passes - 1)
    # every pass is a row of the log, the last (partial) one too; `epochs` plays no part
    assert result["epochs_run"] == passes
    assert [row["epoch"] for row in result["log"]] == list(range(1, passes + 1))
    assert not result["stopped_early"]


def test_iterations_draw_the_batches_an_epoch_loop_draws():
    """Six steps at three batches per pass are two epochs: the same batches, the same
    weights, the same shuffling generator state after them."""
    x, y = tensors()
    x, y = x[:40], y[:40]
    weights, states = [], []
    for settings in ({"epochs": 2}, {"iterations": 6}):
        torch.manual_seed(0)
        model = MLP()
        run = run_settings(batch_size=16, **settings)
        generator = torch.Generator().manual_seed(0)
        train_task(model, build_optimizer(model, run, 1), x, y, run, generator)
        weights.append(model.fc1.weight.detach().clone())
        states.append(generator.get_state())
    assert torch.equal(weights[0], weights[1])
    assert torch.equal(states[0], states[1])


def test_optimizer_adam_builds_torch_adam_without_weight_decay():
    model = MLP()
    optimizer = build_optimizer(model, run_settings(optimizer="adam", weight_decay=0.0), 1)
    assert type(optimizer) is torch.optim.Adam
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 0 and group["betas"] == (0.9, 0.999)
    assert group["lr"] == pytest.approx(1e-3)
