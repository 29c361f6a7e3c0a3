import pytest
import torch

from clexp.config import DEFAULT_OPTIONS
from clexp.model import MLP, build_model


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_forward_returns_logits_and_hidden_activations(norm):
    model = MLP(norm=norm)
    logits, (h1, h2) = model(torch.rand(8, 784))
    assert logits.shape == (8, 10)
    assert h1.shape == (8, 120)
    assert h2.shape == (8, 84)
    assert (h1 >= 0).all() and (h2 >= 0).all()  # post-ReLU


def test_norm_options_insert_the_right_layers():
    assert isinstance(MLP(norm="batch").norm1, torch.nn.BatchNorm1d)
    assert isinstance(MLP(norm="layer").norm2, torch.nn.LayerNorm)
    assert isinstance(MLP(norm="none").norm1, torch.nn.Identity)
    with pytest.raises(ValueError, match="norm must be one of"):
        MLP(norm="group")


def test_parameter_count_of_the_plain_mlp():
    model = MLP()
    expected = 784 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected


def test_dropout_is_active_in_training_and_inactive_in_evaluation():
    torch.manual_seed(0)
    model = MLP(dropout=0.5)
    x = torch.rand(16, 784)
    model.train()
    first, second = model(x)[0], model(x)[0]
    assert not torch.allclose(first, second)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


def test_build_model_reads_experiment_settings():
    run = dict(DEFAULT_OPTIONS, norm="batch", dropout=0.2)
    model = build_model(run)
    assert isinstance(model.norm1, torch.nn.BatchNorm1d)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.2


@pytest.mark.parametrize("scenario, outputs", [("class", 10), ("domain", 2)])
def test_hidden_sets_the_widths_of_both_hidden_layers(scenario, outputs):
    run = dict(DEFAULT_OPTIONS, hidden=[400, 300], tasks=[[0, 1], [2, 3]])
    if scenario == "domain":
        run.update(scenario="domain", scenario_tasks=[[0, 1], [2, 3]])
    model = build_model(run)
    assert model.fc1.weight.shape == (400, 784)
    assert model.fc2.weight.shape == (300, 400)
    assert model.fc3.weight.shape == (outputs, 300)
    logits, (h1, h2) = model(torch.rand(4, 784))
    assert (logits.shape, h1.shape, h2.shape) == ((4, outputs), (4, 400), (4, 300))
    # without `hidden`, the study's network
    assert build_model(dict(DEFAULT_OPTIONS)).fc2.weight.shape == (84, 120)
