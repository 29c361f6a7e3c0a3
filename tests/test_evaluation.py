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


def _independent_forward(model, images):
    """h1, h2 and logits of `images` from the model's weights, in numpy (evaluation mode,
    BatchNorm from its running statistics)."""
    state = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0

    def layer(x, name, norm):
        z = x @ state[f"{name}.weight"].T + state[f"{name}.bias"]
        if norm is not None:
            z = ((z - state[f"{norm}.running_mean"]) / np.sqrt(state[f"{norm}.running_var"] + 1e-5)
                 * state[f"{norm}.weight"] + state[f"{norm}.bias"])
        return np.maximum(z, 0)

    bn = any(k.startswith("norm1") for k in state)
    h1 = layer(x, "fc1", "norm1" if bn else None)
    h2 = layer(h1, "fc2", "norm2" if bn else None)
    return h1, h2, h2 @ state["fc3.weight"].T + state["fc3.bias"]


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_untrained_control_is_the_network_task_1_starts_from(tmp_path, norm):
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from clexp.checkpoint import load_checkpoint
    from clexp.data import balanced_subset, load_dataset
    from clexp.evaluation import evaluate_untrained
    from clexp.model import MLP

    data_path = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="control", norm=norm, probe_unseen=[9, 0],
                       tasks=[[1, 2], [3, 4], [9, 0]])
    seed = 3
    control = evaluate_untrained(run, seed, data_path, PROBE, device="cpu")
    assert control["task"] == 0 and control["classes_seen"] == []
    assert control["probe_acc"] is None and np.isnan(control["val_acc"])

    # independently: a fresh model with the run's seed, evaluated with numpy and sklearn
    torch.manual_seed(seed)
    model = MLP(norm=norm).eval()
    data = load_dataset(data_path)
    labels = data["eval_labels"]
    h1, h2, logits = _independent_forward(model, data["eval_images"])
    predictions = logits.argmax(1)
    expected_tasks = [float(np.mean(predictions[np.isin(labels, t)] == labels[np.isin(labels, t)]))
                      for t in run["tasks"]]
    assert control["per_task_acc"] == pytest.approx(expected_tasks)
    zeros = (np.count_nonzero(h1 == 0) + np.count_nonzero(h2 == 0)) / (h1.size + h2.size)
    assert control["population_sparsity"] == pytest.approx(zeros, abs=1e-4)
    assert control["sparsity_h2"] == pytest.approx(np.mean(h2 == 0), abs=1e-4)
    assert control["dead_units_h1"] == pytest.approx(np.mean(np.all(h1 == 0, axis=0)))
    biases = model.fc1.bias.detach().numpy() if norm == "none" else np.zeros(120)
    assert control["bias_stats"]["fc1"]["mean"] == pytest.approx(float(biases.mean()), abs=1e-6)

    indices = balanced_subset(data["train_labels"], range(10), PROBE["train_images_per_class"])
    _, train_h2, _ = _independent_forward(model, data["train_images"][indices])
    train_labels = data["train_labels"][indices]

    def probe(classes):
        fit, score = np.isin(train_labels, classes), np.isin(labels, classes)
        scaler = StandardScaler().fit(train_h2[fit])
        regression = LogisticRegression(max_iter=PROBE["max_iter"]).fit(
            scaler.transform(train_h2[fit]), train_labels[fit])
        return float(np.mean(regression.predict(scaler.transform(h2[score])) == labels[score]))

    # float32 features in clexp, float64 here: a borderline image may flip
    assert control["probe_all_acc"] == pytest.approx(probe([1, 2, 3, 4, 9, 0]), abs=0.01)
    assert control["probe_unseen_acc"] == pytest.approx(probe([9, 0]), abs=0.01)
    assert control["probe_acc_by_task"] == pytest.approx(
        [probe([1, 2]), probe([1, 2, 3, 4]), probe([1, 2, 3, 4, 9, 0])], abs=0.01)

    # and it is the network training starts from: the accuracy task 1 recorded before training
    run_training_task(run, seed, 1, data_path, tmp_path / "t1.pt", device="cpu")
    state = load_checkpoint(tmp_path / "t1.pt")
    assert state["init_per_task_acc"] == pytest.approx(control["per_task_acc"])
