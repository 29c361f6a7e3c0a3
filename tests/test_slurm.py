"""The tiny study through a real one-node SLURM cluster and the official executor plugin.

Needs root and Debian's `slurm-wlm` and `munge` (`.ci/run` installs them); skipped elsewhere.
The executor plugin (the versions pinned in pyproject.toml's `slurm` extra) is installed into a
folder of its own for this test only, so that the default install (and every other test) never
loads it. Every sbatch call goes through a logging shim first on PATH, so that the test counts
the submissions and checks them against the jobs SLURM itself knows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from clexp import jobserver

from conftest import REPO, make_project, require_data, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

PARTITION = "clexp"
SLURM_CONF = """\
ClusterName=clexp-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(pid_file: Path) -> None:
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().split()[0]), 15)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """Start munged, slurmctld and slurmd on this machine; stop them by PID file afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts daemons as root")
    # Daemons live in sbin, which a non-login PATH may lack.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "runuser")
               if not shutil.which(b, path=search)]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing; Debian packages "
                    "slurm-wlm and munge)")
    # Jobs' own srun calls read the default location, whatever SLURM_CONF says; a machine
    # that already has one is a real cluster node, which this test must not touch.
    default_conf = Path("/etc/slurm/slurm.conf")
    if default_conf.exists():
        pytest.skip(f"{default_conf} exists: not starting a test cluster on a configured node")
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    host = socket.gethostname().split(".")[0]
    memory = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = default_conf
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(SLURM_CONF.format(host=host, root=root, cpus=os.cpu_count(),
                                      memory=memory, partition=PARTITION))
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=search)

    munge_run = Path("/run/munge")
    munge_run.mkdir(parents=True, exist_ok=True)
    shutil.chown(munge_run, "munge", "munge")
    munge_pid = munge_run / "munged.pid"
    started_munge = not munge_pid.exists()
    if started_munge:
        subprocess.run([shutil.which("runuser", path=search), "-u", "munge", "--",
                        shutil.which("munged", path=search)], check=True)
    try:
        subprocess.run([shutil.which("slurmctld", path=search)], env=env, check=True)
        subprocess.run([shutil.which("slurmd", path=search)], env=env, check=True)
        _wait(lambda: "idle" in subprocess.run(
            ["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout,
            60, "the SLURM node to become idle")
        yield env
    finally:
        _stop(root / "slurmd.pid")
        _stop(root / "slurmctld.pid")
        if started_munge:
            _stop(munge_pid)
        conf.unlink()


def slurm_extra_pins() -> list[str]:
    """The requirements of pyproject.toml's `slurm` extra (the plugin versions tested here)."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^slurm = \[(.*?)\]", text, re.S | re.M).group(1)
    return re.findall(r'"([^"]+)"', block)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The SLURM executor plugin at the pinned versions, installed into a folder of its own."""
    target = tmp_path_factory.mktemp("slurm-plugin")
    pins = slurm_extra_pins()
    assert pins and all("==" in pin for pin in pins), pins
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), *pins, "throttler"],
        check=True,
    )
    return target


SBATCH_SHIM = """#!/bin/sh
# Log every sbatch call (the job id it printed, then its arguments), then pass its answer on.
out=$("{real}" "$@")
status=$?
printf '%s\\t%s\\n' "$out" "$*" >> "{log}"
printf '%s\\n' "$out"
exit $status
"""
EXPERIMENT = re.compile(r"experiment=([A-Za-z0-9_][A-Za-z0-9_.-]*)")


class Submissions:
    """The sbatch calls logged by the shim: (SLURM job id, what it runs)."""

    def __init__(self, log: Path):
        self.log = log
        self.seen = 0

    def all(self) -> list[tuple[str, str]]:
        calls = []
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            job_id, arguments = line.split("\t", 1)
            experiments = set(EXPERIMENT.findall(arguments))
            if experiments:
                # One submission, one experiment: its group job.
                assert len(experiments) == 1, arguments
                what = f"run_{experiments.pop()}"
            else:  # a job of its own: its rule (anything else is shown whole)
                found = re.search(r"--target-jobs '?(\w+):", arguments)
                what = found.group(1) if found else arguments
            calls.append((job_id.split(";")[0], what))
        return calls

    def new(self) -> list[tuple[str, str]]:
        """The calls since the last `new`."""
        calls = self.all()
        fresh, self.seen = calls[self.seen :], len(calls)
        return fresh


def squeue(env, *fields: str, job: str | None = None) -> list[list[str]]:
    """Every job SLURM knows (finished ones too: MinJobAge keeps them for an hour)."""
    command = ["squeue", "-h", "-t", "all", "-o", "|".join(fields)]
    if job is not None:
        command += ["-j", job]
    lines = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return [line.split("|") for line in lines.stdout.split()]


def wall_seconds(env, job: str) -> float:
    ((start, end),) = squeue(env, "%S", "%e", job=job)
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def benchmark_seconds(project: Path, experiment: str, since: float = 0) -> dict[str, list[float]]:
    """Per rule, the benchmark seconds of one experiment's jobs (those run `since`)."""
    seconds: dict[str, list[float]] = {}
    for path in (project / "results" / "benchmarks").glob(f"*/{experiment}/**/*.tsv"):
        if path.stat().st_mtime < since:
            continue
        value = float(path.read_text().splitlines()[1].split("\t")[0])
        seconds.setdefault(path.relative_to(project / "results" / "benchmarks").parts[0],
                           []).append(value)
    return seconds


def member_logs(project: Path, experiment: str, since: float = 0) -> list[Path]:
    return sorted(log for log in (project / "results" / "logs").glob(f"*/{experiment}/**/*.log")
                  if log.stat().st_mtime >= since)


def test_one_cluster_job_per_experiment(slurm_cluster, plugin_path, tmp_path):
    require_data()
    experiments = {"seq": {}, "seq_bn": {"norm": "batch"}}
    config = tiny_config(experiments=experiments, seeds=[0, 1], tasks=[[1, 2], [3, 4]])
    project = make_project(tmp_path / "project", config)
    shutil.copytree(REPO / "profiles", project / "profiles")
    shim = tmp_path / "bin"
    shim.mkdir()
    real = shutil.which("sbatch", path=slurm_cluster["PATH"])
    (shim / "sbatch").write_text(SBATCH_SHIM.format(real=real, log=tmp_path / "sbatch.log"))
    (shim / "sbatch").chmod(0o755)
    env = dict(slurm_cluster, PYTHONPATH=str(plugin_path),
               PATH=os.pathsep.join([str(shim), slurm_cluster["PATH"]]))
    submissions = Submissions(tmp_path / "sbatch.log")
    # A group job takes `cores` CPUs: no more than this one node has.
    cores = min(4, os.cpu_count())

    def cluster_run(*extra: str, wait: bool = True):
        command = [
            sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm",
            "--default-resources", f"slurm_partition={PARTITION}", "runtime=5", "mem_mb=1000",
            "--cores", str(cores),
            "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "2",
            "--seconds-between-status-checks", "2",
            "--slurm-keep-successful-logs",
            "--latency-wait", "5",
            "results/report.html", *extra,
        ]
        process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        if not wait:
            return process
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-6000:]
        return output

    started = time.monotonic()
    cluster_run()
    print(f"first run: {time.monotonic() - started:.0f} s")
    for path in ("results/report.html", "results/summary.csv",
                 "results/seq/seed1/task2/metrics.json",
                 "results/seq_bn/seed0/task2/figures/latent_map.png"):
        assert (project / path).exists(), path

    # One job per experiment, plus the data job; the aggregates ran on this host.
    first = submissions.new()
    assert sorted(what for _, what in first) == ["prepare_data", "run_seq", "run_seq_bn"]
    # SLURM knows exactly the jobs the shim saw submitted.
    assert sorted(job for (job,) in squeue(slurm_cluster, "%i")) == sorted(j for j, _ in first)

    # The members of a group job ran side by side: the group took less time than its members.
    # Every job of the experiment is a member: both seeds' training, evaluation, untrained
    # control and run figures, and the analysis and figures of the analysed seed (seed 0).
    members = {"train_task": 4, "evaluate_checkpoint": 4, "evaluate_untrained": 2,
               "plot_run": 2, "analyze_checkpoint": 2, "plot_checkpoint": 2, "plot_run_tasks": 1}
    for job, what in first:
        if what.startswith("run_"):
            seconds = benchmark_seconds(project, what.removeprefix("run_"))
            assert {rule: len(values) for rule, values in seconds.items()} == members
            wall = wall_seconds(slurm_cluster, job)
            total = sum(sum(values) for values in seconds.values())
            print(f"{what}: group job {wall:.0f} s, its {sum(members.values())} jobs {total:.0f} s")
            assert wall < total, (wall, seconds)
    # Inside a group job its members forked from one job server; the data job ran alone,
    # and the aggregates on the submitting host: each in its own Python.
    for experiment in experiments:
        logs = member_logs(project, experiment)
        assert logs and all(jobserver.job_usage(log) for log in logs), logs
    others = [log for log in (project / "results" / "logs").rglob("*.log")
              if not any(log in member_logs(project, e) for e in experiments)]
    assert others and not any(jobserver.job_usage(log) for log in others), others
    with_server = benchmark_seconds(project, "seq_bn")

    # Nothing changed: nothing is submitted.
    cluster_run()
    assert submissions.new() == []

    # One experiment's setting changed: exactly its group job is submitted. (Without the job
    # server this time, to measure what it saves inside a group job.)
    config["experiments"]["seq_bn"]["epochs"] = 1
    (project / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    edited = time.time()
    cluster_run("--config", "job_server=false")
    assert [what for _, what in submissions.new()] == ["run_seq_bn"]
    rerun = member_logs(project, "seq_bn", since=edited)
    assert rerun and not any(jobserver.job_usage(log) for log in rerun), rerun
    without_server = benchmark_seconds(project, "seq_bn", since=edited)
    assert "train_task" in without_server and "evaluate_checkpoint" in without_server
    # The same work in both runs, but for training (one epoch instead of two).
    for rule in sorted(without_server):
        print(f"{rule} in a group job: median {statistics.median(with_server[rule]):.2f} s "
              f"with the job server, {statistics.median(without_server[rule]):.2f} s without")

    # A group job that fails is resubmitted whole; its training jobs that had finished are
    # restored, not trained again. Cancel seq's group job once its first checkpoint exists.
    config["experiments"]["seq"]["epochs"] = 1
    (project / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    edited = time.time()
    checkpoint = project / "results/seq/seed0/task1/checkpoint.pt"
    key = project / "results/kept/train_task/seq/seed0/task1/key"  # the job's last write
    process = cluster_run(wait=False)
    deadline = time.monotonic() + 600
    while not (key.exists() and key.stat().st_mtime >= edited):
        assert process.poll() is None and time.monotonic() < deadline, "task 1 never finished"
        time.sleep(0.1)
    inode = checkpoint.stat().st_ino
    ((cancelled, what),) = submissions.new()
    assert what == "run_seq"
    subprocess.run(["scancel", cancelled], env=slurm_cluster, check=True)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-6000:]
    ((resubmitted, what),) = submissions.new()
    assert what == "run_seq" and resubmitted != cancelled
    assert squeue(slurm_cluster, "%T", job=cancelled) == [["CANCELLED"]]
    assert checkpoint.stat().st_ino == inode  # the same file, linked back into place
    log = project / "results/logs/train_task/seq/seed0/task1.log"
    assert "restored from results/kept/train_task/seq/seed0/task1" in log.read_text()
    metrics = json.loads((project / "results/seq/seed0/task2/metrics.json").read_text())
    assert metrics["epochs_run"] == 1
