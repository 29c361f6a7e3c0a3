import copy

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from clexp.config import (
    SCHEMA_PATH,
    check_config,
    check_device,
    config_hash,
    normalize_config,
    resolve_experiment,
    selected_experiments,
    training_config,
    validate_config,
)
from clexp.errors import ConfigError

from conftest import REPO, make_project, snakemake, tiny_config

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
    assert config["dataset"] == "mnist" and config["seeds"] == [0, 1, 2]
    assert config["probe"]["train_images_per_class"] == 1000


def test_a_partial_section_gets_the_defaults_of_the_keys_it_leaves_out():
    config = validated({
        "defaults": {}, "experiments": {"seq": {}},
        "analysis": {"tsne_images": 300}, "probe": {"max_iter": 50},
        "data_subset": {"train_images_per_class": 20},
    })
    shipped = validated({"defaults": {}, "experiments": {"seq": {}}})
    assert config["analysis"] == dict(shipped["analysis"], tsne_images=300)
    assert config["probe"] == dict(shipped["probe"], max_iter=50)
    assert config["data_subset"] == {"train_images_per_class": 20, "eval_images_per_class": None}


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


STUDY_EXPERIMENTS = """
joint joint_bn seq seq_bn seq_ln seq_dropout05 seq_dropout02 seq_wd001 seq_wd01 seq_wd1 seq_wd5
joint_l1_0001 joint_l1_01 joint_l1_1 joint_l1_2 seq_l1_1 seq_bn_l1_1 seq_bn_dropout02
seq_bn_dropout02_l1_1 seq_bn_order38 seq_bn_order14 ogd_sgd ogd_adam ogd_sgd_bn ogd_adam_bn
ogd_adam_bn_l1_1 ogd_adam_bn_dropout02 ogd_sgd_bn_t095 ogd_sgd_bn_t095_l1_5
ogd_sgd_bn_t095_dropout02 ogd_sgd_bn_t095_dropout02_l1_5
""".split()


def test_the_study_defines_its_experiments_as_specified():
    config = validated(STUDY)
    assert list(config["experiments"])[: len(STUDY_EXPERIMENTS)] == STUDY_EXPERIMENTS
    runs = {name: resolve_experiment(config, name) for name in STUDY_EXPERIMENTS}
    for name in ("seq_bn_order38", "seq_bn_order14"):
        assert runs[name]["tasks"][0] == ([3, 8] if name.endswith("38") else [1, 4])
        assert runs[name]["tasks"][-1] == [9, 0]
        assert runs[name]["probe_unseen"] == [9, 0]
    assert runs["seq_bn"]["probe_unseen"] == [9, 0]
    for name, run in runs.items():
        if name.startswith("ogd"):
            assert run["ogd"] and run["lr_factor_after_first_task"] == 0.2
            assert run["max_epochs"] == 30
            assert run["stop_at_train_acc"] == (0.95 if "t095" in name else 0.98)
            if run["optimizer"] == "sgd":
                assert run["lr"] == 1e-3 and run["momentum"] == 0.0
            else:
                assert run["lr"] == 1e-4
            assert run["norm"] == ("batch" if "_bn" in name else "none")
    assert [runs[f"joint_l1_{s}"]["l1_activation"] for s in ("0001", "01", "1", "2")] == [
        0.001, 0.1, 1.0, 2.0]
    sweep = ("001", "01", "1", "5")
    assert [runs[f"seq_wd{s}"]["weight_decay"] for s in sweep] == [0.01, 0.1, 1.0, 5.0]
    assert all(runs[f"seq_wd{s}"]["stop_at_train_acc"] == 0.98 for s in sweep)


def test_every_forward_transfer_experiment_also_probes_all_classes():
    config = validated(STUDY)
    runs = {name: resolve_experiment(config, name) for name in config["experiments"]}
    probed = [name for name, run in runs.items() if run["probe_unseen"]]
    assert probed == ["seq_bn", "seq_bn_order38", "seq_bn_order14"]
    assert all(runs[name]["probe_all_classes"] for name in probed)


def test_the_weight_decay_sweep_is_one_protocol_of_the_study():
    from clexp.study import weight_decay_sweep_experiments

    config = validated(STUDY)
    settings = {name: training_config(resolve_experiment(config, name))
                for name in config["experiments"]}
    assert weight_decay_sweep_experiments(settings) == [
        "seq_wd001", "seq_wd01", "seq_wd1", "seq_wd5"]


# ---- values that used to pass the schema and then lied or crashed inside a job ----


@pytest.mark.parametrize("key", ["l1_activation", "dropout", "stop_at_train_acc", "lr",
                                 "weight_decay", "momentum"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected_naming_the_key(key, value):
    config = copy.deepcopy(STUDY)
    config["experiments"]["seq"][key] = value
    with pytest.raises(ConfigError, match=rf"experiments.seq.{key}: -?(nan|inf) is not a finite"):
        validate_config(config)


def test_a_nan_read_from_yaml_is_rejected():
    config = yaml.safe_load("defaults: {l1_activation: .nan}\nexperiments: {seq: {}}\n")
    with pytest.raises(ConfigError, match=r"defaults.l1_activation: nan is not a finite"):
        validate_config(config)


def test_existing_experiments_keep_their_resolved_settings_and_config_hash():
    """The hashes were recorded before `base`, `method` and the method options existed: the
    rewritten config (OGD block with `base`) resolves every earlier experiment identically, so
    its checkpoints stay valid."""
    import json

    recorded = json.loads((REPO / "tests" / "configs" / "study_config_hashes.json").read_text())
    config = validated(STUDY)
    assert len(recorded) == 30
    for name, expected in recorded.items():
        run = resolve_experiment(config, name)
        assert config_hash(training_config(run)) == expected, name
        assert "method" not in run and "base" not in run and "ogd_project" not in run


def test_base_inherits_the_named_experiment_and_overrides_it():
    config = validated(STUDY)
    config["experiments"]["variant"] = {"base": "ogd_adam_bn", "dropout": 0.2}
    variant = resolve_experiment(config, "variant")
    expected = dict(resolve_experiment(config, "ogd_adam_bn"), dropout=0.2, name="variant")
    assert variant == expected
    assert resolve_experiment(config, "ogd_sgd_bn_t095_l1_5")["optimizer"] == "sgd"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["defaults"].update(epochs=2.0),
         r"defaults.epochs: expected integer, got float 2.0; write it without a decimal point"),
        (lambda c: c.update(data_subset={"train_images_per_class": 50.0}),
         r"data_subset.train_images_per_class: expected integer, got float 50.0"),
        (lambda c: c.update(seeds=[0.0]), r"seeds.0: expected integer, got float 0.0"),
        (lambda c: c["experiments"]["seq"].update(batch_size=64.0),
         r"experiments.seq.batch_size: expected integer"),
        (lambda c: c.update(tasks=[[1.0, 2]]), r"tasks.0.0: expected integer"),
    ],
)
def test_whole_number_floats_are_rejected_where_an_integer_is_expected(change, message):
    config = copy.deepcopy(STUDY)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "-rf", "a/b", ""])
def test_experiment_names_are_safe_folder_names(name):
    config = copy.deepcopy(STUDY)
    config["experiments"][name] = {}
    with pytest.raises(ConfigError, match=r"experiments: .* is not a valid name"):
        validate_config(config)


def test_experiment_names_with_dots_inside_are_fine():
    config = copy.deepcopy(STUDY)
    config["experiments"]["seq.v2"] = {}
    validate_config(config)


# ---- strings from the command line get the type the schema gives their key ----


@pytest.mark.parametrize(
    ("text", "value"),
    [("false", False), ("False", False), ("FALSE", False), ("no", False), ("off", False),
     ("true", True), ("True", True), ("yes", True), ("On", True)],
)
def test_boolean_spellings_become_booleans_for_boolean_keys(text, value):
    config = copy.deepcopy(STUDY)
    config.update(download=text, job_server=text)
    config["experiments"]["seq"]["ogd"] = text
    normalize_config(config)
    assert config["download"] is value and config["job_server"] is value
    assert config["experiments"]["seq"]["ogd"] is value
    validate_config(config)


def test_only_boolean_keys_are_converted_and_other_strings_still_fail():
    config = copy.deepcopy(STUDY)
    config.update(download="maybe", data_root="no", dataset="off")
    normalize_config(config)
    assert config["data_root"] == "no" and config["dataset"] == "off"  # strings stay strings
    with pytest.raises(ConfigError, match=r"download: expected boolean, got str 'maybe'"):
        validate_config(config)


def test_number_strings_from_nested_command_line_values_become_numbers():
    # --config 'data_subset={train_images_per_class: 50}' arrives as strings (YAML BaseLoader)
    config = copy.deepcopy(STUDY)
    config["data_subset"] = {"train_images_per_class": "50", "eval_images_per_class": "10"}
    config["defaults"]["lr"] = "1e-3"  # PyYAML reads 1e-3 (no dot) as a string
    normalize_config(config)
    assert config["data_subset"]["train_images_per_class"] == 50
    assert config["defaults"]["lr"] == 0.001
    config["defaults"]["epochs"] = "2.5"  # a number, not a whole one: the schema says so
    normalize_config(config)
    with pytest.raises(ConfigError, match=r"defaults.epochs: expected integer, got the number "
                                          r"2.5; give a whole number"):
        validate_config(config)


def test_a_number_typed_where_an_integer_belongs_is_called_a_number(tmp_path):
    project = make_project(tmp_path / "project", tiny_config())
    result = snakemake(project, "-n", "--config", "seeds=[0.5]")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "seeds.0: expected integer, got the number 0.5; give a whole number" in output
    assert "got str" not in output


def test_device_cuda_without_cuda_is_rejected_naming_the_key(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device({"device": "auto"})
    with pytest.raises(ConfigError, match=r"device: 'cuda' is set, but torch finds no CUDA"):
        check_device({"device": "cuda"})


def test_command_line_false_reaches_the_workflow_as_a_boolean(tmp_path):
    project = make_project(tmp_path / "project", tiny_config())
    with open(project / "Snakefile", "a") as snakefile:  # show what the rules see
        snakefile.write('\nprint("SEEN", repr(config["download"]), repr(config["job_server"]))\n')
    result = snakemake(project, "-n", "--config", "download=false", "job_server=Off")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SEEN False False" in result.stdout + result.stderr
    result = snakemake(project, "-n", "--config", "download=maybe")
    assert result.returncode != 0
    assert "download: expected boolean, got str 'maybe'" in result.stdout + result.stderr


def test_a_workflow_with_device_cuda_stops_before_any_job_where_there_is_no_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    project = make_project(tmp_path / "project", tiny_config())
    # (checked when the DAG is built, where Snakemake knows that the jobs run on this machine)
    result = snakemake(project, "--config", "device=cuda")
    assert result.returncode != 0
    assert "device: 'cuda' is set, but torch finds no CUDA device" in result.stdout + result.stderr
    assert not (project / "results").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(a={"base": "nope"}), r"experiments.a.base: unknown experiment 'nope'"),
        (lambda e: e.update(a={"base": "b"}, b={"base": "a"}),
         r"experiments.\w.base: the bases form a cycle"),
        (lambda e: e.update(a={"method": "ewc", "si_c": 2.0}),
         r"experiments.a.si_c: an option of method si, but this experiment's method is ewc"),
        (lambda e: e.update(a={"ogd": True, "method": "er"}),
         r"experiments.a: `ogd: true` and `method: er` name two methods"),
    ],
)
def test_bad_bases_and_method_options_are_named(change, message):
    config = validated(STUDY)
    change(config["experiments"])
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_base_is_not_allowed_in_defaults():
    config = validated(STUDY)
    config["defaults"]["base"] = "seq"
    with pytest.raises(ConfigError, match="defaults.base"):
        check_config(config)


def test_method_options_get_their_defaults_and_are_checked_by_the_schema():
    from clexp.methods.registry import METHODS

    config = validated(STUDY)
    config["experiments"]["e"] = {"method": "ewc", "ewc_lambda": 7.0}
    config["experiments"]["o"] = {"method": "ogd"}
    run = resolve_experiment(config, "e")
    assert run["method"] == "ewc" and run["ewc_lambda"] == 7.0
    assert run["ewc_gamma"] == METHODS["ewc"].options["ewc_gamma"]
    assert "si_c" not in run and "buffer_size" not in run
    # method: ogd is ogd: true, with the same hash as before the key existed
    assert resolve_experiment(config, "o")["ogd"] is True
    assert "method" not in resolve_experiment(config, "o")
    bad = copy.deepcopy(STUDY)
    bad["experiments"]["e"] = {"method": "ewc", "ewc_lambda": -1}
    with pytest.raises(ConfigError, match=r"experiments.e.ewc_lambda: -1 is out of range"):
        validate_config(bad)
    bad["experiments"]["e"] = {"method": "gem"}
    with pytest.raises(ConfigError, match=r"experiments.e.method: 'gem' is not allowed"):
        validate_config(bad)


def test_method_runs_stay_out_of_the_intervention_comparisons():
    from clexp.study import eval_loss_groups

    config = validated(STUDY)
    config["experiments"]["er_bn"] = {"method": "er", "norm": "batch"}
    config["experiments"]["ewc"] = {"method": "ewc"}
    settings = {name: resolve_experiment(config, name) for name in config["experiments"]}
    groups = eval_loss_groups(settings)
    assert groups["seq"] == "plain" and groups["seq_bn"] == "BN"
    assert groups["ogd_adam_bn"] == "OGD + BN"
    for name in ("er_bn", "ewc", "ogd_adam_bn_step", "ogd_adam_bn_reset"):
        assert name not in groups


def test_the_study_has_the_baselines_with_the_protocol_of_seq():
    config = validated(STUDY)
    seq = resolve_experiment(config, "seq")
    expected = {"ewc": "ewc", "online_ewc": "ewc", "si": "si", "lwf": "lwf", "er": "er",
                "agem": "agem", "er_bn": "er"}
    for name, method in expected.items():
        run = resolve_experiment(config, name)
        assert run["method"] == method
        for key in ("optimizer", "lr", "epochs", "batch_size", "weight_decay",
                    "stop_at_train_acc", "tasks", "dropout", "l1_activation"):
            assert run[key] == seq[key], (name, key)
        assert run["norm"] == ("batch" if name == "er_bn" else "none")
    assert resolve_experiment(config, "online_ewc")["ewc_online"] is True
    assert resolve_experiment(config, "ewc")["ewc_online"] is False
    assert resolve_experiment(config, "er")["buffer_size"] == 500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(a={"method": "ewc", "ewc_gamma": 0}),
         r"experiments.a.ewc_gamma: 0 decays online EWC's running Fisher and acts only with "
         r"ewc_online: true; remove it."),
        (lambda e: e.update(a={"probe_unseen": [1]}),
         r"experiments.a.probe_unseen: class\(es\) \[1\] are trained in the first task"),
        (lambda e: e.update(a={"probe_unseen": [9]}),
         r"experiments.a.probe_unseen: \[9\] names one class; a probe separates at least two"),
        (lambda e: e.update(a={"joint": True, "probe_unseen": [9, 0]}),
         r"experiments.a.probe_unseen: class\(es\) \[0, 9\] are trained in the first task"),
        (lambda e: e.update(a={"momentum": 0.9}),
         r"experiments.a.momentum: 0.9 acts only with optimizer: sgd"),
        (lambda e: e.update(a={"max_epochs": 10}),
         r"experiments.a.max_epochs: 10 acts only with stop_at_train_acc"),
        (lambda e: e.update(a={"stop_at_train_acc": 0.9, "epochs": 3}),
         r"experiments.a.epochs: 3 is not used with stop_at_train_acc"),
        (lambda e: e.update(a={"joint": True, "lr_factor_after_first_task": 0.2}),
         r"experiments.a.lr_factor_after_first_task: 0.2 acts from the second task on"),
        (lambda e: e.update(a={"joint": True, "reset_optimizer": True}),
         r"experiments.a.reset_optimizer: True acts from the second task on"),
        (lambda e: e.update(a={"joint": True, "method": "ewc"}),
         r"experiments.a.method: ewc acts between tasks, and this experiment trains one task"),
        (lambda e: e.update(a={"tasks": [[1, 2]], "ogd": True}),
         r"experiments.a.ogd: ogd acts between tasks"),
        (lambda e: e.update(a={"method": "si", "si_c": 0}),
         r"experiments.a.si_c: 0 turns si off \(it trains as method: naive\)"),
        (lambda e: e.update(a={"method": "agem", "buffer_size": 100, "agem_sample_size": 200}),
         r"experiments.a.agem_sample_size: 200 is more than buffer_size \(100\)"),
        (lambda e: e.update(a={"iterations": 100, "stop_at_train_acc": 0.9}),
         r"experiments.a.stop_at_train_acc: 0.9 stops a task after an epoch, and iterations "
         r"\(100\) trains a fixed number of optimizer steps per task"),
        (lambda e: e.update(a={"iterations": 100, "epochs": 3}),
         r"experiments.a.epochs: 3 is not used with iterations \(100 optimizer steps"),
        (lambda e: e.update(a={"optimizer": "adam"}),
         r"experiments.a.weight_decay: 0.01 \(set in defaults\) with optimizer: adam would "
         r"be torch's Adam weight decay, an L2 penalty"),
        (lambda e: e.update(a={"optimizer": "adam", "weight_decay": 0.1}),
         r"experiments.a.weight_decay: 0.1 with optimizer: adam"),
        (lambda e: e.update(a={"method": "lwf", "lwf_weighting": "paper", "lwf_alpha": 2.0}),
         r"experiments.a.lwf_alpha: lwf_weighting: paper weights the terms itself"),
        (lambda e: e.update(a={"lwf_weighting": "paper"}),
         r"experiments.a.lwf_weighting: an option of method lwf"),
    ],
)
def test_options_that_cannot_act_are_rejected_naming_the_key(change, message):
    config = validated(STUDY)
    change(config["experiments"])
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_an_option_that_cannot_act_set_in_defaults_says_so():
    config = validated(STUDY)
    config["defaults"]["momentum"] = 0.5
    with pytest.raises(ConfigError, match=r"experiments.joint.momentum: 0.5 \(set in defaults\) "
                                          r"acts only with optimizer: sgd"):
        check_config(config)


def test_options_that_act_are_accepted():
    config = validated(STUDY)
    config["experiments"].update(
        online={"method": "ewc", "ewc_online": True, "ewc_gamma": 0.5},
        sgd={"optimizer": "sgd", "momentum": 0.9},
        stop={"stop_at_train_acc": 0.9, "max_epochs": 10},
        late={"probe_unseen": [7, 8, 9, 0]},
        never_trained={"tasks": [[1, 2], [3, 4]], "probe_unseen": [5, 6]},
        agem={"method": "agem", "buffer_size": 100, "agem_sample_size": 100},
        steps={"iterations": 100, "optimizer": "adam", "weight_decay": 0.0,
               "hidden": [400, 400]},
        paper={"method": "lwf", "lwf_weighting": "paper"},
    )
    check_config(config)  # and every experiment of config.yaml, above: seq_bn probes [9, 0]


def test_protocol_settings_enter_the_settings_only_where_they_change_something():
    """Written at the values that train as before them (or in defaults), `hidden`,
    `iterations` and `lwf_weighting` leave the resolved settings and the config hash as they
    were; set otherwise they enter them (and `lwf_weighting: paper` replaces lwf_alpha)."""
    config = validated(STUDY)
    before = {name: resolve_experiment(config, name) for name in ("seq", "lwf", "joint")}
    config["defaults"].update(hidden=[120, 84], iterations=None)
    config["experiments"]["lwf"] = {"method": "lwf", "lwf_weighting": "study"}
    for name, run in before.items():
        assert resolve_experiment(config, name) == run
    config["experiments"].update(
        wide={"hidden": [400, 400]}, steps={"iterations": 2000},
        paper={"method": "lwf", "lwf_weighting": "paper"})
    assert resolve_experiment(config, "wide")["hidden"] == [400, 400]
    assert resolve_experiment(config, "steps")["iterations"] == 2000
    paper = resolve_experiment(config, "paper")
    assert paper["lwf_weighting"] == "paper" and "lwf_alpha" not in paper
    seq_hash = config_hash(training_config(before["seq"]))
    for name in ("wide", "steps"):
        assert config_hash(training_config(
            dict(resolve_experiment(config, name), name="seq"))) != seq_hash


def test_a_task_of_one_training_image_is_rejected_before_any_job():
    config = validated(STUDY)
    config["data_subset"]["train_images_per_class"] = 1
    check_config(config)  # every task of the study has two classes: two images
    config["experiments"]["single"] = {"tasks": [[1], [2, 3]]}
    with pytest.raises(ConfigError, match=r"data_subset.train_images_per_class: 1 leaves "
                                          r"experiment single's task of class \[1\] one training "
                                          r"image, and a batch needs two"):
        check_config(config)
