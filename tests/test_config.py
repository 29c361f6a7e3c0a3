import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from clexp.config import (
    SCHEMA_PATH,
    check_config,
    config_hash,
    resolve_experiment,
    selected_experiments,
    training_config,
    validate_config,
)
from clexp.errors import ConfigError

from conftest import REPO

STUDY = yaml.safe_load((REPO / "config.yaml").read_text())


def validated(config):
    config = copy.deepcopy(config)
    validate_config(config)
    validate(config, str(SCHEMA_PATH))
    check_config(config)
    return config


def test_the_shipped_config_is_valid():
    config = validated(STUDY)
    assert config["tasks"] == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]
    assert {"joint", "joint_bn", "seq", "seq_bn"} <= set(config["experiments"])


def test_schema_fills_top_level_defaults():
    config = validated({"defaults": {}, "experiments": {"seq": {}}})
    assert config["data_root"] == "data" and config["download"] is True
    assert config["dataset"] == "mnist" and config["seeds"] == [0]
    assert config["probe"]["train_images_per_class"] == 1000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(learning_rate=0.1),
         r"\(top level\): unknown key\(s\) 'learning_rate'; allowed keys: analysis, data_root"),
        (lambda c: c["defaults"].update(lr="fast"), r"defaults.lr: expected number, got str"),
        (lambda c: c["experiments"]["seq"].update(optimiser="adamw"),
         r"experiments.seq: unknown key\(s\) 'optimiser'; allowed keys: .*optimizer"),
        (lambda c: c.update(dataset="cifar10"),
         r"dataset: 'cifar10' is not allowed; allowed values: \['mnist', 'fashion_mnist'\]"),
        (lambda c: c.update(device="tpu"), r"device: 'tpu' is not allowed"),
        (lambda c: c["defaults"].update(norm="group"), r"defaults.norm: 'group' is not allowed"),
        (lambda c: c["experiments"]["seq"].update(lr=-0.1),
         r"experiments.seq.lr: -0.1 is out of range; allowed values are > 0"),
        (lambda c: c["experiments"]["seq"].update(stop_at_train_acc=1.5),
         r"experiments.seq.stop_at_train_acc: 1.5 is out of range; allowed values are <= 1"),
        (lambda c: c["experiments"]["seq"].update(max_epochs=0),
         r"experiments.seq.max_epochs: 0 is out of range; allowed values are >= 1"),
        (lambda c: c.update(tasks=[[1, 2], []]), r"tasks.1: must not be empty"),
        (lambda c: c.update(tasks=[[1, 12]]), r"tasks.0.1: 12 is out of range"),
        (lambda c: c.update(seeds="0"), r"seeds: expected array, got str"),
    ],
)
def test_schema_errors_name_the_key_path_and_the_allowed_values(change, message):
    config = copy.deepcopy(STUDY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)
    with pytest.raises(WorkflowError):  # Snakemake's own validation agrees
        validate(config, str(SCHEMA_PATH))


def test_every_schema_error_is_listed_at_once():
    config = copy.deepcopy(STUDY)
    config["device"] = "tpu"
    config["defaults"]["lr"] = "fast"
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "device:" in str(error.value) and "defaults.lr:" in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(tasks=[[1, 2], [2, 3]]),
         r"tasks: class 2 appears in task 1 and in task 2"),
        (lambda c: c.update(selected_experiments=["nope"]), r"selected_experiments: unknown"),
        (lambda c: c["experiments"]["seq"].update(tasks=[[1], [1]]),
         r"experiments.seq.tasks: class 1 appears"),
    ],
)
def test_check_config_rejects_inconsistent_values(change, message):
    config = validated(STUDY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_resolve_experiment_merges_overrides_over_defaults():
    config = validated(STUDY)
    seq_bn = resolve_experiment(config, "seq_bn")
    assert seq_bn["norm"] == "batch" and seq_bn["lr"] == config["defaults"]["lr"]
    assert seq_bn["tasks"] == config["tasks"] and seq_bn["name"] == "seq_bn"
    joint = resolve_experiment(config, "joint")
    assert joint["tasks"] == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 0]]


def test_selected_experiments_defaults_to_all():
    config = validated(STUDY)
    assert selected_experiments(config) == list(config["experiments"])
    config["selected_experiments"] = ["seq"]
    assert selected_experiments(config) == ["seq"]


def test_config_hash_ignores_evaluation_options_and_key_order():
    config = validated(STUDY)
    run = resolve_experiment(config, "seq")
    reordered = dict(reversed(list(training_config(run).items())))
    assert config_hash(training_config(run)) == config_hash(reordered)
    probed = dict(run, probe_unseen=[9, 0])
    assert config_hash(training_config(probed)) == config_hash(training_config(run))
    assert config_hash(training_config(dict(run, lr=0.5))) != config_hash(training_config(run))
