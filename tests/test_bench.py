"""The benchmark's tables: they run, and they read what the jobs recorded (no timing asserted)."""

from __future__ import annotations

import pytest

from clexp.bench import (
    bare_step_ms,
    bench_loop,
    cost_split,
    rule_time_table,
    run_time_table,
    step_costs,
    target_lines,
    train_eval_seconds_per_run,
    training_steps,
)
from clexp.jobserver import JOB_USAGE_PREFIX, job_usage

from helpers import write_synthetic_dataset

TSV_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, seconds, max_rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TSV_HEADER + f"{seconds}\t0:00:01\t{max_rss}\t1\t1\t1\t0\t0\t50\t1\n")


def test_rule_table_sums_jobs_and_takes_the_job_servers_memory_from_the_log(tmp_path):
    benchmarks, logs = tmp_path / "results/benchmarks", tmp_path / "results/logs"
    write_benchmark(benchmarks / "train_task/seq/seed0/task1.tsv", 2.0, 30.0)
    write_benchmark(benchmarks / "train_task/seq/seed0/task2.tsv", 4.0, 31.0)
    write_benchmark(benchmarks / "train_task/seq/seed0/task3.tsv", 9.0, 700.0)
    write_benchmark(benchmarks / "report.tsv", 1.5, 200.0)
    # task 1 and 2 ran in the job server: Snakemake measured the client (30 MB); the log has
    # the child's peak. Task 3 ran in its own process: the benchmark file is right.
    log = logs / "train_task/seq/seed0/task1.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"training...\n{JOB_USAGE_PREFIX} pid 1 exit 0 cpu_s 1.50 max_rss_mb 812.5\n")
    (logs / "train_task/seq/seed0/task2.log").write_text(
        f"{JOB_USAGE_PREFIX} pid 2 exit 0 cpu_s 3.00 max_rss_mb 640.0\n")

    table = rule_time_table(benchmarks).set_index("rule")
    assert table.loc["train_task", "jobs"] == 3
    assert table.loc["train_task", "total_s"] == 15.0
    assert table.loc["train_task", "median_s"] == 4.0
    assert table.loc["train_task", "max_rss_mb"] == 812.5
    assert table.loc["report", "max_rss_mb"] == 200.0
    assert list(table.index) == ["train_task", "report"]  # most time first


def test_run_table_gives_training_and_evaluation_seconds_per_experiment_seed(tmp_path):
    benchmarks = tmp_path / "benchmarks"
    for seed, seconds in ((0, 3.0), (1, 5.0)):  # seq: two seeds, two tasks each
        for task in (1, 2):
            write_benchmark(benchmarks / f"train_task/seq/seed{seed}/task{task}.tsv", seconds, 1)
            write_benchmark(benchmarks / f"evaluate_checkpoint/seq/seed{seed}/task{task}.tsv",
                            1.0, 1)
    write_benchmark(benchmarks / "train_task/joint/seed0/task1.tsv", 20.0, 1)
    write_benchmark(benchmarks / "evaluate_checkpoint/joint/seed0/task1.tsv", 2.0, 1)
    # analysis is not part of a run's training + evaluation
    write_benchmark(benchmarks / "analyze_checkpoint/seq/seed0/task1.tsv", 50.0, 1)

    table = run_time_table(benchmarks).set_index("experiment")
    assert list(table.index) == ["joint", "seq"]  # most time first
    assert table.loc["seq", "runs"] == 2
    assert table.loc["seq", "train_s"] == 8.0  # (2 x 3 + 2 x 5) / 2 runs
    assert table.loc["seq", "evaluate_s"] == 2.0
    assert table.loc["joint", "train_eval_s"] == 22.0
    assert train_eval_seconds_per_run(run_time_table(benchmarks)) == (22.0 + 2 * 10.0) / 3
    assert train_eval_seconds_per_run(run_time_table(tmp_path / "none")) is None


def write_train_log(path, steps):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"1,{epoch},0.001,0.5,0.5,0.0,0.9,0.4,0.9,0,{count}\n"
                   for epoch, count in enumerate(steps, start=1))
    path.write_text("task,epoch,lr,train_loss,train_ce,train_penalty,train_acc,val_loss,"
                    "val_acc,ogd_basis_size,steps\n" + rows)


def test_step_costs_divide_training_job_seconds_by_the_logged_steps(tmp_path):
    results, benchmarks = tmp_path / "results", tmp_path / "results/benchmarks"
    # seed 0 recorded the instruments: 2 jobs, 1000 steps, 3 s; seed 1: 1 job, 1000 steps, 1 s
    write_benchmark(benchmarks / "train_task/seq/seed0/task1.tsv", 1.0, 1)
    write_train_log(results / "seq/seed0/task1/train_log.csv", [200, 200])
    write_benchmark(benchmarks / "train_task/seq/seed0/task2.tsv", 2.0, 1)
    write_train_log(results / "seq/seed0/task2/train_log.csv", [300, 300])
    write_benchmark(benchmarks / "train_task/seq/seed1/task1.tsv", 1.0, 1)
    write_train_log(results / "seq/seed1/task1/train_log.csv", [1000])
    # a job without its train log is left out (not counted as zero steps)
    write_benchmark(benchmarks / "train_task/seq/seed1/task2.tsv", 50.0, 1)
    # seed 0's jobs recorded a forgetting curve, seed 1's an empty one
    for task in (1, 2):
        (results / f"seq/seed0/task{task}/forgetting_curve.csv").write_text(
            "step,epoch,batch,eval_task,acc\n0,0,0,1,0.5\n")
    (results / "seq/seed1/task1/forgetting_curve.csv").write_text(
        "step,epoch,batch,eval_task,acc\n")

    steps = training_steps(results, benchmarks)
    assert len(steps) == 3 and steps["steps"].sum() == 2000
    costs = step_costs(steps, bare_ms=0.5)
    assert costs["train_ms_per_step_all"] == pytest.approx(2.0)  # 4 s / 2000 steps
    assert costs["train_ms_per_step_instrumented"] == pytest.approx(3.0)
    assert costs["train_ms_per_step_uninstrumented"] == pytest.approx(1.0)
    assert costs["train_ratio_to_bare_all"] == pytest.approx(4.0)
    assert costs["train_steps_instrumented"] == 1000
    lines = "\n".join(target_lines({**costs, "bare_step_ms": 0.5, "cores": 2}))
    assert "2.000 ms = 4.00 x the bare step (target <= 2)" in lines


def test_cost_split_sets_evaluation_and_figures_against_training():
    import pandas as pd

    per_rule = pd.DataFrame({"rule": ["train_task", "tune_point", "evaluate_checkpoint",
                                      "plot_run", "prepare_data", "report"],
                             "total_s": [60.0, 40.0, 20.0, 5.0, 100.0, 5.0]})
    split = cost_split(per_rule)
    assert split["training_job_s"] == 100.0
    assert split["evaluation_figures_job_s"] == 30.0  # the dataset is neither
    assert split["evaluation_figures_share_of_training"] == pytest.approx(0.3)


def test_bare_step_is_a_positive_time():
    assert 0 < bare_step_ms(steps=5, repeats=1) < 1000


def test_job_usage_is_none_without_the_line(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("nothing here\n")
    assert job_usage(log) is None
    assert job_usage(tmp_path / "missing.log") is None


def test_rule_table_reads_only_the_files_it_is_given(tmp_path):
    benchmarks = tmp_path / "results/benchmarks"
    ours = [benchmarks / f"train_task/seq/seed0/task{t}.tsv" for t in (1, 2)]
    for path in ours:
        write_benchmark(path, 2.0, 30.0)
    # an experiment built earlier in this folder, a stray table, a folder named like a table
    write_benchmark(benchmarks / "train_task/old/seed0/task1.tsv", 3.0, 30.0)
    write_benchmark(benchmarks / "train_task/stray.tsv", 9999.0, 30.0)
    (benchmarks / "notes.tsv").mkdir()
    missing = benchmarks / "summarize.tsv"  # listed, not written (yet): skipped
    table = rule_time_table(benchmarks, files=[*ours, missing]).set_index("rule")
    assert list(table.index) == ["train_task"]
    assert table.loc["train_task", "jobs"] == 2 and table.loc["train_task", "total_s"] == 4.0


@pytest.mark.parametrize(("content", "reason"), [
    ("", "EmptyDataError"),
    (TSV_HEADER, "no row with a column 's'"),
    ("junk\n", "no row with a column 's'"),
    (TSV_HEADER.replace("s\t", "x\t", 1) + "1\t0\t1\t1\t1\t1\t0\t0\t50\t1\n",
     "no row with a column 's'"),
    (TSV_HEADER + "nan\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t1\n", "s is"),
    (None, "IsADirectoryError"),
])
def test_a_malformed_benchmark_file_is_named(tmp_path, content, reason):
    benchmarks = tmp_path / "benchmarks"
    write_benchmark(benchmarks / "train_task/seq/seed0/task1.tsv", 2.0, 30.0)
    bad = benchmarks / "summarize.tsv"
    if content is None:
        bad.mkdir()
    else:
        bad.write_text(content)
    files = [benchmarks / "train_task/seq/seed0/task1.tsv", bad]
    with pytest.raises(ValueError, match=f"{bad}: not a benchmark table") as error:
        rule_time_table(benchmarks, files=files)
    assert reason in str(error.value)
    unreadable: list[str] = []
    table = rule_time_table(benchmarks, files=files, unreadable=unreadable)
    assert list(table["rule"]) == ["train_task"]
    assert len(unreadable) == 1 and unreadable[0].startswith(f"{bad}: not a benchmark table")


def test_loop_benchmark_reports_every_loop_and_the_ratios(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data.npz", per_class=100)
    result = bench_loop(data, repeats=1, epochs=1)
    for name in ("clexp", "clexp_instrumented", "dataloader_tensors"):
        assert result[name] > 0
    assert result["ratio_clexp_vs_dataloader_tensors"] == (
        result["clexp"] / result["dataloader_tensors"])
    assert "dataloader" not in result  # the torchvision loop needs the raw dataset
    assert result["images_per_run"] == 200  # classes 1 and 2, 100 images each, one epoch


def test_report_benchmark_counts_the_page_and_times_its_load(tmp_path):
    import base64
    import shutil

    import pytest

    from clexp.bench import bench_report

    if not shutil.which("chromium"):
        pytest.skip("Chromium is not installed")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(2, 1))
    figure.savefig(tmp_path / "f.png")
    data = base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
    page = tmp_path / "page.html"
    page.write_text(f'<html><body><img src="data:image/png;base64,{data}"></body></html>')
    result = bench_report(page, repeats=1)
    assert result["bytes"] == page.stat().st_size
    assert result["images"] == result["png_images"] == 1
    assert result["load_event_s"] is not None and result["load_event_s"] > 0


def test_ogd_step_benchmark_times_both_bases_and_counts_their_cost(capsys):
    from clexp.bench import bench_ogd_step, print_ogd_step

    result = bench_ogd_step(memory=3, steps=2, repeats=1)
    assert result["mean_loss_rows"] == 4 and result["gtl_rows"] == 12
    size = result["parameters"]
    assert result["gtl_basis_bytes"] == 12 * size * 8
    assert result["mean_loss_macs_per_step"] == 2 * 4 * size
    assert result["mean_loss_step_s"] > 0 and result["gtl_step_s"] > 0
    print_ogd_step(result)
    printed = capsys.readouterr().out
    assert "OGD-GTL basis" in printed and "12 rows" in printed
