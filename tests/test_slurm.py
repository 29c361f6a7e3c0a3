"""The tiny study through a real one-node SLURM cluster and the official executor plugin.

Needs root and Debian's `slurm-wlm` and `munge` (`.ci/run` installs them); skipped elsewhere.
The executor plugin is installed into a folder of its own for this test only, so that the
default install (and every other test) never loads it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
MinJobAge=300
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


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The SLURM executor plugin, installed into a folder of its own."""
    target = tmp_path_factory.mktemp("slurm-plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), "snakemake-executor-plugin-slurm",
         "snakemake-executor-plugin-slurm-jobstep", "throttler"],
        check=True,
    )
    return target


def test_tiny_study_runs_through_slurm(slurm_cluster, plugin_path, tmp_path):
    require_data()
    config = tiny_config(experiments={"seq": {}}, tasks=[[1, 2], [3, 4]])
    project = make_project(tmp_path / "project", config)
    shutil.copytree(REPO / "profiles", project / "profiles")
    env = dict(slurm_cluster, PYTHONPATH=str(plugin_path))
    command = [
        sys.executable, "-m", "snakemake", "--profile", "profiles/slurm",
        "--default-resources", f"slurm_partition={PARTITION}", "runtime=10", "mem_mb=500",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--jobs", "4", "--latency-wait", "5",
        "results/report.html",
    ]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                            timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for path in ("results/report.html", "results/summary.csv",
                 "results/seq/seed0/task2/metrics.json",
                 "results/seq/seed0/task2/figures/latent_map.png"):
        assert (project / path).exists(), path

    # The jobs really went through SLURM: the plugin logs each one as
    # .snakemake/slurm_logs/rule_<rule>/.../<SLURM job id>.log, and the controller knows the ids.
    logs = list((project / ".snakemake" / "slurm_logs").rglob("*.log"))
    rules = {part.removeprefix("rule_") for log in logs for part in log.parts
             if part.startswith("rule_")}
    assert {"prepare_data", "train_task", "evaluate_checkpoint"} <= rules, logs
    ids = {log.stem for log in logs if log.stem.isdigit()}
    assert len(ids) >= 5  # prepare, 2 x train, 2 x evaluate, figure groups
    known = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], env=slurm_cluster,
                           capture_output=True, text=True).stdout.split()
    assert ids <= set(known), (ids, known)
    # Cluster jobs run in their own Python: no job server, not even for the local rules.
    job_logs = list((project / "results" / "logs").rglob("*.log"))
    assert job_logs and not any(jobserver.job_usage(log) for log in job_logs)
