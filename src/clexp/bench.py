"""Benchmarks of the study's cost: `python -m clexp.bench --help`.

- `loop`: clexp's train loop (batches sliced from tensors held in memory) against the
  common reference loop (a DataLoader over a map-style dataset, batch 64), same model, data,
  epochs and seed, side by side in one process; median of repeats and their ratio.
- `study`: the whole workflow from an empty results/ in a scratch copy of the project: wall
  time of `snakemake --cores N results/report.html`, seconds and peak memory per rule (from
  the `benchmark:` files every rule writes), the no-op dry run, and a one-experiment edit's
  rerun.

Both print a table and write `results/benchmarks/bench.json` (or `--output`). Numbers are
printed, never asserted: the targets are judged by a reader, not by a timed test.
"""

from __future__ import annotations

import argparse
import json
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


def rule_time_table(benchmark_dir: str | Path, log_dir: str | Path | None = None) -> pd.DataFrame:
    """Per rule: jobs, total and median seconds, peak RSS (MB), from Snakemake's benchmark
    TSVs under `benchmark_dir` (one folder or file per rule).

    A job run by the job server was measured by Snakemake as its small client process; its
    real peak RSS is the one its log records (`clexp.jobserver.job_usage`), looked up in
    `log_dir` (default: `logs` beside `benchmark_dir`) under the same relative path.
    """
    benchmark_dir = Path(benchmark_dir)
    log_dir = benchmark_dir.parent / "logs" if log_dir is None else Path(log_dir)
    records = []
    for path in benchmark_dir.rglob("*.tsv"):
        relative = path.relative_to(benchmark_dir)
        rule = relative.parts[0].removesuffix(".tsv")
        row = pd.read_csv(path, sep="\t").iloc[0]
        max_rss = pd.to_numeric(row.get("max_rss"), errors="coerce")
        usage = job_usage((log_dir / relative).with_suffix(".log"))
        if usage is not None:
            max_rss = usage["max_rss_mb"]
        records.append({"rule": rule, "seconds": float(row["s"]), "max_rss_mb": max_rss})
    if not records:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "median_s", "max_rss_mb"])
    frame = pd.DataFrame(records)
    table = frame.groupby("rule").agg(
        jobs=("seconds", "size"), total_s=("seconds", "sum"), median_s=("seconds", "median"),
        max_rss_mb=("max_rss_mb", "max"),
    )
    return table.sort_values("total_s", ascending=False).reset_index()


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


def _torchvision_subset(data_root: Path, dataset: str, classes):
    """torchvision's training split of `dataset` under `data_root`, restricted to `classes`:
    the MNIST tutorials' dataset (each image decoded and converted by `ToTensor` per item)."""
    import torch
    import torchvision.datasets
    from torchvision import transforms

    from clexp.data import TORCHVISION_DATASETS

    name, _ = TORCHVISION_DATASETS[dataset]
    full = getattr(torchvision.datasets, name)(str(data_root), train=True, download=False,
                                               transform=transforms.ToTensor())
    indices = torch.isin(full.targets, torch.tensor(classes)).nonzero().flatten().tolist()
    return torch.utils.data.Subset(full, indices)


def bench_loop(data_path: Path, repeats: int, epochs: int, data_root: Path | None = None,
               dataset: str = "mnist") -> dict:
    """Images per second of clexp's loop and of the DataLoader reference (same work).

    `clexp`: `train_task` (batches sliced from tensors in memory, multi-tensor AdamW);
    `clexp_instrumented`: the same with the per-batch records of the study (forgetting curve
    on 200 images, relative updates, gradient sums); `dataloader`: the common way, as in the
    MNIST tutorials: torchvision's dataset with `ToTensor`, a DataLoader, `torch.optim.AdamW`
    with torch's defaults (on the CPU its per-tensor loop, bitwise the same arithmetic) -
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
        tutorial_data = _torchvision_subset(data_root, dataset, [1, 2])
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


# ---- whole study ----


def _snakemake(project: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=project, env=env,
                            capture_output=True, text=True)
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
    for folder in ("workflow", "src"):
        shutil.copytree(REPO / folder, workdir / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    settings = yaml.safe_load(config.read_text())
    root = Path(settings.get("data_root", "data"))
    if not root.is_absolute():
        settings["data_root"] = str((config.parent / root).resolve())
    (workdir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    wall, _ = _snakemake(workdir, "--cores", str(cores), "results/report.html")
    noop, dry = _snakemake(workdir, "-n", "results/report.html")
    per_rule = rule_time_table(workdir / "results" / "benchmarks")

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
        "per_rule": per_rule.to_dict(orient="records"),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m clexp.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["loop", "study", "all"])
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml",
                        help="study config for `study` (data_root relative to it)")
    parser.add_argument("--data", type=Path, default=None,
                        help="compact dataset file for `loop` (default: the study's)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/clexp-bench"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--edit-experiment", default="seq")
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/bench.json")
    args = parser.parse_args(argv)

    from clexp.threads import limit_threads

    limit_threads(1)
    report: dict = {}
    if args.what in ("study", "all"):
        report["study"] = bench_study(args.config, args.workdir, args.cores,
                                      args.edit_experiment)
        study = report["study"]
        print(pd.DataFrame(study["per_rule"]).to_string(index=False, float_format="%.2f"))
        for key in ("study_wall_s", "noop_dry_run_s", "noop_planned_jobs", "edit_rerun_jobs",
                    "edit_rerun_s", "peak_rss_mb"):
            print(f"{key:>20}: {study[key]}")
    if args.what in ("loop", "all"):
        data = args.data or args.workdir / "results/data/dataset.npz"
        if not data.exists():
            raise SystemExit(f"{data} does not exist: run `study` first or pass --data")
        import yaml

        settings = yaml.safe_load(args.config.read_text())
        root = args.config.parent / settings.get("data_root", "data")
        if not root.exists():
            print(f"{root} does not exist: the torchvision reference loop is left out")
            root = None
        report["loop"] = bench_loop(data, args.repeats, args.epochs, data_root=root,
                                    dataset=settings.get("dataset", "mnist"))
        for key, value in report["loop"].items():
            print(f"{key:>34}: {value:,.2f}" if isinstance(value, float) else
                  f"{key:>34}: {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
