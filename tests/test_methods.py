"""Unit tests of the continual-learning methods (src/clexp/methods), one group per method."""

import numpy as np
import pytest
import torch
from torch import nn

from clexp.checkpoint import load_checkpoint, save_checkpoint
from clexp.methods.agem import agem_project
from clexp.methods.base import TaskContext
from clexp.methods.buffer import ReplayBuffer
from clexp.methods.ewc import diagonal_fisher
from clexp.methods.lwf import distillation, paper_weights
from clexp.methods.ogd import alignment
from clexp.methods.registry import build_method, method_name, method_names
from clexp.model import MLP
from clexp.training import build_optimizer, to_tensors, train_task

from helpers import run_settings, synthetic_arrays


def context_for(task, arrays=None, device="cpu", tasks=None):
    arrays = arrays or synthetic_arrays()
    tasks = tasks or [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]
    indices = np.flatnonzero(np.isin(arrays["train_labels"], tasks[task - 1]))
    images, labels = to_tensors(arrays["train_images"][indices],
                                arrays["train_labels"][indices], device)
    return TaskContext(task=task, tasks=tasks, images=images, labels=labels, indices=indices,
                       train_images=arrays["train_images"], train_labels=arrays["train_labels"],
                       batch_size=16)


def train_steps(model, method, context, run, steps=5):
    """A few batches through the method's hooks, as the training loop calls them."""
    optimizer = build_optimizer(model, run, context.task)
    method.start_task(context)
    for step in range(steps):
        x = context.images[step * 16 : step * 16 + 16]
        y = context.labels[step * 16 : step * 16 + 16]
        x, y = method.batch(x, y)
        logits, _ = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        extra = method.penalty(model, x, y, logits)
        if extra is not None:
            loss = loss + extra
        optimizer.zero_grad()
        loss.backward()
        method.before_step()
        optimizer.step()
        method.after_step()
    method.end_task(context)
    return optimizer


def test_registry_names_every_method_and_ogd_switch_selects_ogd():
    assert set(method_names()) == {"naive", "ogd", "ewc", "si", "lwf", "er", "agem"}
    assert method_name(run_settings()) == "naive"
    assert method_name(run_settings(ogd=True)) == "ogd"
    assert method_name(run_settings(method="si")) == "si"
    for name in method_names():
        assert build_method(run_settings(method=name), MLP(), seed=0).name == name


# --- EWC ---
def test_ewc_penalty_is_zero_at_the_anchor_and_quadratic_around_it():
    torch.manual_seed(0)
    model = MLP()
    method = build_method(run_settings(method="ewc", ewc_lambda=10.0), model, seed=0)
    method.end_task(context_for(1))
    assert method.penalty(model, None, None, None).item() == pytest.approx(0.0, abs=1e-12)
    direction = [torch.randn_like(p) for p in model.parameters()]
    values = []
    for t in (0.01, 0.02, 0.04):
        with torch.no_grad():
            for p, a, d in zip(model.parameters(), method.anchors[0].split(
                    [p.numel() for p in model.parameters()]), direction, strict=True):
                p.copy_(a.view_as(p) + t * d)
        values.append(method.penalty(model, None, None, None).item())
    assert values[0] > 0
    assert values[1] / values[0] == pytest.approx(4.0, rel=1e-3)
    assert values[2] / values[0] == pytest.approx(16.0, rel=1e-3)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_ewc_fisher_equals_the_expectation_over_the_models_outputs(norm):
    torch.manual_seed(0)
    model = MLP(norm=norm, dropout=0.5)
    with torch.no_grad():  # normalisation layers away from their initial identity
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if name.startswith("norm") and tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    model.train()
    x = torch.rand(5, 784)
    fisher = diagonal_fisher(model, x, chunk=2)
    assert model.training  # mode restored
    assert not model.norm1._forward_hooks  # no hook left behind
    model.eval()
    expected = torch.zeros_like(fisher)
    for image in x:
        log_probs = torch.log_softmax(model(image.unsqueeze(0))[0], dim=1)[0]
        for c in range(10):
            model.zero_grad()
            log_probs[c].backward(retain_graph=True)
            grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            expected += log_probs[c].exp().item() * grad.pow(2)
    assert torch.allclose(fisher, expected / len(x), rtol=1e-4, atol=1e-10)


def test_ewc_fisher_names_a_layer_it_has_no_formula_for():
    model = nn.Sequential(nn.Linear(4, 3), nn.Conv1d(1, 1, 1))
    with pytest.raises(TypeError, match="Conv1d"):
        diagonal_fisher(model, torch.rand(2, 4))


def test_online_ewc_keeps_one_decayed_fisher_and_the_latest_anchor():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(method="ewc", ewc_online=True, ewc_gamma=0.5)
    method = build_method(run, model, seed=0)
    method.end_task(context_for(1))
    first = method.fishers.clone()
    train_steps(model, method, context_for(2), run, steps=3)
    assert method.fishers.shape[0] == 1 and method.anchors.shape[0] == 1
    second = diagonal_fisher(model, context_for(2).images)
    assert torch.allclose(method.fishers[0], 0.5 * first[0] + second, rtol=1e-5, atol=1e-12)
    assert torch.equal(method.anchors[0],
                       torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    separate = build_method(run_settings(method="ewc"), MLP(), seed=0)
    separate.end_task(context_for(1))
    separate.end_task(context_for(2))
    assert separate.fishers.shape[0] == 2


# --- SI ---
def test_si_importance_is_non_negative_and_zero_for_parameters_that_never_moved():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(method="si", optimizer="adamw", weight_decay=0.0, lr=0.01)
    method = build_method(run, model, seed=0)
    context = context_for(1)
    context.images[:, :5] = 0.0  # pixels 0-4 are blank: their fc1 weights never get a gradient
    train_steps(model, method, context, run, steps=6)
    importance = method.importance
    assert (importance >= 0).all()
    assert importance.sum() > 0
    blank = torch.zeros_like(model.fc1.weight, dtype=torch.bool)
    blank[:, :5] = True
    fc1 = importance[: model.fc1.weight.numel()].view_as(model.fc1.weight)
    assert (fc1[blank] == 0).all()
    assert (fc1[~blank] > 0).any()


def test_si_path_integral_is_the_gradient_times_the_step_for_sgd():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(method="si", optimizer="sgd", lr=0.1, weight_decay=0.0, si_xi=0.5)
    method = build_method(run, model, seed=0)
    context = context_for(1)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    logits, _ = model(context.images[:16])
    loss = nn.functional.cross_entropy(logits, context.labels[:16])
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, model.parameters())])
    train_steps(model, method, context, run, steps=1)
    change = -0.1 * gradient
    expected = (0.1 * gradient.pow(2)) / (change.pow(2) + 0.5)
    assert torch.allclose(method.importance, expected, rtol=1e-4, atol=1e-12)
    assert torch.allclose(method.anchor, before + change, atol=1e-6)


# --- LwF ---
def test_lwf_distillation_is_zero_when_the_model_equals_its_snapshot():
    torch.manual_seed(0)
    model = MLP(dropout=0.2)
    method = build_method(run_settings(method="lwf"), model, seed=0)
    method.end_task(context_for(1))
    method.start_task(context_for(2))
    assert method.groups == [[1, 2]]  # class-IL: the old classes, in one softmax
    x = context_for(2).images[:32]
    model.eval()
    logits, _ = model(x)
    assert method.penalty(model, x, None, logits).item() == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        model.fc3.weight[1] += 0.5
    logits, _ = model(x)
    assert method.penalty(model, x, None, logits).item() > 1e-4


def test_distillation_uses_the_temperature():
    target = torch.tensor([[2.0, 0.0]])
    logits = torch.tensor([[0.0, 0.0]])
    p = torch.softmax(target / 2.0, dim=1)[0]
    expected = (p * (p.log() - torch.log(torch.tensor(0.5)))).sum()
    assert distillation(logits, target, 2.0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_lwf_paper_weights_are_one_over_t_and_the_rest_times_t_squared():
    assert paper_weights(1, 2.0) == (1.0, 0.0)
    assert paper_weights(2, 2.0) == (0.5, 2.0)  # (1 - 1/2) * 2**2
    cross_entropy, distill = paper_weights(3, 3.0)
    assert cross_entropy == pytest.approx(1 / 3) and distill == pytest.approx(6.0)  # 2/3 * 9


def _log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("weighting", ["study", "paper"])
def test_lwf_loss_of_a_batch_is_the_documented_one(weighting):
    """The loss the training loop minimises on the first batch of task 3, computed by hand
    (numpy) from the network's and the snapshot's logits: study, CE + alpha * KL over the
    old classes at temperature T; paper, CE / 3 + (1 - 1/3) * T^2 * KL."""
    torch.manual_seed(0)
    model = MLP()
    options = {"lwf_alpha": 0.7} if weighting == "study" else {"lwf_weighting": "paper"}
    run = run_settings(method="lwf", lwf_temperature=3.0, iterations=1, batch_size=64,
                       **options)
    method = build_method(run, model, seed=0)
    method.end_task(context_for(2))
    with torch.no_grad():  # the network moves away from its snapshot
        model.fc3.weight.mul_(1.5)
        model.fc3.bias.add_(0.3)
    context = context_for(3)
    x, y = context.images[:64], context.labels[:64]
    logits = model(x)[0].detach().numpy().astype(np.float64)
    previous = method.previous(x)[0].detach().numpy().astype(np.float64)
    labels = y.numpy()
    cross_entropy = -_log_softmax(logits)[np.arange(len(labels)), labels].mean()
    old = [1, 2, 3, 4]  # the classes of tasks 1 and 2
    target = _log_softmax(previous[:, old] / 3.0)
    kl = (np.exp(target) * (target - _log_softmax(logits[:, old] / 3.0))).sum(axis=1).mean()
    expected = (cross_entropy + 0.7 * kl if weighting == "study"
                else cross_entropy / 3 + (1 - 1 / 3) * 3.0**2 * kl)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    result = train_task(model, optimizer, x, y, run, torch.Generator().manual_seed(0),
                        method=method, task=3, context=context)
    row = result["log"][0]
    assert row["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert row["train_loss"] == pytest.approx(row["train_ce"] + row["train_penalty"], rel=1e-6)
    share = 1.0 if weighting == "study" else 1 / 3
    assert row["train_ce"] == pytest.approx(share * cross_entropy, rel=1e-5)


# --- ER and the buffer ---
def test_replay_buffer_is_class_balanced_after_every_task():
    arrays = synthetic_arrays(per_class=200)
    buffer = ReplayBuffer(50)
    generator = torch.Generator().manual_seed(0)
    for task, classes in enumerate([[1, 2], [3, 4], [5, 6]], start=1):
        indices = np.flatnonzero(np.isin(arrays["train_labels"], classes))
        buffer.add_task(indices, arrays["train_labels"][indices], generator)
        counts = {c: int((buffer.labels == c).sum()) for c in buffer.classes()}
        assert len(counts) == 2 * task
        assert sum(counts.values()) == 50
        assert max(counts.values()) - min(counts.values()) <= 1
        # the stored labels are the dataset's labels at the stored indices
        assert np.array_equal(arrays["train_labels"][buffer.indices.numpy()],
                              buffer.labels.numpy())
    assert len(set(buffer.indices.tolist())) == 50


def test_er_buffer_survives_a_checkpoint_bitwise(tmp_path):
    model = MLP()
    method = build_method(run_settings(method="er", buffer_size=30), model, seed=3)
    method.end_task(context_for(1))
    method.end_task(context_for(2))
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": model.state_dict(), "method_state": method.state_dict()}, path)
    restored = build_method(run_settings(method="er", buffer_size=30), MLP(), seed=99)
    restored.load_state_dict(load_checkpoint(path)["method_state"])
    assert torch.equal(restored.buffer.indices, method.buffer.indices)
    assert torch.equal(restored.buffer.labels, method.buffer.labels)
    assert torch.equal(restored.generator.get_state(), method.generator.get_state())


def test_er_mixes_each_batch_with_a_replay_batch_of_the_same_size():
    model = MLP()
    method = build_method(run_settings(method="er", buffer_size=40), model, seed=0)
    first = context_for(1)
    method.start_task(first)
    x, y = first.images[:16], first.labels[:16]
    assert method.batch(x, y)[0] is x  # nothing stored yet
    method.end_task(first)
    method.start_task(context_for(2))
    second = context_for(2)
    mixed_x, mixed_y = method.batch(second.images[:16], second.labels[:16])
    assert mixed_x.shape[0] == 32
    assert torch.equal(mixed_x[:16], second.images[:16])
    assert set(mixed_y[16:].tolist()) <= {1, 2}


# --- A-GEM ---
def test_agem_projection_has_a_non_negative_dot_product_with_the_reference():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        gradient = torch.randn(1000, generator=generator)
        reference = torch.randn(1000, generator=generator)
        projected = agem_project(gradient, reference)
        dot = float(projected.double() @ reference.double())
        assert dot >= -1e-6 * float(gradient.norm() * reference.norm())
        if float(gradient @ reference) >= 0:
            assert torch.equal(projected, gradient)
        else:
            assert abs(dot) < 1e-5


def test_agem_projects_the_training_gradient_against_the_buffer():
    torch.manual_seed(0)
    model = MLP(norm="batch")
    run = run_settings(method="agem", buffer_size=20, agem_sample_size=10)
    method = build_method(run, model, seed=0)
    method.end_task(context_for(1))
    method.start_task(context_for(2))
    running = model.norm1.running_mean.clone()
    x, y = context_for(2).images[:16], context_for(2).labels[:16]
    nn.functional.cross_entropy(model(x)[0], y).backward()
    after_batch = model.norm1.running_mean.clone()
    assert not torch.equal(running, after_batch)
    state = method.generator.get_state()
    twin = MLP(norm="batch")
    twin.load_state_dict(model.state_dict())
    method.before_step()
    assert torch.equal(model.norm1.running_mean, after_batch)  # reference pass left no trace
    gradient = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    # the reference gradient of the same draw, recomputed on a copy of the model
    method.generator.set_state(state)
    ref_x, ref_y = method.sample(10)
    nn.functional.cross_entropy(twin(ref_x)[0], ref_y).backward()
    reference = torch.cat([p.grad.reshape(-1) for p in twin.parameters()])
    assert float(gradient.double() @ reference.double()) >= -1e-6 * float(
        gradient.norm() * reference.norm())


# --- OGD ---
def test_ogd_step_projection_makes_the_applied_adamw_update_orthogonal():
    torch.manual_seed(0)
    for projection, orthogonal in (("step", True), ("gradient", False)):
        torch.manual_seed(0)
        model = MLP()
        run = run_settings(ogd=True, ogd_project=projection, lr=0.01, weight_decay=0.01)
        method = build_method(run, model, seed=0)
        # task 1 trains with AdamW, so its momentum points along task 1's gradient
        optimizer = train_steps(model, method, context_for(1), run, steps=8)
        assert method.basis.shape[0] == 1
        context = context_for(2)
        method.start_task(context)
        for step in range(6):
            x, y = context.images[step * 16 : step * 16 + 16], context.labels[step * 16 :][:16]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x)[0], y).backward()
            method.before_step()
            before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            optimizer.step()
            method.after_step()
            update = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before
            if projection == "step":
                assert alignment(update, method.basis) < 1e-6
        record = method.task_record()
        assert record["ogd_update_alignment_steps"] == 6
        if orthogonal:
            assert record["ogd_update_alignment_max"] < 1e-6
        else:
            assert record["ogd_update_alignment_max"] > 1e-3  # AdamW breaks the guarantee


def test_alignment_is_the_cosine_with_the_span():
    basis = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    assert alignment(torch.tensor([0.0, 0.0, 2.0]), basis) == 0.0
    assert alignment(torch.tensor([3.0, 4.0, 0.0]), basis) == pytest.approx(1.0)
    assert alignment(torch.tensor([1.0, 0.0, 1.0]), basis) == pytest.approx(2 ** -0.5)
