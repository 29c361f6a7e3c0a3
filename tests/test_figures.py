"""Figures and the tables behind them: real images with the expected content."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from clexp.model import MLP
from clexp.training import Instruments, build_optimizer, train_task

from helpers import run_settings

pytestmark = pytest.mark.slow


def test_relative_update_of_an_sgd_step_is_lr_times_gradient_norm_over_weight_norm():
    torch.manual_seed(0)
    model = MLP()
    run = run_settings(optimizer="sgd", lr=0.05, weight_decay=0.0, epochs=1, batch_size=32)
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    logits, (h1, h2) = model(x)
    torch.nn.functional.cross_entropy(logits, y).backward()
    expected = {name: (0.05 * layer.weight.grad.norm() / layer.weight.norm()).item()
                for name, layer in model.weight_layers().items()}
    gradients = {name: layer.weight.grad.clone() for name, layer in model.weight_layers().items()}
    model.zero_grad()
    instruments = Instruments(model)
    train_task(model, build_optimizer(model, run, 1), x, y, run,
               torch.Generator().manual_seed(0), instruments=instruments)
    row = instruments.updates[0]
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-4)
        # the accumulated gradient of a single step is that step's gradient
        assert torch.allclose(instruments.gradient_sums[name], gradients[name], atol=1e-6)


def test_learning_curves_compare_training_and_evaluation_cross_entropy(monkeypatch, tmp_path):
    from clexp import figures

    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda figure, path: drawn.append(figure))
    log = pd.DataFrame({
        "task": [1, 1, 2], "epoch": [1, 2, 1], "lr": 1e-3,
        "train_ce": [0.9, 0.5, 0.7], "train_penalty": [0.4, 0.3, 0.2],
        "train_acc": [0.8, 0.9, 0.85],
        "val_loss": [0.8, 0.6, 1.5], "val_acc": [0.8, 0.9, 0.5], "ogd_basis_size": 0,
    })
    log["train_loss"] = log["train_ce"] + log["train_penalty"]
    figures.plot_learning_curves(log, "penalised", tmp_path / "a.png")
    loss_axis, terms_axis = drawn[0].axes[1], drawn[0].axes[2]
    lines = [list(line.get_ydata()) for line in loss_axis.get_lines() if len(line.get_ydata()) == 3]
    assert lines == [[0.9, 0.5, 0.7], [0.8, 0.6, 1.5]]  # train CE and evaluation CE only
    assert loss_axis.get_ylabel() == "cross-entropy"
    terms = [list(line.get_ydata()) for line in terms_axis.get_lines()
             if len(line.get_ydata()) == 3]
    assert terms[0] == pytest.approx([1.3, 0.8, 0.9]) and terms[2] == [0.4, 0.3, 0.2]
    # without a penalty: accuracy and cross-entropy panels only
    figures.plot_learning_curves(log.assign(train_penalty=0.0, train_loss=log["train_ce"]),
                                 "plain", tmp_path / "b.png")
    assert len(drawn[1].axes) == 2


def png_shape(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image.shape[:2]


def test_forgetting_curve_shows_the_previous_task_collapsing(tiny_run):
    curve = pd.read_csv(tiny_run / "results/seq/seed0/task2/forgetting_curve.csv")
    previous = curve[curve["eval_task"] == 1].sort_values("step")
    current = curve[curve["eval_task"] == 2].sort_values("step")
    assert previous["acc"].iloc[0] >= 0.8  # learned in task 1
    assert previous["acc"].iloc[-1] < previous["acc"].iloc[0] - 0.5  # forgotten during task 2
    assert current["acc"].iloc[-1] > current["acc"].iloc[0]


def test_checkpoint_figures_and_their_data(tiny_run):
    task = tiny_run / "results/seq/seed0/task3"
    log = pd.read_csv(task / "train_log.csv")
    curve = pd.read_csv(task / "forgetting_curve.csv")
    updates = pd.read_csv(task / "relative_updates.csv")
    batches_per_epoch = int(np.ceil(1000 / 64))
    assert len(updates) == batches_per_epoch * len(log)
    assert list(updates.columns) == ["step", "epoch", "batch", "fc1", "fc2", "fc3"]
    assert set(curve["eval_task"]) == {1, 2, 3}
    # before training, every batch of epoch 1, then once per later epoch
    assert curve["step"].nunique() == 1 + batches_per_epoch + (len(log) - 1)
    with np.load(task / "gradient_maps.npz") as maps:
        assert {k: maps[k].shape for k in maps.files} == {
            "fc1": (120, 784), "fc2": (84, 120), "fc3": (10, 84)}
    with np.load(task / "analysis.npz") as arrays:
        assert arrays["profile"].shape == (6, 10)
        assert arrays["tsne_h2"].shape == (100, 2)
        assert arrays["hidden_features"].shape == (16, 84)
        hidden_labels = arrays["hidden_features_labels"]
        assert str(arrays["hist_fc1_bias_source"]) == "linear_bias"
    # the same images after every task, from all ten digits; untrained ones flagged
    with np.load(tiny_run / "results/seq/seed0/task1/analysis.npz") as first:
        assert np.array_equal(first["hidden_features_labels"], hidden_labels)
        assert set(hidden_labels.tolist()) == set(range(10))
        assert first["hidden_features_seen"].sum() == np.isin(hidden_labels, [1, 2]).sum()
    with np.load(tiny_run / "results/seq_bn/seed0/task1/analysis.npz") as bn:
        assert str(bn["hist_fc1_bias_source"]) == "batchnorm_shift"
    for name in ("forgetting_curve", "relative_updates", "gradient_maps", "probability_profile",
                 "latent_map", "hidden_features", "weight_histograms"):
        height, width = png_shape(task / "figures" / f"{name}.png")
        assert height >= 200 and width >= 400, name
    # the sparsity experiments draw h1 next to h2
    joint = tiny_run / "results/joint/seed0/task1"
    with np.load(joint / "analysis.npz") as arrays:
        assert "tsne_h1" in arrays.files
    assert png_shape(joint / "figures/latent_map.png")[1] > png_shape(
        task / "figures/latent_map.png")[1]


def test_run_figures_and_their_data(tiny_run):
    run = tiny_run / "results/seq/seed0"
    probes = pd.read_csv(run / "probe_table.csv")
    assert list(probes["class"]) == [f"Class {c}" for c in (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)]
    assert list(probes.columns[1:]) == [f"after task {t}" for t in range(1, 6)]
    assert probes["after task 1"].notna().sum() == 2  # only classes seen so far
    curves = pd.read_csv(run / "run_curves.csv")
    assert list(curves["task"]) == [1, 2, 3, 4, 5]
    assert {"fc1_bias_mean", "fc1_bias_median", "fc2_bias_std"} <= set(curves.columns)
    last = json.loads((run / "task5/metrics.json").read_text())
    assert curves["population_sparsity"].iloc[-1] == pytest.approx(last["population_sparsity"])
    matrix = pd.read_csv(run / "accuracy_matrix.csv")
    assert matrix.shape[0] == 5
    for name in ("accuracy_matrix", "learning_curves", "probe_progress", "sparsity",
                 "eval_loss", "bias_stats"):
        png_shape(run / f"{name}.png")
    # a one-task run gets no figure over its tasks (each would be a single point)
    joint = tiny_run / "results/joint/seed0"
    assert (joint / "learning_curves.png").exists()
    for name in ("accuracy_matrix", "probe_progress", "sparsity", "eval_loss", "bias_stats"):
        assert not (joint / f"{name}.png").exists(), name


def test_checkpoint_table_and_findings_of_the_tiny_run(tiny_run):
    study = tiny_run / "results/study"
    table = pd.read_csv(study / "checkpoints.csv")
    assert len(table) == 1 + 5 * 5  # joint's one checkpoint, five multi-task runs
    seq = table[table["experiment"] == "seq"].set_index("task")
    last = json.loads((tiny_run / "results/seq/seed0/task5/metrics.json").read_text())
    assert seq.loc[5, "acc_task1"] == pytest.approx(last["per_task_acc"][0])
    assert seq.loc[5, "old_acc"] == pytest.approx(np.mean(last["per_task_acc"][:4]))
    found = pd.read_csv(study / "findings.csv").set_index("key")
    # one seed: no interval, so nothing is decided
    assert set(found["verdict"]) == {"untested (n = 1)", "not run"}
    for key in ("seq_forgets.1", "bn_keeps_representation.1", "plain_units_die.t1-2",
                "bn_keeps_representation.2", "probe_above_untrained"):
        assert found.loc[key, "verdict"] == "untested (n = 1)", key
        assert found.loc[key, "n"] == 1
    assert found.loc["ogd_improves_probe.1", "verdict"] == "not run"
    # the untrained control: one row per run, task 0, the probe at each task's classes
    untrained = pd.read_csv(study / "untrained.csv")
    assert sorted(untrained["experiment"]) == ["class_si", "domain_lwf", "joint", "seq", "seq_bn",
                                               "task_seq"]
    assert set(untrained["task"]) == {0}
    control = json.loads((tiny_run / "results/seq/seed0/task0/metrics.json").read_text())
    row = untrained.set_index("experiment").loc["seq"]
    assert row["probe_acc_after5"] == pytest.approx(control["probe_acc_by_task"][4])
    assert row["probe_all_acc"] == pytest.approx(control["probe_all_acc"])
    assert row["population_sparsity"] == pytest.approx(control["population_sparsity"])
    # the probe of seq's last checkpoint is compared with it in the findings
    assert f"untrained seq probe accuracy (seen classes): {control['probe_all_acc']:.3f}" in \
        found.loc["probe_above_untrained", "evidence"]


def test_study_tables(tiny_run):
    study = tiny_run / "results/study"
    l1 = pd.read_csv(study / "l1_sweep.csv")
    assert list(l1["experiment"]) == ["joint"]  # the only joint run without norm
    decay = pd.read_csv(study / "weight_decay_sweep.csv")
    assert decay.empty  # seq trains fixed epochs: not the sweep's early-stopping protocol
    loss = pd.read_csv(study / "eval_loss_comparison.csv")
    assert set(zip(loss["experiment"], loss["group"], strict=True)) == {
        ("seq", "plain"), ("seq_bn", "BN")}
    assert len(loss) == 10
    transfer = pd.read_csv(study / "forward_transfer.csv")
    assert set(transfer["experiment"]) == {"seq_bn"}
    assert list(transfer["task"]) == [1, 2, 3, 4]  # 9 and 0 are seen after task 5
    assert transfer["probe_all_acc"].notna().all()
    assert transfer["probe_all_acc"].between(0.1, 1.0).all()  # ten classes: chance is 0.1
    representation = pd.read_csv(study / "representation.csv")
    # joint's ten classes, and the seen classes after each task of the five multi-task runs
    assert len(representation) == 10 + (2 + 4 + 6 + 8 + 10) * 5
    for name in ("l1_sweep", "weight_decay_sweep", "eval_loss_comparison"):
        png_shape(study / f"{name}.png")


def test_figure_and_report_jobs_never_import_torch(tiny_run):
    import subprocess
    import sys

    from conftest import REPO

    # Import every module the figure and report scripts use, and check torch stayed out.
    code = (
        "import sys; sys.path.insert(0, 'src');"
        "import clexp.figures, clexp.report, clexp.summary, clexp.study, clexp.files,"
        " clexp.comparisons, clexp.findings,"
        " clexp.threads, clexp.joblog, clexp.analysis, clexp.metrics;"
        "from clexp.threads import limit_threads; limit_threads(1, torch_too=False);"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"
    for script in ("plot_checkpoint", "plot_run", "plot_run_tasks", "plot_study", "summarize",
                   "report", "checkpoint_table", "plot_comparisons", "findings"):
        text = (REPO / "workflow/scripts" / f"{script}.py").read_text()
        assert "import torch" not in text and "clexp.training" not in text
