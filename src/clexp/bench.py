"""Benchmarks of the study's cost: `python -m clexp.bench --help`.

- `loop`: clexp's train loop (batches sliced from tensors held in memory) against the
  common reference loop (a DataLoader over a map-style dataset, batch 64), same model, data,
  epochs and seed, side by side in one process; median of repeats and their ratio. Then the
  cost of OGD's projection: one training step with the basis the notebook's mean-loss variant
  holds before the last task (4 rows) beside OGD-GTL's (4 x `--ogd-memory` rows).
- `report`: the size of `results/report.html` (or `--report`) and the time headless Chromium
  takes to load it (its load event: every image decoded), median of three.
- `study`: the whole workflow from an empty results/ in a scratch copy of the project: wall
  time of `snakemake --cores N results/report.html`, seconds and peak memory per rule (from
  the `benchmark:` files every rule writes), the no-op dry run, and a one-experiment edit's
  rerun.

Each prints a table and writes `results/benchmarks/bench.json` (or `--output`). Numbers are
printed, never asserted: the targets are judged by a reader, not by a timed test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from clexp.jobserver import job_usage

REPO = Path(__file__).resolve().parents[2]


def read_benchmark(path: str | Path) -> dict:
    """`seconds` and `max_rss` (MB; NaN where not measured) of one Snakemake benchmark file.

    Raises ValueError naming the file and what is wrong with it (empty, not a table, no
    seconds) instead of pandas' IndexError / EmptyDataError / IsADirectoryError.
    """
    try:
        frame = pd.read_csv(path, sep="\t")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        text = str(error).splitlines()[0] if str(error) else ""
        raise ValueError(f"{path}: not a benchmark table ({type(error).__name__}: "
                         f"{text[:120]})") from None
    if frame.empty or "s" not in frame.columns:
        raise ValueError(f"{path}: not a benchmark table (no row with a column 's')")
    seconds = pd.to_numeric(frame["s"].iloc[0], errors="coerce")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{path}: not a benchmark table (s is {frame['s'].iloc[0]!r})")
    max_rss = frame["max_rss"].iloc[0] if "max_rss" in frame.columns else None
    return {"seconds": float(seconds), "max_rss": pd.to_numeric(max_rss, errors="coerce")}


def rule_time_table(benchmark_dir: str | Path, log_dir: str | Path | None = None,
                    files=None, unreadable: list | None = None) -> pd.DataFrame:
    """Per rule: jobs, total and median seconds, peak RSS (MB), from Snakemake's benchmark
    TSVs under `benchmark_dir` (one folder or file per rule).

    `files`: read only these benchmark files (under `benchmark_dir`; the report passes those of
    its run's jobs), skipping missing ones; default: every `*.tsv` file under `benchmark_dir`.
    A file that is not a benchmark table raises ValueError naming it, or with `unreadable` (a
    list) is left out and its message appended there.

    A job run by the job server was measured by Snakemake as its small client process; its
    real peak RSS is the one its log records (`clexp.jobserver.job_usage`), looked up in
    `log_dir` (default: `logs` beside `benchmark_dir`) under the same relative path.
    """
    benchmark_dir = Path(benchmark_dir)
    log_dir = benchmark_dir.parent / "logs" if log_dir is None else Path(log_dir)
    if files is None:
        paths = sorted(p for p in benchmark_dir.rglob("*.tsv") if p.is_file())
    else:
        paths = [Path(p) for p in files if Path(p).exists()]
    records = []
    for path in paths:
        relative = path.relative_to(benchmark_dir)
        rule = relative.parts[0].removesuffix(".tsv")
        try:
            row = read_benchmark(path)
        except ValueError as error:
            if unreadable is None:
                raise
            unreadable.append(str(error))
            continue
        max_rss = row["max_rss"]
        usage = job_usage((log_dir / relative).with_suffix(".log"))
        if usage is not None:
            max_rss = usage["max_rss_mb"]
        records.append({"rule": rule, "seconds": row["seconds"], "max_rss_mb": max_rss})
    if not records:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "median_s", "max_rss_mb"])
    frame = pd.DataFrame(records)
    table = frame.groupby("rule").agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), median_s=("seconds", "median"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    return table.sort_values("total_s", ascending=False).reset_index()


RUN_RULES = ("train_task", "evaluate_checkpoint")


def run_time_table(benchmark_dir: str | Path) -> pd.DataFrame:
    """Per experiment: runs (experiment-seeds) and the mean over them of the job seconds of
    training and of evaluation (`RUN_RULES`; the per-checkpoint analysis is not counted),
    from the benchmark TSVs `<rule>/<experiment>/seed<seed>/task<t>.tsv`. Sorted by
    `train_eval_s`, largest first."""
    records = []
    for rule in RUN_RULES:
        for path in (Path(benchmark_dir) / rule).glob("*/seed*/task*.tsv"):
            seconds = float(pd.read_csv(path, sep="\t").iloc[0]["s"])
            records.append({"experiment": path.parent.parent.name, "seed": path.parent.name,
                            "rule": rule, "seconds": seconds})
    columns = ["experiment", "runs", "train_s", "evaluate_s", "train_eval_s"]
    if not records:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(records)
    per_run = frame.pivot_table(index=["experiment", "seed"], columns="rule", values="seconds",
                                aggfunc="sum", fill_value=0.0)
    per_run = per_run.reindex(columns=list(RUN_RULES), fill_value=0.0)
    table = per_run.groupby(level="experiment").agg(
        runs=("train_task", "size"), train_s=("train_task", "mean"),
        evaluate_s=("evaluate_checkpoint", "mean"))
    table["train_eval_s"] = table["train_s"] + table["evaluate_s"]
    table = table.sort_values("train_eval_s", ascending=False).reset_index()
    return table[columns]


def train_eval_seconds_per_run(table: pd.DataFrame) -> float | None:
    """Training + evaluation job seconds per experiment-seed, mean over the study's runs."""
    runs = table["runs"].sum()
    return float((table["train_eval_s"] * table["runs"]).sum() / runs) if runs else None


# ---- train loop ----


class _TensorImages:
    """A map-style dataset of ready tensors: per-item indexing, the DataLoader collates."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def _dataloader_loop(model, optimizer, dataset, epochs, batch_size, seed):
    """The common training loop over a DataLoader of `dataset` (shuffled, `batch_size`)."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            logits, _ = model(x.flatten(1))
            loss = torch.nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def _torchvision_subset(data_root: Path, dataset: str, counts: dict[int, int]):
    """torchvision's training split of `dataset` under `data_root`: the first `counts[c]`
    images of each class c, as the dataset file's `data_subset` keeps them; the MNIST
    tutorials' dataset (each image decoded and converted by `ToTensor` per item)."""
    import torch
    import torchvision.datasets
    from torchvision import transforms

    from clexp.data import TORCHVISION_DATASETS

    name, _ = TORCHVISION_DATASETS[dataset]
    full = getattr(torchvision.datasets, name)(str(data_root), train=True, download=False,
                                               transform=transforms.ToTensor())
    indices = sorted(
        index for cls, count in counts.items()
        for index in (full.targets == cls).nonzero().flatten()[:count].tolist()
    )
    return torch.utils.data.Subset(full, indices)


def bench_loop(data_path: Path, repeats: int, epochs: int, data_root: Path | None = None,
               dataset: str = "mnist") -> dict:
    """Images per second of clexp's loop and of the DataLoader reference (same work).

    `clexp`: `train_task` (batches sliced from tensors in memory, fused AdamW);
    `clexp_instrumented`: the same with the per-batch records of the study (forgetting curve
    on 200 images, relative updates, gradient sums); `dataloader`: the common way, as in the
    MNIST tutorials: torchvision's dataset with `ToTensor`, a DataLoader, `torch.optim.AdamW`
    with torch's defaults (on the CPU its per-tensor loop: the same update, rounded apart) -
    only with `data_root` (the raw dataset); `dataloader_tensors`: a DataLoader over a
    map-style dataset of ready tensors, with clexp's optimizer: the leanest DataLoader loop,
    to show how much of the gain is per-item conversion. Same model, data (digits 1 and 2),
    epochs and seed; median of `repeats`.
    """
    import torch

    from clexp.config import DEFAULT_OPTIONS
    from clexp.data import class_mask, load_dataset
    from clexp.model import MLP
    from clexp.training import Instruments, build_optimizer, split_tensors, train_task

    data = load_dataset(data_path)
    mask = class_mask(data["train_labels"], [1, 2])
    images, labels = split_tensors(data, "train", mask, "cpu")
    run = dict(DEFAULT_OPTIONS, epochs=epochs)
    work = len(labels) * epochs
    names = ["clexp", "clexp_instrumented", "dataloader_tensors"]
    tutorial_data = None
    if data_root is not None:
        counts = {c: int((data["train_labels"] == c).sum()) for c in (1, 2)}
        tutorial_data = _torchvision_subset(data_root, dataset, counts)
        if len(tutorial_data) != len(labels):
            raise ValueError(f"{data_root} and {data_path} hold different data")
        names.append("dataloader")
    timings: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in timings:
            torch.manual_seed(repeat)
            model = MLP()
            if name == "dataloader":
                optimizer = torch.optim.AdamW(model.parameters(), lr=run["lr"],
                                              weight_decay=run["weight_decay"])
            else:
                optimizer = build_optimizer(model, run, 1)
            start = time.perf_counter()
            if name == "dataloader":
                _dataloader_loop(model, optimizer, tutorial_data, epochs, 64, repeat)
            elif name == "dataloader_tensors":
                _dataloader_loop(model, optimizer, _TensorImages(images, labels), epochs, 64,
                                 repeat)
            else:
                instruments = (Instruments(model, [(images[:200], labels[:200])])
                               if name == "clexp_instrumented" else None)
                train_task(model, optimizer, images, labels, run,
                           torch.Generator().manual_seed(repeat), instruments=instruments)
            timings[name].append(time.perf_counter() - start)
    result = {name: work / statistics.median(values) for name, values in timings.items()}
    for reference in ("dataloader", "dataloader_tensors"):
        if reference in result:
            result[f"ratio_clexp_vs_{reference}"] = result["clexp"] / result[reference]
            result[f"ratio_instrumented_vs_{reference}"] = (
                result["clexp_instrumented"] / result[reference])
    result["images_per_run"] = int(work)
    result["repeats"] = repeats
    return result


# ---- OGD's projection ----


def bench_ogd_step(memory: int, tasks_before: int = 4, steps: int = 20, repeats: int = 3,
                   batch_size: int = 64, seed: int = 0) -> dict:
    """Seconds per training step of OGD (forward, backward, the gradient projected off the
    basis, the optimizer step, the update's alignment measured: the training loop's hooks)
    with the basis held while the last of five tasks trains: `tasks_before` rows for the
    notebook's mean-loss variant, `tasks_before * memory` for OGD-GTL. Median over `repeats`
    of the mean over `steps` steps (after two warm-up steps); also the basis' bytes and the
    projection's multiply-adds per step (2 k P).

    The basis rows are random unit vectors: the projection's cost does not depend on their
    values, and Gram-Schmidt of hundreds of rows would time the consolidation instead.
    """
    import numpy as np
    import torch

    from clexp.config import DEFAULT_OPTIONS
    from clexp.methods.base import TaskContext
    from clexp.methods.registry import build_method
    from clexp.model import MLP
    from clexp.ogd import parameter_count
    from clexp.training import build_optimizer

    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size * steps, 784, generator=generator)
    labels = torch.randint(0, 10, (batch_size * steps,), generator=generator)
    tasks = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]]
    run = dict(DEFAULT_OPTIONS, ogd=True, tasks=tasks)
    context = TaskContext(task=tasks_before + 1, tasks=tasks, images=images, labels=labels,
                          indices=np.arange(len(labels)), train_images=np.zeros((0, 784)),
                          train_labels=labels.numpy(), batch_size=batch_size)
    result: dict = {"ogd_memory": memory}
    for variant, rows in (("mean_loss", tasks_before), ("gtl", tasks_before * memory)):
        torch.manual_seed(seed)
        model = MLP()
        size = parameter_count(model)
        method = build_method(run, model, seed)
        basis = torch.randn(rows, size, generator=generator, dtype=torch.float64)
        method.basis = basis.div_(basis.norm(dim=1, keepdim=True))  # in place: one copy
        optimizer = build_optimizer(model, run, tasks_before + 1)
        method.start_task(context)
        times = []
        for _ in range(repeats):
            elapsed = 0.0
            for step in range(-2, steps):
                x = images[max(step, 0) * batch_size :][:batch_size]
                y = labels[max(step, 0) * batch_size :][:batch_size]
                start = time.perf_counter()
                loss = method.scenario.loss(model(x)[0], y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                method.before_step()
                optimizer.step()
                method.after_step()
                if step >= 0:
                    elapsed += time.perf_counter() - start
            times.append(elapsed / steps)
        result[f"{variant}_rows"] = rows
        result[f"{variant}_step_s"] = statistics.median(times)
        result[f"{variant}_basis_bytes"] = rows * size * method.basis.element_size()
        result[f"{variant}_macs_per_step"] = 2 * rows * size
        del method, basis
    result["parameters"] = size
    result["ratio_gtl_vs_mean_loss"] = result["gtl_step_s"] / result["mean_loss_step_s"]
    return result


def print_ogd_step(result: dict) -> None:
    """The two lines of `bench_ogd_step`: seconds per step, rows, basis size, multiply-adds."""
    for variant, name in (("mean_loss", "notebook mean-loss basis"), ("gtl", "OGD-GTL basis")):
        print(f"{'ogd step, ' + name:>34}: {result[f'{variant}_step_s'] * 1000:,.2f} ms "
              f"({result[f'{variant}_rows']:,} rows x {result['parameters']:,} parameters, "
              f"{result[f'{variant}_basis_bytes'] / 1e6:,.1f} MB float64, "
              f"{result[f'{variant}_macs_per_step']:,} multiply-adds per projection)")
    print(f"{'ratio_gtl_vs_mean_loss':>34}: {result['ratio_gtl_vs_mean_loss']:,.2f} x")


# ---- the bare step and the study's cost per step ----


def bare_step_ms(steps: int = 400, repeats: int = 5, batch_size: int = 64, seed: int = 0
                 ) -> float:
    """Milliseconds of the bare training step of the study's network, one thread: zero_grad,
    forward, cross-entropy, backward, optimizer step (the study's default AdamW, fused) of
    the 784-120-84-10 MLP on a batch of 64 random images; median of `repeats` runs of
    `steps` steps, after a warm-up run. What a step costs with nothing else around it."""
    import torch

    from clexp.config import DEFAULT_OPTIONS
    from clexp.model import MLP
    from clexp.training import build_optimizer

    torch.manual_seed(seed)
    model = MLP()
    optimizer = build_optimizer(model, dict(DEFAULT_OPTIONS), 1)
    images = torch.rand(batch_size, 784)
    labels = torch.randint(0, 10, (batch_size,))

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model(images)
            torch.nn.functional.cross_entropy(logits, labels).backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps * 1e3

    run()
    return statistics.median(run() for _ in range(repeats))


TRAINING_RULES = ("train_task", "tune_point")
# not training and not the dataset: what the issue of the study's speed calls evaluation,
# analysis and figures (the tables and the report with them)
SETUP_RULES = ("prepare_data", "code_digest")


def training_steps(results_dir: str | Path, benchmark_dir: str | Path) -> pd.DataFrame:
    """Per `train_task` job: experiment, seed, task, its optimizer steps (the `steps` of its
    train log) and job seconds (its benchmark file), and whether it recorded the per-batch
    instruments (its forgetting curve has rows; the other seeds' is empty). Jobs without both
    files are left out."""
    results_dir, benchmark_dir = Path(results_dir), Path(benchmark_dir)
    records = []
    for path in sorted((benchmark_dir / "train_task").glob("*/seed*/task*.tsv")):
        experiment, seed, task = path.parent.parent.name, path.parent.name, path.stem
        log = results_dir / experiment / seed / task / "train_log.csv"
        if not log.is_file():
            continue
        steps = pd.read_csv(log)
        if "steps" not in steps.columns:
            continue
        curve = log.with_name("forgetting_curve.csv")
        records.append({"experiment": experiment, "seed": int(seed.removeprefix("seed")),
                        "task": int(task.removeprefix("task")),
                        "steps": int(steps["steps"].sum()),
                        "seconds": read_benchmark(path)["seconds"],
                        "instruments": curve.is_file() and len(pd.read_csv(curve)) > 0})
    return pd.DataFrame(records, columns=["experiment", "seed", "task", "steps", "seconds",
                                          "instruments"])


def step_costs(steps: pd.DataFrame, bare_ms: float | None) -> dict:
    """`train_task` job milliseconds per optimizer step over all jobs, over the seeds with the
    per-batch instruments and over the others, and their ratios to the bare step."""
    result = {}
    for name, part in (("all", steps), ("instrumented", steps[steps["instruments"]]),
                       ("uninstrumented", steps[~steps["instruments"]])):
        total = int(part["steps"].sum())
        per_step = float(part["seconds"].sum() / total * 1e3) if total else None
        result[f"train_ms_per_step_{name}"] = per_step
        result[f"train_steps_{name}"] = total
        result[f"train_ratio_to_bare_{name}"] = (per_step / bare_ms
                                                if per_step and bare_ms else None)
    return result


def cost_split(per_rule: pd.DataFrame) -> dict:
    """Job seconds of training (`TRAINING_RULES`) and of everything else but the dataset
    (evaluation, analysis, figures, tables, report), and the second over the first."""
    training = float(per_rule.loc[per_rule["rule"].isin(TRAINING_RULES), "total_s"].sum())
    rest = float(per_rule.loc[~per_rule["rule"].isin(TRAINING_RULES + SETUP_RULES),
                              "total_s"].sum())
    return {"training_job_s": training, "evaluation_figures_job_s": rest,
            "evaluation_figures_share_of_training": rest / training if training else None}


# ---- whole study ----


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` itself (not its children), from /proc;
    None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _snakemake(project: Path, *args: str, cpu: dict | None = None
               ) -> tuple[float, subprocess.CompletedProcess]:
    """Run Snakemake in `project`; its wall seconds and result. With `cpu` (a dict), also the
    CPU seconds Snakemake's own process spent (scheduling, bookkeeping; not its jobs), read
    from /proc every half second and last just before it exits, as `cpu["snakemake_s"]`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=project, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        if cpu is not None:
            import threading

            def sample() -> None:
                while process.poll() is None:
                    value = _process_cpu_s(process.pid)
                    if value is not None:
                        cpu["snakemake_s"] = value
                    time.sleep(0.5)

            threading.Thread(target=sample, daemon=True).start()
        stdout, stderr = process.communicate()
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return elapsed, result


def _planned_jobs(output: str) -> int:
    for line in output.splitlines():
        if line.strip().startswith("total"):
            return int(line.split()[-1])
    return 0


def bench_study(config: Path, workdir: Path, cores: int, edit_experiment: str) -> dict:
    """Run the study from an empty results/ in a scratch copy and measure it."""
    import yaml

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", workdir / "Snakefile")
    # profiles/default too: the study runs as a user runs it (its scheduler settings)
    for folder in ("workflow", "src", "profiles"):
        shutil.copytree(REPO / folder, workdir / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    settings = yaml.safe_load(config.read_text())
    root = Path(settings.get("data_root", "data"))
    if not root.is_absolute():
        settings["data_root"] = str((config.parent / root).resolve())
    (workdir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    bare_before = bare_step_ms()
    cpu: dict = {}
    wall, _ = _snakemake(workdir, "--cores", str(cores), "results/report.html", cpu=cpu)
    bare = statistics.median([bare_before, bare_step_ms()])
    noop, dry = _snakemake(workdir, "-n", "results/report.html")
    per_rule = rule_time_table(workdir / "results" / "benchmarks")
    per_run = run_time_table(workdir / "results" / "benchmarks")
    steps = training_steps(workdir / "results", workdir / "results" / "benchmarks")

    edited = yaml.safe_load((workdir / "config.yaml").read_text())
    edited["experiments"][edit_experiment] = dict(
        edited["experiments"].get(edit_experiment) or {}, lr=0.0011)
    (workdir / "config.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    _, plan = _snakemake(workdir, "-n", "results/report.html")
    rerun, _ = _snakemake(workdir, "--cores", str(cores), "results/report.html")
    return {
        "cores": cores,
        "study_wall_s": wall,
        "noop_dry_run_s": noop,
        "noop_planned_jobs": _planned_jobs(dry.stdout + dry.stderr),
        "edit_experiment": edit_experiment,
        "edit_rerun_jobs": _planned_jobs(plan.stdout + plan.stderr),
        "edit_rerun_s": rerun,
        "peak_rss_mb": float(per_rule["max_rss_mb"].max()) if len(per_rule) else None,
        "snakemake_cpu_s": cpu.get("snakemake_s"),
        "job_s": float(per_rule["total_s"].sum()) if len(per_rule) else 0.0,
        "bare_step_ms": bare,
        **step_costs(steps, bare),
        **cost_split(per_rule),
        "runs": int(per_run["runs"].sum()),
        "train_eval_s_per_run": train_eval_seconds_per_run(per_run),
        "per_rule": per_rule.to_dict(orient="records"),
        "per_experiment": per_run.to_dict(orient="records"),
    }


def _number(value, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def target_lines(study: dict) -> list[str]:
    """The study's speed targets, one line each: what was measured and the limit."""
    bare = study.get("bare_step_ms")
    share = study.get("evaluation_figures_share_of_training")
    return [
        f"bare step (zero_grad, forward, cross-entropy, backward, AdamW; one thread): "
        f"{_number(bare, 3, ' ms')}",
        f"train_task job time per step, all {study.get('train_steps_all', 0):,} steps: "
        f"{_number(study.get('train_ms_per_step_all'), 3, ' ms')} = "
        f"{_number(study.get('train_ratio_to_bare_all'))} x the bare step (target <= 2)",
        f"  seeds with the per-batch instruments: "
        f"{_number(study.get('train_ms_per_step_instrumented'), 3, ' ms')} = "
        f"{_number(study.get('train_ratio_to_bare_instrumented'))} x; the others: "
        f"{_number(study.get('train_ms_per_step_uninstrumented'), 3, ' ms')} = "
        f"{_number(study.get('train_ratio_to_bare_uninstrumented'))} x",
        f"evaluation, analysis, figures, tables, report: "
        f"{_number(study.get('evaluation_figures_job_s'), 0)} job-s = "
        f"{_number(None if share is None else 100 * share, 0)} % of training's "
        f"{_number(study.get('training_job_s'), 0)} job-s (train_task + tune_point; "
        f"target <= 40 %)",
        f"whole study from an empty results/, --cores {study.get('cores')}: "
        f"{_number(study.get('study_wall_s'), 0)} s (target <= 1,200 s)",
        f"no-op dry run: {_number(study.get('noop_dry_run_s'))} s, "
        f"{study.get('noop_planned_jobs')} jobs planned (target <= 3 s, 0 jobs)",
        f"peak RSS of a job: {_number(study.get('peak_rss_mb'), 0)} MB (target <= 1,500 MB)",
    ]


LOOP_UNITS = {"images_per_run": "images", "repeats": ""}


def loop_unit(key: str) -> str:
    """The unit of a `bench_loop` result: images per second, a ratio, or as listed."""
    if key.startswith("ratio_"):
        return "x"
    return LOOP_UNITS.get(key, "images/s")


def _reference_data_root(config: Path) -> tuple[Path | None, str, str]:
    """The raw dataset folder of `config` for the torchvision reference loop, the dataset,
    and why the reference is left out ('' when it is not)."""
    import yaml

    from clexp.config import DATA_ROOT_VARIABLE
    from clexp.data import EXPECTED_FILES, raw_folder

    settings = yaml.safe_load(config.read_text()) or {}
    dataset = settings.get("dataset", "mnist")
    root = Path(os.environ.get(DATA_ROOT_VARIABLE) or settings.get("data_root", "data"))
    if not root.is_absolute():
        root = config.parent / root
    folder = raw_folder(root, dataset)
    missing = [name for name in EXPECTED_FILES if not (folder / name).is_file()]
    if missing:
        return None, dataset, f"{folder} lacks {', '.join(missing)}"
    return root, dataset, ""


_LOAD_PROBE = """<script>
window.addEventListener("load", () => {
  document.body.setAttribute("data-load-ms", String(performance.now()));
});
</script>"""


def bench_report(report: Path, browser: str | None = None, repeats: int = 3) -> dict:
    """Size of the report and the time headless Chromium takes to load it, medians of
    `repeats`: the page's own load event (every embedded image decoded) from the navigation's
    start; the wall time of opening it and painting the first screen (1400x900 screenshot),
    and the same for an empty page (the browser's own start-up, to subtract)."""
    import re
    import tempfile

    browser = browser or next((shutil.which(n) for n in ("chromium", "chromium-browser",
                                                          "google-chrome") if shutil.which(n)),
                              None)
    if browser is None:
        raise SystemExit("Chromium is not installed (Debian package 'chromium'): the report's "
                         "load time cannot be measured")
    page = report.read_text()
    result = {"report": str(report), "bytes": len(page.encode()),
              "images": page.count("<img "),
              "png_images": page.count("data:image/png;base64,"),
              "webp_images": page.count("data:image/webp;base64,")}
    loads, walls, blanks = [], [], []
    with tempfile.TemporaryDirectory() as scratch:

        def chromium(repeat: int, *args: str) -> tuple[float, str]:
            start = time.perf_counter()
            done = subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 f"--user-data-dir={scratch}/profile{repeat}", "--window-size=1400,900",
                 *args], capture_output=True, text=True, timeout=300)
            return time.perf_counter() - start, done.stdout

        probed = Path(scratch) / "report.html"
        probed.write_text(page.replace("</body>", _LOAD_PROBE + "</body>", 1))
        shot = f"--screenshot={scratch}/screen.png"
        for repeat in range(repeats):
            found = re.search(r'data-load-ms="([0-9.]+)"',
                              chromium(repeat, "--dump-dom", probed.as_uri())[1])
            if found:
                loads.append(float(found.group(1)) / 1000)
            walls.append(chromium(repeat, shot, report.resolve().as_uri())[0])
            blanks.append(chromium(repeat, shot, "about:blank")[0])
    result["load_event_s"] = statistics.median(loads) if loads else None
    result["open_and_paint_s"] = statistics.median(walls)
    result["empty_page_s"] = statistics.median(blanks)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clexp.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["loop", "study", "report", "all"],
                        help="loop: the training loop; study: the whole workflow; report: the "
                             "report's size and Chromium load time; all: every one")
    parser.add_argument("--report", type=Path, default=REPO / "results/report.html",
                        help="the report for `report` (default: the project's)")
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml",
                        help="study config (default: the project's config.yaml); `study` runs "
                             "it, `loop` reads its data_root for the torchvision reference")
    parser.add_argument("--data", type=Path, default=None,
                        help="compact dataset file for `loop` (default: the project's "
                             "results/data/dataset.npz, or the study's with `all`)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/clexp-bench"),
                        help="scratch copy of the project for `study` (deleted first)")
    parser.add_argument("--cores", type=int, default=2, help="--cores of the study run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="`loop`: repeats of each loop; the median is reported")
    parser.add_argument("--epochs", type=int, default=2, help="`loop`: epochs per repeat")
    parser.add_argument("--ogd-memory", type=int, default=200,
                        help="`loop`: OGD-GTL's images per task (ogd_memory); its basis has "
                             "4 x this many rows before the last task")
    parser.add_argument("--edit-experiment", default="seq",
                        help="`study`: the experiment edited to time a partial rerun")
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/bench.json",
                        help="where the numbers are written as JSON")
    args = parser.parse_args(argv)

    data = args.data
    if args.what == "loop":
        data = data or REPO / "results/data/dataset.npz"
        if not data.is_file():
            parser.exit(1, f"clexp.bench: no dataset file at {data}; build it with "
                           "`snakemake --cores 2 results/data/dataset.npz` or pass --data FILE\n")

    from clexp.threads import limit_threads

    limit_threads(1)
    report: dict = {}
    if args.what in ("study", "all"):
        report["study"] = bench_study(args.config, args.workdir, args.cores,
                                      args.edit_experiment)
        study = report["study"]
        print(pd.DataFrame(study["per_rule"]).to_string(index=False, float_format="%.2f"))
        print("\nper experiment, mean over its seeds (job seconds per run):")
        print(pd.DataFrame(study["per_experiment"]).to_string(index=False, float_format="%.2f"))
        for key, unit in (("study_wall_s", "s"), ("noop_dry_run_s", "s"),
                          ("noop_planned_jobs", "jobs"), ("edit_rerun_jobs", "jobs"),
                          ("edit_rerun_s", "s"), ("peak_rss_mb", "MB"), ("runs", "runs"),
                          ("train_eval_s_per_run", "s per run (training + evaluation)"),
                          ("job_s", "job seconds in all"),
                          ("snakemake_cpu_s", "CPU s of Snakemake's own process")):
            print(f"{key:>20}: {study[key]} {unit}")
        print("\ntargets (measured in this run, side by side):")
        for line in target_lines(study):
            print(f"  {line}")
        data = data or args.workdir / "results/data/dataset.npz"
    if args.what in ("loop", "all"):
        root, dataset, why = _reference_data_root(args.config)
        if why:
            print(f"the torchvision reference loop is left out: {why}")
        report["loop"] = bench_loop(data, args.repeats, args.epochs, data_root=root,
                                    dataset=dataset)
        for key, value in report["loop"].items():
            shown = f"{value:,.2f}" if isinstance(value, float) else f"{value}"
            print(f"{key:>34}: {shown} {loop_unit(key)}".rstrip())
        report["ogd_step"] = bench_ogd_step(args.ogd_memory, repeats=args.repeats)
        print_ogd_step(report["ogd_step"])
    if args.what in ("report", "all"):
        # `all` measures the report the study benchmark just built
        page = args.workdir / "results/report.html" if args.what == "all" else args.report
        report["report"] = bench_report(page)
        for key, value in report["report"].items():
            print(f"{key:>20}: {value:,.2f}" if isinstance(value, float) else
                  f"{key:>20}: {value}")
        print(f"{'size_mb':>20}: {report['report']['bytes'] / 1e6:.2f} (budget 20)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
