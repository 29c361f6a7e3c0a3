"""The job server: a job forked from it behaves like the job run as its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clexp import jobserver

from conftest import REPO, make_project, require_data, snakemake, tiny_config

pytestmark = pytest.mark.skipif(not jobserver.available(), reason="needs Linux")

CLIENT = textwrap.dedent(
    """
    import os, sys, time
    from clexp.jobserver import delegate
    delegate(sys.argv[1])
    # from here on: the job itself (in the server's child, or here without a server)
    print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv,
                      "marker": os.environ.get("CLIENT_MARKER")}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    action = sys.argv[2]
    if action == "fail":
        raise RuntimeError("the job failed on purpose")
    if action == "sleep":
        open(sys.argv[3], "w").write(str(os.getpid()))
        time.sleep(120)
    sys.exit(int(action))
    """
).replace("import os, sys, time", "import json, os, sys, time")


@pytest.fixture(scope="module")
def server():
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    yield process
    jobserver.stop(process)
    if saved is not None:
        os.environ[jobserver.SOCKET_VARIABLE] = saved


def run_client(tmp_path: Path, *args: str, env: dict | None = None, **popen):
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = str(REPO / "src")
    environment["CLIENT_MARKER"] = "from the client"
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "job.log"), *args], cwd=tmp_path,
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def test_a_job_runs_in_a_forked_child_with_the_clients_cwd_environment_and_streams(
    server, tmp_path
):
    client = run_client(tmp_path, "3")
    out, err = client.communicate(timeout=60)
    assert client.returncode == 3, err
    job = json.loads(out.splitlines()[-1])
    assert job["pid"] != client.pid  # it ran in the server's child ...
    assert job["cwd"] == str(tmp_path)  # ... as the client would have
    assert job["marker"] == "from the client"
    assert job["argv"][1:] == [str(tmp_path / "job.log"), "3"]
    assert "to stderr" in err
    usage = jobserver.job_usage(tmp_path / "job.log")
    assert usage is not None and usage["max_rss_mb"] > 0


def test_an_exception_in_the_job_is_reported_and_fails_the_client(server, tmp_path):
    client = run_client(tmp_path, "fail")
    _, err = client.communicate(timeout=60)
    assert client.returncode == 1
    assert "RuntimeError: the job failed on purpose" in err


def test_killing_the_client_kills_its_job(server, tmp_path):
    pid_file = tmp_path / "job.pid"
    client = run_client(tmp_path, "sleep", str(pid_file))
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the job never started"
        time.sleep(0.05)
    job = int(pid_file.read_text())
    assert job != client.pid
    client.kill()
    client.wait()
    deadline = time.time() + 10
    while Path(f"/proc/{job}").exists() and "zombie" not in _state(job):
        assert time.time() < deadline, "the job outlived its client"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_without_a_server_the_job_runs_in_the_client(tmp_path):
    env = dict(os.environ)
    env[jobserver.SOCKET_VARIABLE] = str(tmp_path / "no-such-socket")
    client = run_client(tmp_path, "0", env=env)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["pid"] == client.pid
    assert jobserver.job_usage(tmp_path / "job.log") is None


def test_the_server_refuses_a_client_from_another_python_environment(server):
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(server.socket_path)
    identity = dict(jobserver._identity(), prefix="/some/conda/env")
    request = {"identity": identity, "argv": ["x.py"], "cwd": "/", "environ": {}}
    jobserver._send(connection, request, fds=(0, 1, 2))
    reply, _ = jobserver._receive(connection)
    connection.close()
    assert "refused" in reply


def test_stopping_the_server_removes_its_socket(tmp_path):
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    path = process.socket_path
    deadline = time.time() + 30
    while not os.path.exists(path):
        assert time.time() < deadline
        time.sleep(0.05)
    jobserver.stop(process)
    assert process.returncode == -signal.SIGTERM or process.returncode == 0
    assert not os.path.exists(path)
    assert os.environ.get(jobserver.SOCKET_VARIABLE) is None
    if saved is not None:
        os.environ[jobserver.SOCKET_VARIABLE] = saved


@pytest.mark.slow
def test_the_study_gives_the_same_metrics_with_and_without_the_job_server(tiny_run, tmp_path):
    """tiny_run used the server (the default); a fresh Python per job gives the same files."""
    require_data()
    served_logs = list((tiny_run / "results/logs/train_task").rglob("*.log"))
    assert served_logs and all(jobserver.job_usage(log) for log in served_logs)

    config = tiny_config(job_server=False, selected_experiments=["seq_bn"])
    project = make_project(tmp_path / "fresh", config)
    targets = [f"results/seq_bn/seed0/task{t}/metrics.json" for t in range(1, 6)]
    result = snakemake(project, *targets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert jobserver.job_usage(project / "results/logs/train_task/seq_bn/seed0/task1.log") is None
    for target in targets:
        assert json.loads((project / target).read_text()) == json.loads(
            (tiny_run / target).read_text()
        ), target
