import torch

from clexp.checkpoint import load_checkpoint
from clexp.model import MLP
from clexp.ogd import (
    average_task_gradient,
    empty_basis,
    extend_basis,
    flat_gradient,
    parameter_count,
    project_gradients,
    project_out,
)
from clexp.training import run_training_task, to_tensors

from helpers import run_settings, synthetic_arrays, write_synthetic_dataset


def random_basis(rows: int, size: int = 500, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    basis = torch.zeros(0, size, dtype=torch.float64)
    for _ in range(rows):
        basis = extend_basis(basis, torch.randn(size, generator=generator, dtype=torch.float64))
    return basis


def test_basis_stays_orthonormal_and_grows_by_one_per_direction():
    basis = random_basis(6)
    assert basis.shape == (6, 500)
    assert torch.allclose(basis @ basis.T, torch.eye(6, dtype=torch.float64), atol=1e-12)


def test_projected_vector_is_orthogonal_to_every_basis_vector():
    basis = random_basis(5)
    vector = torch.randn(500, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    projected = project_out(vector, basis)
    relative = (basis @ projected).abs() / vector.norm()
    assert (relative < 1e-6).all()
    # What is left is the whole component outside the span: projecting again changes nothing.
    assert torch.allclose(project_out(projected, basis), projected, atol=1e-12)


def test_a_vector_inside_the_span_projects_to_zero_and_is_not_appended():
    basis = random_basis(3)
    inside = 2.0 * basis[0] - 0.5 * basis[2]
    assert project_out(inside, basis).norm() < 1e-12 * inside.norm()
    assert extend_basis(basis, inside).shape[0] == 3


def test_a_tiny_direction_below_eps_is_not_appended():
    basis = random_basis(1)
    assert extend_basis(basis, torch.full((500,), 1e-12, dtype=torch.float64)).shape[0] == 1


def test_model_gradients_are_projected_before_the_step():
    torch.manual_seed(0)
    model = MLP(norm="batch")
    arrays = synthetic_arrays()
    x, y = to_tensors(arrays["train_images"][:64], arrays["train_labels"][:64], "cpu")
    basis = extend_basis(empty_basis(model), average_task_gradient(model, x, y, 32))
    basis = extend_basis(basis, torch.randn(parameter_count(model)))
    logits, _ = model(x)
    torch.nn.functional.cross_entropy(logits, y).backward()
    original = flat_gradient(model).clone()
    project_gradients(model, basis)
    projected = flat_gradient(model)
    assert ((basis @ projected.double()).abs() / original.norm() < 1e-6).all()
    assert not torch.allclose(projected, original)


def test_average_task_gradient_leaves_batchnorm_statistics_unchanged():
    torch.manual_seed(0)
    model = MLP(norm="batch")
    arrays = synthetic_arrays()
    x, y = to_tensors(arrays["train_images"], arrays["train_labels"], "cpu")
    before = model.norm1.running_mean.clone()
    gradient = average_task_gradient(model, x, y, 64)
    assert gradient.shape == (parameter_count(model),) and gradient.norm() > 0
    assert torch.equal(model.norm1.running_mean, before)
    assert all(p.grad is None for p in model.parameters())


def test_ogd_run_carries_the_basis_from_task_to_task(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="ogd", ogd=True, optimizer="sgd", lr=0.01, weight_decay=0.0,
                       lr_factor_after_first_task=0.2, stop_at_train_acc=0.9, max_epochs=3)
    paths = [tmp_path / f"task{t}.pt" for t in (1, 2, 3)]
    run_training_task(run, 0, 1, data, paths[0], device="cpu")
    log = run_training_task(run, 0, 2, data, paths[1], previous_checkpoint=paths[0],
                            device="cpu")["log"]
    run_training_task(run, 0, 3, data, paths[2], previous_checkpoint=paths[1], device="cpu")
    bases = [load_checkpoint(p)["ogd_basis"] for p in paths]
    assert [b.shape[0] for b in bases] == [1, 2, 3]
    # Task t+1 resumes with task t's basis: the old directions are kept unchanged.
    assert torch.equal(bases[1][:1], bases[0])
    assert torch.equal(bases[2][:2], bases[1])
    assert torch.allclose(bases[2] @ bases[2].T, torch.eye(3, dtype=torch.float64), atol=1e-10)
    assert all(row["ogd_basis_size"] == 1 for row in log)


def test_training_with_ogd_moves_the_weights_orthogonally_to_the_basis(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="ogd", ogd=True, optimizer="sgd", lr=0.01, weight_decay=0.0,
                       momentum=0.0, epochs=1)
    first, second = tmp_path / "t1.pt", tmp_path / "t2.pt"
    run_training_task(run, 0, 1, data, first, device="cpu")
    run_training_task(run, 0, 2, data, second, previous_checkpoint=first, device="cpu")
    a, b = load_checkpoint(first), load_checkpoint(second)
    keys = [k for k in a["model"] if a["model"][k].is_floating_point()
            and not k.startswith("norm")]
    step = torch.cat([(b["model"][k] - a["model"][k]).reshape(-1) for k in keys])
    basis = a["ogd_basis"]
    # Plain SGD without weight decay: the total update is a sum of projected gradients.
    assert step.norm() > 0
    assert ((basis @ step.double()).abs() / step.norm() < 1e-4).all()
