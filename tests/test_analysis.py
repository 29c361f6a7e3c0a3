import numpy as np
import pytest
import torch

from clexp.analysis import (
    checkpoint_analysis,
    example_indices,
    layer_statistics,
    probability_profile,
    saliency_norms,
    softmax,
)
from clexp.model import MLP

SETTINGS = {"hidden_features_images": 12, "example_images": 4, "tsne_images": 30,
            "tsne_iterations": 250}


def test_saliency_norm_on_a_worked_example():
    # two classes, two units; unit 2 is dead (always 0) and must not count
    features = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    norms = saliency_norms(features, labels, [0, 1])
    # mean_all = 2, std_all = 1: class 0 sits at (1 - 2) / 1 = -1, class 1 at +1
    assert norms == {"0": pytest.approx(1.0), "1": pytest.approx(1.0)}


def test_probability_profile_rows_are_mean_softmax_per_true_class():
    logits = np.array([[10.0, 0.0], [0.0, 10.0], [10.0, 0.0]])
    probabilities = softmax(logits)
    profile = probability_profile(probabilities, np.array([0, 0, 1]), [0, 1])
    assert profile.shape == (2, 2)
    assert profile[0] == pytest.approx([0.5, 0.5], abs=1e-4)
    assert profile[1] == pytest.approx([1.0, 0.0], abs=1e-4)


def test_example_strip_alternates_old_and_new_classes():
    labels = np.array([1, 2, 3, 4, 5, 6, 1, 2, 5, 6])
    chosen = example_indices(labels, [[1, 2], [3, 4], [5, 6]], 6)
    assert list(labels[chosen]) == [1, 2, 5, 6, 3, 4]


def parameters_of(model):
    return {key: value.detach().numpy().copy() for key, value in model.state_dict().items()}


def test_bias_statistics_show_the_batchnorm_shift_where_batchnorm_follows_the_layer():
    model = MLP(norm="batch")
    with torch.no_grad():
        model.norm1.bias.fill_(-0.5)
        model.norm2.bias.copy_(torch.linspace(-1.0, 1.0, 84))
    _, bias_stats, arrays = layer_statistics(parameters_of(model))
    assert bias_stats["fc1"] == {"mean": pytest.approx(-0.5), "median": pytest.approx(-0.5),
                                 "std": pytest.approx(0.0, abs=1e-7)}
    assert bias_stats["fc2"]["std"] == pytest.approx(np.std(np.linspace(-1, 1, 84)), rel=1e-5)
    # the output layer has no BatchNorm: its own bias
    assert bias_stats["fc3"]["mean"] == pytest.approx(model.fc3.bias.mean().item())
    assert str(arrays["hist_fc1_bias_source"]) == "batchnorm_shift"
    assert str(arrays["hist_fc3_bias_source"]) == "linear_bias"
    assert arrays["hist_fc1_bias_counts"].sum() == 120
    for norm in ("none", "layer"):  # the linear bias acts: it is the effective bias
        model = MLP(norm=norm)
        _, bias_stats, arrays = layer_statistics(parameters_of(model))
        # a mean near 0 of float32 values summed in another order: compare in absolute terms
        # (a BatchNorm shift of 0 read instead would be off by ~1e-4)
        assert bias_stats["fc1"]["mean"] == pytest.approx(model.fc1.bias.mean().item(),
                                                          abs=1e-6)
        assert str(arrays["hist_fc1_bias_source"]) == "linear_bias"


def test_hidden_features_show_the_same_seeded_balanced_images_after_every_task():
    labels = np.repeat(np.arange(10), 30)
    images = np.zeros((300, 784), dtype=np.uint8)
    # h2 column 0 holds the image's index, so the chosen images can be read back
    outputs = {"logits": np.zeros((300, 10)), "h1": np.ones((300, 120)),
               "h2": np.repeat(np.arange(300.0)[:, None], 84, axis=1)}
    parameters = parameters_of(MLP())
    tasks = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]

    def hidden_features(task, seed):
        arrays = checkpoint_analysis(parameters, images, labels, outputs, tasks[:task],
                                        SETTINGS, seed=seed, run_classes=[1, 2, 3, 4, 5, 6,
                                                                          7, 8, 9, 0])
        return arrays

    first, last = hidden_features(1, seed=4), hidden_features(5, seed=4)
    chosen = first["hidden_features"][:, 0]
    assert np.array_equal(chosen, last["hidden_features"][:, 0])
    assert not np.array_equal(chosen, hidden_features(1, seed=5)["hidden_features"][:, 0])
    counts = np.bincount(first["hidden_features_labels"], minlength=10)
    assert sorted(counts.tolist()) == [1] * 8 + [2] * 2  # 12 images over ten classes
    assert list(first["hidden_features_labels"]) == sorted(first["hidden_features_labels"])
    assert first["hidden_features_seen"].tolist() == [
        d in (1, 2) for d in first["hidden_features_labels"]]
    assert last["hidden_features_seen"].all()
