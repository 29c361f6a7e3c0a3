import numpy as np
import pytest

from clexp.evaluation import evaluate_checkpoint
from clexp.probes import linear_probe
from clexp.training import run_training_task

from helpers import run_settings, write_synthetic_dataset

PROBE = {"train_images_per_class": 30, "max_iter": 300}
ANALYSIS = {"forgetting_curve_stride": 1, "forgetting_curve_images_per_task": 20,
            "tsne_images": 60, "example_images": 6, "hidden_features_images": 8}


def test_probe_on_separable_features_is_perfect_and_on_shuffled_labels_near_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    features = rng.normal(size=(400, 8)) + 6.0 * np.eye(8)[labels]
    result = linear_probe(features[::2], labels[::2], features[1::2], labels[1::2])
    assert result["acc"] > 0.99
    assert set(result["per_class_acc"]) == {"0", "1", "2", "3"}
    assert all(norm > 0 for norm in result["coef_norm"].values())
    shuffled = rng.permutation(labels)
    noise = rng.normal(size=(400, 8))
    chance = linear_probe(noise[::2], shuffled[::2], noise[1::2], shuffled[1::2])
    assert chance["acc"] < 0.4  # chance is 0.25


def test_probe_needs_two_classes():
    assert linear_probe(np.ones((4, 2)), np.zeros(4), np.ones((2, 2)), np.zeros(2)) is None


@pytest.fixture(scope="module")
def two_task_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = write_synthetic_dataset(folder / "data.npz")
    run = run_settings(name="probed", epochs=2, probe_unseen=[9, 0], probe_all_classes=True,
                       tasks=[[1, 2], [3, 4], [9, 0]])
    run_training_task(run, 0, 1, data, folder / "t1.pt", device="cpu")
    run_training_task(run, 0, 2, data, folder / "t2.pt", previous_checkpoint=folder / "t1.pt",
                      device="cpu")
    run_training_task(run, 0, 3, data, folder / "t3.pt", previous_checkpoint=folder / "t2.pt",
                      device="cpu")
    return run, data, folder


def test_metrics_of_a_checkpoint(two_task_run):
    run, data, folder = two_task_run
    metrics, arrays = evaluate_checkpoint(run, 0, 2, folder / "t2.pt", data, PROBE,
                                          device="cpu", analysis_settings=ANALYSIS)
    assert metrics["classes_seen"] == [1, 2, 3, 4]
    assert set(metrics["per_class_acc"]) == {"1", "2", "3", "4"}
    assert len(metrics["per_task_acc"]) == 3 and metrics["per_task_acc"][2] == 0.0
    # val_acc over seen classes is the mean of the two (balanced) seen tasks
    assert metrics["val_acc"] == pytest.approx(np.mean(metrics["per_task_acc"][:2]))
    assert set(metrics["probe_per_class_acc"]) == {"1", "2", "3", "4"}
    assert 0 <= metrics["sparsity_h1"] <= 1 and 0 <= metrics["sparsity_h2"] <= 1
    h1_units, h2_units = 120, 84
    pooled = (metrics["sparsity_h1"] * h1_units + metrics["sparsity_h2"] * h2_units) / (
        h1_units + h2_units
    )
    assert metrics["population_sparsity"] == pytest.approx(pooled)
    assert set(metrics["probe_all_per_class_acc"]) == {"1", "2", "3", "4", "9", "0"}
    assert metrics["epochs_run"] == 2 and metrics["stopped_early"] is False
    # the analysis arrays and statistics
    assert set(metrics["bias_stats"]) == {"fc1", "fc2", "fc3"}
    assert set(metrics["saliency_norm"]) == {"1", "2", "3", "4"}
    assert arrays["profile"].shape == (4, 10)
    assert np.allclose(arrays["profile"].sum(axis=1), 1.0, atol=1e-5)
    assert arrays["tsne_h2"].shape == (60, 2) and "tsne_h1" not in arrays
    assert set(arrays["tsne_labels"]) == {1, 2, 3, 4}
    assert arrays["example_images"].shape == (6, 28, 28)
    # the strip alternates the oldest task's classes with the newest one's
    assert list(arrays["example_labels"][:4]) == [1, 2, 3, 4]
    assert arrays["hidden_features"].shape == (8, 84)
    assert list(arrays["hidden_features_labels"]) == sorted(arrays["hidden_features_labels"])
    assert arrays["hist_fc1_weight_counts"].sum() == 784 * 120


def test_forward_transfer_probe_only_sees_unseen_classes(two_task_run):
    run, data, folder = two_task_run
    before, _ = evaluate_checkpoint(run, 0, 1, folder / "t1.pt", data, PROBE, device="cpu")
    assert before["probe_unseen_classes"] == [9, 0]
    assert set(before["probe_unseen_per_class_acc"]) == {"9", "0"}
    assert before["probe_unseen_acc"] > 0.9  # synthetic classes are easy to separate
    after, _ = evaluate_checkpoint(run, 0, 3, folder / "t3.pt", data, PROBE, device="cpu")
    assert after["probe_unseen_classes"] == []
    assert after["probe_unseen_acc"] is None


def hand_made_model():
    """An MLP that sees each class's pixel block and always favours class 9 by a margin.

    Unit c of h1 and h2 sums class c's block; logit c is that sum plus a large bias for 9.
    Class-incremental predictions are therefore 9 everywhere; masked to a task's classes,
    every task without 9 is predicted perfectly and task [9, 0] is half right.
    """
    import torch

    from clexp.model import MLP

    model = MLP()
    with torch.no_grad():
        for layer in (model.fc1, model.fc2, model.fc3):
            layer.weight.zero_()
            layer.bias.zero_()
        for c in range(10):
            model.fc1.weight[c, c * 78 : c * 78 + 60] = 1.0 / 60
            model.fc2.weight[c, c] = 1.0
            model.fc3.weight[c, c] = 10.0
        model.fc3.bias[9] = 100.0
    return model


def test_task_incremental_accuracy_masks_the_logits_to_each_tasks_classes(tmp_path):
    import torch

    from clexp.checkpoint import save_checkpoint
    from clexp.config import config_hash, training_config

    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="hand")
    model = hand_made_model()
    save_checkpoint({"model": model.state_dict(), "ogd_basis": torch.zeros(0, 1),
                     "config_hash": config_hash(training_config(run)), "experiment": "hand",
                     "seed": 0, "task": 5, "epochs_run": 0, "stopped_early": False,
                     "init_per_task_acc": [0.0] * 5}, tmp_path / "hand.pt")
    metrics, _ = evaluate_checkpoint(run, 0, 5, tmp_path / "hand.pt", data, PROBE, device="cpu")
    assert metrics["per_task_acc"] == [0.0, 0.0, 0.0, 0.0, 0.5]
    assert metrics["per_task_acc_til"] == [1.0, 1.0, 1.0, 1.0, 0.5]
