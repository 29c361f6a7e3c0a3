import numpy as np
import pytest

from clexp.analysis import example_indices, probability_profile, saliency_norms, softmax


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
