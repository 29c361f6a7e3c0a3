"""The fault matrix: every way a run can go wrong fails loudly, early, and loses nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from clexp.checkpoint import load_checkpoint, save_checkpoint
from clexp.config import check_config_files
from clexp.data import (
    EXPECTED_FILES,
    dataset_is_intact,
    load_dataset,
    prepare_dataset,
    save_dataset,
)
from clexp.errors import CheckpointError, ConfigError, DataError, DiskFullError
from clexp.files import atomic_path, write_json
from clexp.training import run_training_task

from conftest import REPO, SHARED_DATA, make_project, require_data, snakemake, tiny_config
from helpers import run_settings, write_synthetic_dataset

# ---- configuration: fails before any job runs, naming the key path ----


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["experiments"]["seq"].update(optimiser="sgd"),
         "experiments.seq: unknown key(s) 'optimiser'"),
        (lambda c: c["defaults"].update(lr=-1), "defaults.lr: -1 is out of range"),
        (lambda c: c.update(tasks=[[1, 2], [2, 3]]), "class 2 appears in task 1 and in task 2"),
        (lambda c: c.update(tasks=[[1, 10]]), "tasks.0.1: 10 is out of range"),
        (lambda c: c.update(selected_experiments=["seq", "nope"]),
         "selected_experiments: unknown experiment 'nope'"),
        (lambda c: c["experiments"]["seq"].update(stop_at_train_acc=2),
         "experiments.seq.stop_at_train_acc: 2 is out of range"),
        (lambda c: c["experiments"]["seq"].update(l1_activation=float("nan")),
         "experiments.seq.l1_activation: nan is not a finite number"),
        (lambda c: c["defaults"].update(epochs=2.0),
         "defaults.epochs: expected integer, got float 2.0"),
        (lambda c: c["data_subset"].update(train_images_per_class=50.0),
         "data_subset.train_images_per_class: expected integer, got float 50.0"),
        (lambda c: c["experiments"].update({"..": {}}), "experiments: '..' is not a valid name"),
        # accepted before, and changed nothing but the config hash
        (lambda c: c["experiments"].update(e={"method": "ewc", "ewc_gamma": 0}),
         "experiments.e.ewc_gamma: 0 decays online EWC's running Fisher and acts only with "
         "ewc_online: true"),
        (lambda c: c["experiments"].update(p={"probe_unseen": [1]}),
         "experiments.p.probe_unseen: class(es) [1] are trained in the first task"),
        (lambda c: c["experiments"].update(p={"probe_unseen": [9]}),
         "experiments.p.probe_unseen: [9] names one class"),
    ],
)
def test_bad_config_fails_before_any_job_runs(tmp_path, change, message):
    config = tiny_config()
    change(config)
    project = make_project(tmp_path / "project", config)
    result = snakemake(project, "results/report.html")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (project / "results").exists()


def test_duplicate_experiment_names_are_rejected(tmp_path):
    project = make_project(tmp_path / "project", tiny_config())
    text = (project / "config.yaml").read_text()
    (project / "config.yaml").write_text(text + "  seq:\n    lr: 0.5\n")
    result = snakemake(project, "-n", "results/report.html")
    assert result.returncode != 0
    assert "experiments.seq (line" in result.stdout + result.stderr
    with pytest.raises(ConfigError, match="defined twice"):
        check_config_files([project / "config.yaml"])


# ---- data ----


def test_missing_data_without_download_names_the_folder_and_files(tmp_path):
    with pytest.raises(DataError) as error:
        prepare_dataset("mnist", tmp_path / "nowhere", download=False)
    message = str(error.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert all(name in message for name in EXPECTED_FILES)


def test_failed_download_says_so_and_names_the_folder(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    folder = re.escape(str(tmp_path / "MNIST" / "raw"))
    reason = re.escape("(RuntimeError: network unreachable)")
    with pytest.raises(DataError, match=f"download into {folder} failed {reason}"):
        prepare_dataset("mnist", tmp_path, download=True)


def test_missing_data_stops_the_workflow_before_training(tmp_path):
    project = make_project(tmp_path / "project", tiny_config(data_root=str(tmp_path / "empty")))
    result = snakemake(project, "results/report.html")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "train-images-idx3-ubyte" in output and str(tmp_path / "empty") in output
    assert not list((project / "results").glob("seq/**/checkpoint.pt"))


def copy_raw(tmp_path: Path) -> Path:
    require_data()
    root = tmp_path / "data"
    shutil.copytree(SHARED_DATA / "MNIST", root / "MNIST")
    return root


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "wrong size"),
        (lambda b: b[:10], "truncated"),
        (lambda b: b"\x00\x00\x09\x99" + b[4:], "not an IDX file"),
    ],
)
def test_damaged_idx_file_is_named(tmp_path, damage, message):
    root = copy_raw(tmp_path)
    path = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message) as error:
        prepare_dataset("mnist", root, download=False)
    assert str(path) in str(error.value)


# ---- checkpoints ----


@pytest.fixture()
def checkpoint(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz")
    run = run_settings(name="seq", epochs=1)
    path = tmp_path / "task1" / "checkpoint.pt"
    run_training_task(run, 0, 1, data, path, device="cpu")
    return run, data, path


def test_truncated_checkpoint_fails_the_next_task_naming_the_file(checkpoint, tmp_path):
    run, data, path = checkpoint
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot be read") as error:
        run_training_task(run, 0, 2, data, tmp_path / "t2.pt", previous_checkpoint=path,
                          device="cpu")
    assert str(path) in str(error.value) and "rebuild" in str(error.value)
    assert not (tmp_path / "t2.pt").exists()


def test_checkpoint_of_another_experiment_or_config_is_detected(checkpoint, tmp_path):
    run, data, path = checkpoint
    with pytest.raises(CheckpointError, match="experiment is 'seq', expected 'other'"):
        run_training_task(dict(run, name="other"), 0, 2, data, tmp_path / "t2.pt",
                          previous_checkpoint=path, device="cpu")
    with pytest.raises(CheckpointError, match="config_hash"):
        run_training_task(dict(run, lr=0.5), 0, 2, data, tmp_path / "t2.pt",
                          previous_checkpoint=path, device="cpu")
    with pytest.raises(CheckpointError, match="seed is 0, expected 1"):
        run_training_task(run, 1, 2, data, tmp_path / "t2.pt", previous_checkpoint=path,
                          device="cpu")


class _RunsCode:
    """An object whose unpickling would create a file: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoints_load_with_weights_only_so_they_cannot_run_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_saved_checkpoint_round_trips(tmp_path):
    save_checkpoint({"model": {"w": torch.ones(2)}, "task": 1}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt", task=1)["model"]["w"].tolist() == [1.0, 1.0]


# ---- damaged method state: refused before it steers training ----

# Settings of each method for the task-1 checkpoints below (small buffers: synthetic data).
METHOD_SETTINGS = {
    "naive": {}, "ogd": {"ogd": True}, "ewc": {"method": "ewc"},
    "online_ewc": {"method": "ewc", "ewc_online": True}, "si": {"method": "si"},
    "lwf": {"method": "lwf"}, "er": {"method": "er", "buffer_size": 30},
    "agem": {"method": "agem", "buffer_size": 30, "agem_sample_size": 16},
}


@pytest.fixture(scope="module")
def method_checkpoints(tmp_path_factory):
    """Task-1 checkpoints of every method on synthetic data: name -> (run, data, path)."""
    folder = tmp_path_factory.mktemp("methods")
    data = write_synthetic_dataset(folder / "data.npz")
    made = {}
    for name, settings in METHOD_SETTINGS.items():
        run = run_settings(name=name, epochs=1, **settings)
        path = folder / name / "task1.pt"
        run_training_task(run, 0, 1, data, path, device="cpu")
        made[name] = (run, data, path)
    return made


def damage_and_resume(method_checkpoints, name, damage, tmp_path):
    """Apply `damage` to the method state of `name`'s task-1 checkpoint (a copy), train task 2
    from it; return the error's text (asserting the error and that nothing was written)."""
    run, data, original = method_checkpoints[name]
    path = tmp_path / name / "task1" / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    state = torch.load(original, weights_only=True)
    damage(state)
    save_checkpoint(state, path)
    target = tmp_path / name / "task2" / "checkpoint.pt"
    with pytest.raises(CheckpointError) as error:
        run_training_task(run, 0, 2, data, target, previous_checkpoint=path, device="cpu")
    message = str(error.value)
    assert message.startswith(f"{path}: the checkpoint is damaged (")
    assert f"rm {path}" in message and "snakemake --cores N" in message
    assert not target.parent.exists() or not any(target.parent.iterdir())
    return message


def _keys(state, *keys):
    for key in keys[:-1]:
        state = state[key]
    return state, keys[-1]


def drop(*keys):
    def damage(state):
        parent, key = _keys(state, *keys)
        del parent[key]
    return damage


def replace(*keys, value):
    def damage(state):
        parent, key = _keys(state, *keys)
        parent[key] = value(parent[key]) if callable(value) else value
    return damage


def _poison(tensor):
    tensor = tensor.clone()
    tensor.view(-1)[0] = float("nan")
    return tensor


def _other_class_indices(labels):
    """Point each stored index at an image of another class (the labels stay)."""
    def damage(state):
        buffer = state["method_state"]["buffer"]
        others = [int(i) for i in (labels != buffer["labels"][0]).nonzero().flatten()]
        buffer["indices"] = torch.tensor(others[: len(buffer["indices"])])
    return damage


def _with_train_labels(method_checkpoints, name):
    from clexp.data import load_dataset

    return torch.from_numpy(load_dataset(method_checkpoints[name][1])["train_labels"])


STATEFUL = [name for name in METHOD_SETTINGS if name != "naive"]


@pytest.mark.parametrize("name", STATEFUL)
def test_a_checkpoint_without_method_state_is_refused(method_checkpoints, name, tmp_path):
    def damage(state):
        del state["method_state"]
        state.pop("ogd_basis", None)  # OGD's pre-method-state copy of its basis

    message = damage_and_resume(method_checkpoints, name, damage, tmp_path)
    assert "method_state is missing" in message


def test_naive_training_keeps_no_state_and_resumes_without_it(method_checkpoints, tmp_path):
    run, data, original = method_checkpoints["naive"]
    state = torch.load(original, weights_only=True)
    del state["method_state"]
    save_checkpoint(state, tmp_path / "task1.pt")
    run_training_task(run, 0, 2, data, tmp_path / "task2.pt",
                      previous_checkpoint=tmp_path / "task1.pt", device="cpu")
    assert (tmp_path / "task2.pt").is_file()


@pytest.mark.parametrize(("name", "damage", "expected"), [
    ("ogd", drop("method_state", "basis"), "basis is missing"),
    ("ogd", replace("method_state", "basis", value=lambda b: b * 2), "not orthonormal"),
    ("ogd", replace("method_state", "basis", value=lambda b: b[:, :100]), "has shape (1, 100)"),
    ("ewc", drop("method_state", "fishers"), "fishers is missing"),
    ("ewc", replace("method_state", "fishers", value=lambda f: -1e6 * f),
     "fishers holds negative values"),
    ("ewc", replace("method_state", "fishers", value=_poison), "fishers holds NaN or infinite"),
    ("ewc", replace("method_state", "fishers", value=lambda f: torch.cat([f, f], dim=1)),
     "fishers has shape (1, 210428), expected (1, 105214)"),
    ("ewc", replace("method_state", "fishers", value=torch.zeros_like), "all zero"),
    ("ewc", replace("method_state", "anchors", value="weights.bin"), "anchors is a str"),
    ("online_ewc", replace("method_state", "fishers", value=lambda f: torch.cat([f, f])),
     "fishers has shape (2, 105214), expected (1, 105214)"),
    ("si", drop("method_state", "importance"), "importance is missing"),
    ("si", replace("method_state", "importance", value=lambda f: -f - 1),
     "importance holds negative values"),
    ("si", replace("method_state", "importance", value=_poison), "NaN or infinite"),
    ("si", replace("method_state", "anchor", value="anchor"), "anchor is a str"),
    ("lwf", drop("method_state", "previous_model"), "previous_model (the snapshot"),
    ("lwf", drop("method_state", "previous_model", "fc1.weight"), "missing: ['fc1.weight']"),
    ("lwf", replace("method_state", "previous_model", "fc2.bias", value=_poison),
     "previous_model.fc2.bias holds NaN"),
    ("er", drop("method_state", "buffer"), "buffer is missing"),
    ("er", replace("method_state", "buffer", "indices", value=lambda i: i + 10_000_000),
     "point outside the training split"),
    ("er", replace("method_state", "buffer", "labels", value=lambda y: y.flip(0)),
     "stored labels differ from the dataset's"),
    ("er", replace("method_state", "buffer", "size", value=7), "buffer.size is 7, expected 30"),
    ("agem", replace("method_state", "buffer", "indices", value=lambda i: i[:0]),
     "buffer holds 0 indices but 30 labels"),
    ("naive", replace("method_state", "generator", value=lambda g: g[:10]),
     "generator has shape (10,)"),
    ("naive", replace("model", "fc1.weight", value=_poison), "model.fc1.weight holds NaN"),
    ("naive", replace("model", "fc1.weight", value=lambda w: w[:10]), "model.fc1.weight has"),
    ("naive", replace("optimizer", "state", 0, "exp_avg", value=_poison),
     "optimizer.state.0.exp_avg holds NaN"),
    ("naive", drop("shuffle_rng"), "KeyError: 'shuffle_rng'"),
    ("naive", replace("init_per_task_acc", value=[0.1]), "init_per_task_acc has 1 values"),
])
def test_damaged_state_is_refused_naming_the_file_the_fault_and_the_fix(
        method_checkpoints, name, damage, expected, tmp_path):
    message = damage_and_resume(method_checkpoints, name, damage, tmp_path)
    assert expected in message, message


def test_evaluating_a_checkpoint_with_damaged_weights_names_the_file(method_checkpoints,
                                                                      tmp_path):
    from clexp.evaluation import restore_model

    run, _, original = method_checkpoints["naive"]
    state = torch.load(original, weights_only=True)
    state["model"]["fc2.weight"] = _poison(state["model"]["fc2.weight"])
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"damaged \(model.fc2.weight holds NaN") as error:
        restore_model(run, 0, 1, tmp_path / "checkpoint.pt", device="cpu")
    assert f"rm {tmp_path / 'checkpoint.pt'}" in str(error.value)


def test_a_buffer_of_other_classes_images_or_an_emptied_buffer_is_refused(method_checkpoints,
                                                                         tmp_path):
    labels = _with_train_labels(method_checkpoints, "er")
    message = damage_and_resume(method_checkpoints, "er", _other_class_indices(labels),
                                tmp_path / "moved")
    assert "stored labels differ from the dataset's labels" in message

    def empty(state):
        buffer = state["method_state"]["buffer"]
        buffer["indices"], buffer["labels"] = buffer["indices"][:0], buffer["labels"][:0]

    message = damage_and_resume(method_checkpoints, "er", empty, tmp_path / "empty")
    assert "buffer holds no images (class: images); after task 1 it holds {1: 15, 2: 15}" \
        in message


def test_a_nan_in_loaded_state_is_damage_not_divergence(method_checkpoints, tmp_path):
    message = damage_and_resume(
        method_checkpoints, "ewc", replace("method_state", "fishers", value=_poison), tmp_path)
    assert "lower the learning rate" not in message and "diverged" not in message


def test_every_registered_method_with_state_is_in_the_damage_tests():
    from clexp.methods.registry import method_class, method_name, method_names

    covered = {method_name(run_settings(**s)) for s in METHOD_SETTINGS.values()}
    assert set(method_names()) <= covered
    assert all(method_class(n).requires_state for n in method_names() if n != "naive")


def test_a_method_that_checkpoints_state_must_declare_its_checks():
    from clexp.methods.base import Method

    with pytest.raises(TypeError, match="no check_state"):
        type("Unchecked", (Method,), {"state_dict": lambda self: {}})


def test_a_damaged_method_state_fails_the_job_and_the_advice_rebuilds_it(tmp_path):
    require_data()
    config = tiny_config(data_subset={"train_images_per_class": 20, "eval_images_per_class": 5},
                         tasks=[[1, 2], [3, 4]],
                         experiments={"er": {"method": "er", "buffer_size": 10, "epochs": 1}})
    project = make_project(tmp_path / "project", config)
    first = "results/er/seed0/task1/checkpoint.pt"
    assert snakemake(project, first).returncode == 0
    state = torch.load(project / first, weights_only=True)
    del state["method_state"]  # before: task 2 trained without replay and exited 0
    save_checkpoint(state, project / first)
    second = project / "results/er/seed0/task2"
    result = snakemake(project, str(second.relative_to(project) / "checkpoint.pt"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{first}: the checkpoint is damaged (method_state is missing" in output
    assert not (second / "checkpoint.pt").exists() and not (second / "train_log.csv").exists()
    advice = re.search(r"\(rm (\S+)\)", output).group(1)
    (project / advice).unlink()
    result = snakemake(project, str(second.relative_to(project) / "checkpoint.pt"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (second / "checkpoint.pt").is_file()


# ---- the smallest data subsets the schema allows ----


def test_the_smallest_subsets_build_the_report(tmp_path):
    """Two training and one evaluation image per class: one batch per task, t-SNE of two
    points (fewer than its default perplexity needs)."""
    require_data()
    config = tiny_config(data_subset={"train_images_per_class": 2, "eval_images_per_class": 1},
                         tasks=[[1, 2], [3, 4]], experiments={"seq": {"epochs": 1}})
    project = make_project(tmp_path / "project", config)
    result = snakemake(project, "results/report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((project / "results/seq/seed0/task2/metrics.json").read_text())
    assert metrics["classes_seen"] == [1, 2, 3, 4]


def test_one_training_image_in_a_task_is_rejected_before_any_job(tmp_path):
    config = tiny_config(data_subset={"train_images_per_class": 1, "eval_images_per_class": 1},
                         tasks=[[1], [2]], experiments={"seq": {"epochs": 1}})
    project = make_project(tmp_path / "project", config)
    result = snakemake(project, "results/report.html")
    assert result.returncode != 0
    assert ("data_subset.train_images_per_class: 1 leaves experiment seq's task of class [1] "
            "one training image") in result.stdout + result.stderr
    assert not (project / "results").exists()


def test_training_on_fewer_than_two_images_says_why_instead_of_dividing_by_zero():
    from clexp.model import MLP
    from clexp.training import build_optimizer, train_task

    model = MLP()
    run = run_settings(epochs=1)
    with pytest.raises(ConfigError, match=r"task 1: 1 training image\(s\), and a batch needs "
                                          r"at least two"):
        train_task(model, build_optimizer(model, run, 1), torch.zeros(1, 784),
                   torch.zeros(1, dtype=torch.int64), run, torch.Generator().manual_seed(0))


def test_tsne_of_fewer_points_than_its_perplexity_needs():
    import numpy as np

    from clexp.analysis import tsne_embedding

    for count in (1, 2, 3):
        points = tsne_embedding(np.random.default_rng(0).random((count, 8)), iterations=250)
        assert points.shape == (count, 2) and np.isfinite(points).all()


# ---- the report's timing table reads only its own run ----


def _timing_rows(report: Path) -> dict:
    """rule -> jobs, from the report's "Where the time goes" table."""
    page = report.read_text()
    section = page[page.index('id="where-the-time-goes"'):]
    section = section[: section.index("</section>")]
    return {rule: int(jobs) for rule, jobs in
            re.findall(r"<tr>\s*<td>(\w+)</td>\s*<td>(\d+)</td>", section)}, section


def test_the_timing_table_counts_only_this_runs_jobs_and_names_a_bad_file(tmp_path):
    require_data()
    config = tiny_config(data_subset={"train_images_per_class": 20, "eval_images_per_class": 5},
                         tasks=[[1, 2], [3, 4]],
                         experiments={"seq": {"epochs": 1}, "seq_ln": {"norm": "layer",
                                                                        "epochs": 1}})
    project = make_project(tmp_path / "project", config)
    assert snakemake(project, "results/report.html").returncode == 0
    rows, _ = _timing_rows(project / "results/report.html")
    assert rows["train_task"] == 4
    benchmarks = project / "results/benchmarks"
    stray = benchmarks / "train_task/stray.tsv"
    stray.write_text("s\th:m:s\tmax_rss\n9999\t2:46:39\t1\n")
    (benchmarks / "notes.tsv").mkdir()
    (benchmarks / "prepare_data.tsv").write_text("")  # a job of this run: named, not read
    # a subset in the folder that holds both experiments' files
    result = snakemake(project, "results/report.html", "--config", "selected_experiments=[seq]")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows, section = _timing_rows(project / "results/report.html")
    assert rows["train_task"] == 2 and rows["evaluate_checkpoint"] == 2
    assert "prepare_data" not in rows and "9999" not in section and "stray" not in section
    assert "results/benchmarks/prepare_data.tsv: not a benchmark table (EmptyDataError" in section


def test_the_report_is_given_the_benchmark_file_of_every_job_of_its_dag(tmp_path):
    config = tiny_config(seeds=[0, 1], analysis={"seeds": [1]}, tasks=[[1, 2], [3, 4]],
                         experiments={"seq": {}, "joint": {"joint": True}})
    project = make_project(tmp_path / "project", config)
    with open(project / "Snakefile", "a") as snakefile:  # show what the report is given
        snakefile.write('\nprint("BENCHMARKS", json.dumps(run_benchmarks()))\n')
    (project / "Snakefile").write_text("import json\n" + (project / "Snakefile").read_text())
    result = snakemake(project, "-n", "--forceall", "results/report.html")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = json.loads(re.search(r"^BENCHMARKS (.*)$", result.stdout, re.M).group(1))
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout.split("Job stats:")[1], re.M))
    planned = {rule: int(n) for rule, n in planned.items()
               if rule not in ("total", "all", "report", "code_digest")}
    counted: dict[str, int] = {}
    for path in listed:
        rule = Path(path).relative_to("results/benchmarks").parts[0].removesuffix(".tsv")
        counted[rule] = counted.get(rule, 0) + 1
    assert counted == planned
    assert len(set(listed)) == len(listed)


# ---- disk writes ----


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}  # the old complete file survives


def test_workflow_scripts_write_outputs_only_through_atomic_helpers():
    for script in (REPO / "workflow" / "scripts").glob("*.py"):
        text = script.read_text()
        for direct in ("to_csv(", "savefig(", "torch.save(", "np.savez(", ".write_text("):
            assert direct not in text, f"{script.name} writes with {direct} directly"


# ---- divergence, interruption, determinism, threads (end to end) ----


def test_divergence_fails_the_job_naming_the_run_and_writes_no_checkpoint(tmp_path):
    require_data()
    config = tiny_config(experiments={"boom": {"optimizer": "sgd", "lr": 1e12,
                                               "weight_decay": 0.0}})
    project = make_project(tmp_path / "project", config)
    result = snakemake(project, "results/report.html")
    assert result.returncode != 0
    assert "experiment boom seed 0 task 1 epoch" in result.stdout + result.stderr
    assert not (project / "results/boom/seed0/task1/checkpoint.pt").exists()


ALL_METRICS = [f"results/seq/seed0/task{t}/metrics.json" for t in range(1, 4)]


def kill_during_task(project: Path, task: int, timeout: float = 300) -> int:
    """Start the study and SIGKILL it (scheduler and jobs) once task `task` trains; return
    Snakemake's pid."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", *ALL_METRICS],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = project / f"results/logs/train_task/seq/seed0/task{task}.log"
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if log.exists() and "training on" in log.read_text():
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"task {task} never started training")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return process.pid


@pytest.mark.slow
def test_killed_run_resumes_from_the_last_checkpoint_with_identical_metrics(tmp_path):
    require_data()
    config = tiny_config(
        experiments={"seq": {"epochs": 40, "dropout": 0.2}}, seeds=[0],
        tasks=[[1, 2], [3, 4], [5, 6]],
        data_subset={"train_images_per_class": 200, "eval_images_per_class": 50},
    )
    killed = make_project(tmp_path / "killed", config)
    snakemake_pid = kill_during_task(killed, task=3)
    # The job server died with the whole process group, so nobody removed its socket folder ...
    socket_folders = list(Path(tempfile.gettempdir()).glob(f"clexp-jobs-{snakemake_pid}-*"))
    assert socket_folders
    task3 = killed / "results/seq/seed0/task3"
    assert (killed / "results/seq/seed0/task2/checkpoint.pt").exists()
    assert not (task3 / "checkpoint.pt").exists(), "task 3 finished before the kill"
    assert not (task3 / "metrics.json").exists()
    task2_before = (killed / "results/seq/seed0/task2/checkpoint.pt").stat().st_mtime

    # A killed Snakemake leaves its lock behind; --unlock is the documented first step.
    assert snakemake(killed, "--unlock").returncode == 0
    resumed = snakemake(killed, "--rerun-incomplete", *ALL_METRICS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # ... until the next run's server started.
    assert not any(folder.exists() for folder in socket_folders)
    # Task 2 was not retrained: task 3 resumed from its checkpoint.
    assert (killed / "results/seq/seed0/task2/checkpoint.pt").stat().st_mtime == task2_before

    clean = make_project(tmp_path / "clean", config)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *ALL_METRICS],
        cwd=clean, capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ALL_METRICS:
        assert json.loads((killed / name).read_text()) == json.loads((clean / name).read_text())


@pytest.mark.slow
def test_jobs_use_exactly_the_threads_their_rule_declares(tiny_run):
    logs = list((tiny_run / "results/logs").glob("*/**/*.log"))
    torch_jobs = [log for log in logs if log.parts[-4] in ("train_task", "evaluate_checkpoint")
                  or "train_task" in log.parts or "evaluate_checkpoint" in log.parts]
    assert len(torch_jobs) >= 22  # 11 checkpoints, trained and evaluated
    for log in torch_jobs:
        assert "torch threads: 1" in log.read_text(), log


# ---- the compact dataset file carries a checksum ----


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: _flip(p, p.stat().st_size // 2), "BadZipFile: Bad CRC-32"),
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "BadZipFile"),
        (lambda p: p.write_bytes(b""), "EOFError"),
    ],
)
def test_a_damaged_dataset_file_fails_in_one_line_naming_it_and_the_fix(tmp_path, damage,
                                                                         problem):
    path = write_synthetic_dataset(tmp_path / "dataset.npz")
    assert set(load_dataset(path)) == {"train_images", "train_labels", "eval_images",
                                       "eval_labels"}
    damage(path)
    with pytest.raises(DataError) as error:
        load_dataset(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: the dataset file is damaged")
    assert problem in message and "Delete it and rerun" in message
    assert not dataset_is_intact(path)


def test_changed_arrays_under_a_valid_zip_fail_the_checksum(tmp_path):
    import numpy as np

    path = write_synthetic_dataset(tmp_path / "dataset.npz")
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["train_labels"][0] += 1  # a valid file whose contents are not what was written
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(DataError, match="contents do not match their checksum"):
        load_dataset(path)
    arrays["train_labels"][0] -= 1
    del arrays["checksum"]  # a file from before checksums: its zip CRCs still guard it
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    assert set(load_dataset(path)) == set(arrays)


def test_the_workflow_rebuilds_a_damaged_dataset_file(tmp_path):
    require_data()
    config = tiny_config(data_subset={"train_images_per_class": 20, "eval_images_per_class": 5})
    project = make_project(tmp_path / "project", config)
    target = project / "results/data/dataset.npz"
    assert snakemake(project, "results/data/dataset.npz").returncode == 0
    original = load_dataset(target)
    warning = "results/data/dataset.npz was damaged (checksum or zip error): deleted, to be rebuilt"

    _flip(target, target.stat().st_size // 3)
    dry = snakemake(project, "-n", "results/data/dataset.npz")
    assert warning in dry.stdout + dry.stderr
    assert "reason: Missing output files: results/data/dataset.npz" in dry.stdout
    assert snakemake(project, "results/data/dataset.npz").returncode == 0
    rebuilt = load_dataset(target)
    assert all((rebuilt[name] == original[name]).all() for name in original)

    target.write_bytes(target.read_bytes()[:1000])  # truncated: healed by a plain run too
    result = snakemake(project, "results/data/dataset.npz")
    assert result.returncode == 0, result.stdout + result.stderr
    assert warning in result.stdout + result.stderr
    assert dataset_is_intact(target)
    again = snakemake(project, "-n", "results/data/dataset.npz")
    assert warning not in again.stdout + again.stderr and "Nothing to be done" in again.stdout


# ---- error texts that work as written ----


def test_a_corrupt_checkpoint_message_gives_a_command_that_works(checkpoint):
    _, _, path = checkpoint
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert f"rm {path}" in message and "snakemake --cores N)" in message
    assert "--forcerun" not in message


def test_a_checkpoint_holding_code_is_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _RunsCode(tmp_path / "marker")}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "holds objects other than tensors and plain data" in message
    assert "weights_only" not in message and "\n" not in message


def _disk_full_at(path: Path) -> None:
    """Make the next atomic write of `path` go to /dev/full (every write: ENOSPC)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(f".{path.name}.tmp-{os.getpid()}").symlink_to("/dev/full")


@pytest.mark.parametrize(
    "write",
    [
        lambda p: save_checkpoint({"model": {"w": torch.ones(1000)}}, p),
        lambda p: write_json({"a": 1}, p),
        lambda p: save_dataset({"x": __import__("numpy").zeros(10000)}, p),
    ],
)
def test_a_full_disk_says_so_and_names_the_file(tmp_path, write):
    path = tmp_path / "out" / "file"
    _disk_full_at(path)
    with pytest.raises(DiskFullError) as error:
        write(path)
    message = str(error.value)
    assert str(path) in message and "no space left on device" in message
    assert not path.exists() and list(path.parent.iterdir()) == []  # nothing half-written


def test_torch_save_alone_would_not_say_the_disk_is_full(tmp_path):
    """What save_checkpoint avoids by writing the bytes itself."""
    with pytest.raises(RuntimeError) as error:
        torch.save({"w": torch.ones(1000)}, "/dev/full")
    assert "no space" not in str(error.value).lower()


# ---- litter of killed writers ----

SLOW_WRITER = """
import sys, time
from clexp.files import atomic_path
with atomic_path(sys.argv[1]) as temporary:
    temporary.write_text("half of it")
    print(temporary, flush=True)
    time.sleep(600)
"""


def test_a_temporary_file_of_a_killed_writer_goes_when_the_output_is_written(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    writer = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target)],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    temporary = Path(writer.stdout.readline().strip())
    writer.kill()  # kill -9 while saving
    writer.wait()
    assert temporary.exists() and not target.exists()
    live = target.with_name(f".{target.name}.tmp-1")  # pid 1 is alive: not ours to delete
    live.write_text("someone else's")
    write_json({"a": 1}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert not temporary.exists() and live.exists()


# ---- a copied or moved project reruns nothing ----


def test_a_copied_finished_project_reruns_nothing(tmp_path):
    require_data()
    config = tiny_config(data_subset={"train_images_per_class": 20, "eval_images_per_class": 5},
                         tasks=[[1, 2]], experiments={"seq": {"epochs": 1}})
    project = make_project(tmp_path / "project", config)
    target = "results/seq/seed0/task1/checkpoint.pt"
    assert snakemake(project, target).returncode == 0
    copy = tmp_path / "elsewhere" / "moved"
    shutil.copytree(project, copy, symlinks=True)  # cp -a: times kept
    result = snakemake(copy, "-n", target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to be done" in result.stdout, result.stdout
