"""Choosing settings on the validation split (clexp.tuning): grids, the split, the selection,
the filled settings, and one tuned experiment of the tiny study end to end."""

from __future__ import annotations

import copy
import json
import struct

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from snakemake.utils import validate

from clexp import training
from clexp.config import (
    SCHEMA_PATH,
    check_config,
    config_hash,
    normalize_config,
    resolve_experiment,
    training_config,
    validate_config,
)
from clexp.errors import ConfigError
from clexp.evaluation import measure_network
from clexp.figures import plot_tuning_sweep
from clexp.files import write_csv
from clexp.tuning import (
    expand_grid,
    format_value,
    grid_points,
    selection_table,
    sweep_series,
    train_point,
    validation_data,
    validation_indices,
    with_selection,
)

from conftest import REPO, make_project, require_data, snakemake, tiny_config
from helpers import run_settings, synthetic_arrays

STUDY = yaml.safe_load((REPO / "config.yaml").read_text())


def checked(config):
    """`config` as the workflow reads it: typed, validated, defaults filled, checked."""
    config = normalize_config(copy.deepcopy(config))
    validate_config(config)
    validate(config, str(SCHEMA_PATH))
    check_config(config)
    return config


def with_experiment(**entries):
    config = copy.deepcopy(STUDY)
    config["experiments"].update(entries)
    return config


# ---- grids and their names ----

@pytest.mark.parametrize(("value", "text"), [
    (1e6, "1e6"), (1e-3, "0.001"), (0.0001, "1e-4"), (100, "100"), (True, "true"),
    (1e4, "1e4"), (1000, "1000"), (0.01, "0.01"), (1.0, "1"), (2.5e-5, "2.5e-5"),
    (10**10, "1e10"), (0.9, "0.9"), (False, "false"), ("batch", "batch"),
])
def test_grid_values_are_named_as_documented(value, text):
    assert format_value(value) == text


def test_a_grid_of_two_settings_is_their_product_in_the_order_written():
    config = checked(with_experiment(x={"method": "ewc", "ewc_online": True, "tune": {
        "ewc_lambda": ["1e4", 1e6], "ewc_gamma": [0.9, 1.0]}}))
    points = expand_grid(config, "x")
    assert list(points) == ["ewc_lambda-1e4__ewc_gamma-0.9", "ewc_lambda-1e4__ewc_gamma-1",
                            "ewc_lambda-1e6__ewc_gamma-0.9", "ewc_lambda-1e6__ewc_gamma-1"]
    point = points["ewc_lambda-1e6__ewc_gamma-0.9"]
    assert point["ewc_lambda"] == 1e6 and point["ewc_gamma"] == 0.9
    assert point["name"] == "x.ewc_lambda-1e6__ewc_gamma-0.9"
    assert "tune" not in point and "tuned" not in point
    # the point is the experiment with those values: the same settings otherwise
    plain = checked(with_experiment(x={"method": "ewc", "ewc_online": True,
                                       "ewc_lambda": 1e6, "ewc_gamma": 0.9}))
    assert point == dict(resolve_experiment(plain, "x"), name=point["name"])


def test_the_study_grids_expand_to_the_documented_points():
    config = checked(STUDY)
    sizes = {name: len(expand_grid(config, name)) for name in
             ("class_ewc", "class_online_ewc", "class_si", "class_lwf")}
    assert sizes == {"class_ewc": 11, "class_online_ewc": 18, "class_si": 7, "class_lwf": 5}
    assert list(expand_grid(config, "class_si")) == [
        "si_c-0.01", "si_c-0.1", "si_c-1", "si_c-10", "si_c-100", "si_c-1000", "si_c-1e4"]
    assert "ewc_lambda-1e10" in expand_grid(config, "class_ewc")


def test_tune_is_inherited_through_base_and_can_be_switched_off():
    config = checked(with_experiment(derived={"base": "class_si", "norm": "batch"},
                                     untuned={"base": "class_si", "tune": None, "si_c": 2.0}))
    assert list(expand_grid(config, "derived")) == list(expand_grid(config, "class_si"))
    assert expand_grid(config, "derived")["si_c-1"]["norm"] == "batch"
    assert expand_grid(config, "untuned") == {}
    assert "tuned" not in resolve_experiment(config, "untuned")


@pytest.mark.parametrize(("tune", "message"), [
    ({"ewc_lamda": [1, 2]}, r"experiments.bad.tune: unknown setting 'ewc_lamda'; tunable"),
    ({"ewc_lambda": [1]}, r"experiments.bad.tune.ewc_lambda: needs at least 2 items, got 1"),
    ({"ewc_lambda": [1, "big"]}, r"experiments.bad.tune.ewc_lambda\[1\]: expected number, got "
                                 r"str 'big'"),
    ({"ewc_lambda": [1, -1]}, r"experiments.bad.tune.ewc_lambda\[1\]: -1 is out of range"),
    ({"batch_size": [32, 64.5]}, r"experiments.bad.tune.batch_size\[1\]: expected integer"),
    ({"tsne_h1": [True, False]}, r"experiments.bad.tune.tsne_h1: cannot be tuned"),
    ({"tasks": [[[1, 2]], [[3, 4]]]}, r"experiments.bad.tune.tasks: cannot be tuned"),
    ({"si_c": [1, 2]}, r"experiments.bad.si_c: an option of method si"),
    ({"ewc_lambda": [0, 1]}, r"experiments.bad\[tune point ewc_lambda-0\].ewc_lambda: 0 turns "
                             r"ewc off"),
])
def test_a_bad_grid_is_rejected_naming_the_key(tune, message):
    with pytest.raises(ConfigError, match=message):
        checked(with_experiment(bad={"method": "ewc", "tune": tune}))


def test_a_setting_both_set_and_tuned_is_rejected():
    with pytest.raises(ConfigError, match=r"experiments.bad.ewc_lambda: is both set"):
        checked(with_experiment(bad={"method": "ewc", "ewc_lambda": 5, "tune": {
            "ewc_lambda": [1, 2]}}))


def test_a_bad_validation_fraction_is_rejected():
    config = copy.deepcopy(STUDY)
    config["tuning"]["validation_fraction"] = 0.6
    with pytest.raises(ConfigError, match=r"tuning.validation_fraction: 0.6 is out of range"):
        checked(config)


# ---- the selection ----

GRID = {"si_c": [0.1, 1, 10]}


def test_the_selection_takes_the_best_mean_and_the_first_point_on_a_tie():
    results = {"si_c-0.1": {0: 0.5, 1: 0.7}, "si_c-1": {0: 0.6, 1: 0.65},
               "si_c-10": {0: 0.7, 1: 0.5}}
    table = selection_table(GRID, results)
    assert list(table["point"]) == ["si_c-0.1", "si_c-1", "si_c-10"]
    assert list(table.columns) == ["point", "si_c", "acc_seed0", "acc_seed1", "mean", "chosen",
                                   "at_edge"]
    assert list(table["chosen"]) == [False, True, False]  # 0.625 beats two 0.6
    assert list(table["at_edge"]) == ["", "", ""]
    tie = selection_table(GRID, {"si_c-0.1": {0: 0.5}, "si_c-1": {0: 0.7}, "si_c-10": {0: 0.7}})
    assert list(tie["chosen"]) == [False, True, False]


def test_a_chosen_point_at_the_edge_of_the_grid_names_the_setting():
    grid = {"ewc_lambda": [1, 100, 1e4], "ewc_gamma": [0.5, 0.9, 1.0]}
    points = list(grid_points(grid))
    results = {p: {0: 0.1} for p in points}
    results["ewc_lambda-100__ewc_gamma-1"] = {0: 0.9}
    table = selection_table(grid, results).set_index("point")
    assert table.loc["ewc_lambda-100__ewc_gamma-1", "at_edge"] == "ewc_gamma"
    results["ewc_lambda-100__ewc_gamma-1"] = {0: 0.1}
    results["ewc_lambda-1e4__ewc_gamma-0.5"] = {0: 0.9}
    table = selection_table(grid, results).set_index("point")
    assert table.loc["ewc_lambda-1e4__ewc_gamma-0.5", "at_edge"] == "ewc_lambda;ewc_gamma"
    assert table["chosen"].sum() == 1


def test_the_sweep_figure_draws_one_line_per_value_of_the_second_setting(tmp_path):
    grid = {"ewc_lambda": [1, 100, 1e4], "ewc_gamma": [0.5, 1.0]}
    results = {p: {0: 0.1 * i} for i, p in enumerate(grid_points(grid))}
    table = selection_table(grid, results)
    path = tmp_path / "sweep.png"
    data = plot_tuning_sweep(table, "test", path)
    assert data["x"] == "ewc_lambda" and data["log_x"]
    assert list(data["series"]) == ["ewc_gamma = 0.5", "ewc_gamma = 1"]
    assert all(len(xs) == 3 and len(ys) == 3 for xs, ys in data["series"].values())
    assert data["chosen"] == (1e4, pytest.approx(0.5))
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (7 * 80, 4 * 80)
    one = sweep_series(selection_table({"lwf_alpha": [1, 2]}, {"lwf_alpha-1": {0: 0.2},
                                                               "lwf_alpha-2": {0: 0.3}}))
    assert list(one["series"]) == ["validation ACC"] and not one["log_x"]


# ---- the tuned experiment's settings ----

def test_the_tuned_experiment_holds_placeholders_and_its_selection_fills_them(tmp_path):
    config = checked(STUDY)
    run = resolve_experiment(config, "class_online_ewc")
    assert run["ewc_lambda"] is None and run["ewc_gamma"] is None
    assert run["tuned"] == {"settings": ["ewc_lambda", "ewc_gamma"],
                            "selection": "results/tuning/class_online_ewc/selection.csv",
                            "grid": {"ewc_lambda": [1, 100, 1e4, 1e6, 1e8, 1e10],
                                     "ewc_gamma": [0.5, 0.9, 1.0]}}
    results = {p: {0: 0.2} for p in grid_points(run["tuned"]["grid"])}
    results["ewc_lambda-1e4__ewc_gamma-0.9"] = {0: 0.3}
    write_csv(selection_table(run["tuned"]["grid"], results), tmp_path / run["tuned"]["selection"])
    filled = with_selection(run, tmp_path)
    assert filled["ewc_lambda"] == 1e4 and filled["ewc_gamma"] == 0.9
    assert filled["tuned"]["chosen"] == "ewc_lambda-1e4__ewc_gamma-0.9"
    assert {k: v for k, v in filled.items() if k not in ("tuned", "ewc_lambda", "ewc_gamma")} \
        == {k: v for k, v in run.items() if k not in ("tuned", "ewc_lambda", "ewc_gamma")}
    assert with_selection(filled, tmp_path) == filled
    # a different grid: a different config hash, even at the same chosen values
    other = copy.deepcopy(run)
    other["tuned"]["grid"]["ewc_gamma"] = [0.9, 1.0]
    assert config_hash(training_config(other)) != config_hash(training_config(run))


def test_a_missing_or_stale_selection_is_reported(tmp_path):
    run = resolve_experiment(checked(STUDY), "class_si")
    with pytest.raises(ConfigError, match=r"the selection of experiment class_si is missing"):
        with_selection(run, tmp_path)
    results = {"si_c-0.5": {0: 0.5}, "si_c-1": {0: 0.1}}
    write_csv(selection_table({"si_c": [0.5, 1]}, results), tmp_path / run["tuned"]["selection"])
    with pytest.raises(ConfigError, match=r"chosen point 'si_c-0.5' is not in the grid"):
        with_selection(run, tmp_path)


def test_untuned_experiments_keep_their_settings_and_hashes():
    """The settings hashes of every experiment as resolved before tuning existed."""
    recorded = json.loads((REPO / "tests/configs/resolved_settings_hashes.json").read_text())
    config = checked(STUDY)
    assert len(recorded) == 40 and set(recorded) <= set(config["experiments"])
    for name, expected in recorded.items():
        run = resolve_experiment(config, name)
        assert config_hash(run) == expected, name
        assert "tune" not in run and "tuned" not in run
        assert with_selection(run) is run


# ---- the validation split never trains a grid point nor scores a reported number ----

def unique_dataset() -> dict:
    """Synthetic data whose every image is unique: its index in pixels 0-1, its split in
    pixel 2 (0: training, 1: evaluation)."""
    data = synthetic_arrays(per_class=30, eval_per_class=10)
    for split, mark in (("train", 0), ("eval", 1)):
        images = data[f"{split}_images"]
        index = np.arange(len(images))
        images[:, 0], images[:, 1], images[:, 2] = index % 256, index // 256, mark
    return data


def image_ids(images: np.ndarray) -> set[tuple[int, int]]:
    """(split mark, index) of each uint8 image."""
    index = images[:, 0].astype(int) + 256 * images[:, 1].astype(int)
    return set(zip(images[:, 2].astype(int).tolist(), index.tolist(), strict=True))


def test_validation_images_never_enter_a_training_batch(monkeypatch):
    data = unique_dataset()
    split = validation_data(data, 0.1, seed=0)
    held_out = validation_indices(data["train_labels"], 0.1, 0)
    assert len(held_out) == 30 and np.all(np.bincount(data["train_labels"][held_out]) == 3)
    assert np.array_equal(held_out, validation_indices(data["train_labels"], 0.1, 0))
    assert not np.array_equal(held_out, validation_indices(data["train_labels"], 0.1, 1))
    validation = image_ids(split["eval_images"])
    assert len(validation) == 30 and all(mark == 0 for mark, _ in validation)
    assert not validation & image_ids(data["eval_images"])  # disjoint from the eval split
    assert not validation & image_ids(split["train_images"])

    batches = []
    build_model = training.build_model

    def recording_model(run):
        model = build_model(run)

        def record(module, inputs):
            if module.training and torch.is_grad_enabled():
                pixels = torch.round(inputs[0][:, :3] * 255).to(torch.int64).numpy()
                batches.append(pixels.astype(np.uint8))

        model.register_forward_pre_hook(record)
        return model

    monkeypatch.setattr(training, "build_model", recording_model)
    settings = run_settings("x.si_c-1", tasks=[[0, 1], [2, 3]], epochs=1, batch_size=16,
                            method="si", si_c=1.0, si_xi=0.001)
    result = train_point(settings, {"si_c": 1.0}, 0, split, device="cpu")
    trained = image_ids(np.concatenate(batches))
    assert trained and not trained & validation
    assert trained <= image_ids(split["train_images"])
    assert result["validation_images"] == 30 and len(result["per_task_acc"]) == 2
    assert result["acc"] == pytest.approx(np.mean(result["per_task_acc"]))
    again = train_point(settings, {"si_c": 1.0}, 0, split, device="cpu")
    assert again["per_task_acc"] == result["per_task_acc"]  # same settings and seed


def test_reported_accuracies_do_not_read_the_validation_images():
    data = unique_dataset()
    run = run_settings("seq", tasks=[[0, 1], [2, 3]])
    torch.manual_seed(0)
    model = training.build_model(run)
    noisy = copy.deepcopy(data)
    held_out = validation_indices(data["train_labels"], 0.1, 0)
    noisy["train_images"][held_out] = np.random.default_rng(1).integers(
        0, 256, size=(len(held_out), 784), dtype=np.uint8)
    probe = {"train_images_per_class": 5, "max_iter": 50}
    target = torch.device("cpu")
    clean, _ = measure_network(model, run, 0, 2, data, probe, target, False)
    changed, _ = measure_network(model, run, 0, 2, noisy, probe, target, False)
    for key in ("val_acc", "val_loss", "per_class_acc", "per_task_acc", "per_task_acc_til"):
        assert clean[key] == changed[key], key


# ---- end to end: the tiny study's tuned experiment ----

@pytest.mark.slow
def test_the_tiny_tuned_experiment_trains_at_its_chosen_value(tmp_path):
    require_data()
    project = make_project(tmp_path / "project", tiny_config(selected_experiments=["class_si"]))
    last = "results/class_si/seed0/task5/checkpoint.pt"
    result = snakemake(project, last, "results/class_si/seed0/task5/metrics.json")
    assert result.returncode == 0, result.stdout + result.stderr
    table = pd.read_csv(project / "results/tuning/class_si/selection.csv")
    assert list(table["point"]) == ["si_c-0.1", "si_c-100"] and table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    for point in table["point"]:
        record = json.loads((project / f"results/tuning/class_si/{point}/seed0/validation.json")
                            .read_text())
        assert record["validation_images"] == 500 and record["training_images"] == 4500
    state = torch.load(project / last, weights_only=False)
    assert state["run"]["si_c"] == chosen["si_c"]
    assert state["run"]["tuned"]["chosen"] == chosen["point"]
    assert state["config_hash"] == config_hash(state["run"])
    assert (project / "results/tuning/class_si/sweep.png").stat().st_size > 1000
