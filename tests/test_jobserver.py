"""The job server: a job forked from it behaves like the job run as its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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
    why_here = delegate(sys.argv[1])
    if why_here:
        print(why_here, file=sys.stderr, flush=True)
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


def wait_until_serving(directory: Path) -> None:
    """Run one job through the server just started: it has finished its imports and serves
    (on a loaded machine that takes a while; before that, clients run their jobs themselves)."""
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 120
    while True:
        warm_up = run_client(directory, "0")
        out, _ = warm_up.communicate(timeout=120)
        if json.loads(out.splitlines()[-1])["pid"] != warm_up.pid:
            return
        assert time.time() < deadline, "the job server never answered"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    wait_until_serving(tmp_path_factory.mktemp("warm-up"))
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
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "job.log"), *args], cwd=tmp_path,
        env=environment, text=True, **popen,
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


def test_the_server_itself_never_initialises_cuda():
    server = subprocess.run(
        [sys.executable, "-c", "import sys; from clexp import jobserver; "
         "s = jobserver.Server(sys.argv[1]); s.preload(); s.shutdown(); "
         "print(jobserver.cuda_initialised(), 'torch' in sys.modules)",
         str(Path(tempfile.mkdtemp()) / "socket")],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
    )
    assert server.returncode == 0, server.stderr
    assert server.stdout.split() == ["False", "True"]  # torch preloaded, CUDA untouched


def test_a_server_with_cuda_initialised_refuses_to_fork(tmp_path, monkeypatch):
    server = jobserver.Server(str(tmp_path / "socket"))
    ours, theirs = socket.socketpair()
    try:
        monkeypatch.setattr(jobserver, "cuda_initialised", lambda: True)
        pending = jobserver._Pending(theirs, deadline=time.monotonic() + 5)
        pending.fds = [os.dup(0), os.dup(1), os.dup(2)]
        request = {"identity": jobserver._identity(), "argv": ["job.py"], "cwd": "/",
                   "environ": {}}
        server._start(theirs, request, pending)
        reply, _ = jobserver._receive(ours)
        assert "CUDA" in reply["refused"]
        assert not server.children  # nothing forked: the client runs the job itself
    finally:
        ours.close()
        server.shutdown()


def test_cuda_initialised_reads_torchs_state(monkeypatch):
    assert jobserver.cuda_initialised() is False  # this machine's torch, CUDA not set up
    fake = type(sys)("torch")
    fake.cuda = type(sys)("torch.cuda")
    fake.cuda.is_initialized = lambda: True
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert jobserver.cuda_initialised() is True
    monkeypatch.delitem(sys.modules, "torch")
    assert jobserver.cuda_initialised() is False


def test_stopping_the_server_removes_its_socket(tmp_path):
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    path = process.socket_path
    wait_until_serving(tmp_path / "warm-up")
    assert os.path.exists(path)
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


# ---- one client cannot harm the others (forged clients) ----


def _server_fds(process) -> int:
    return len(os.listdir(f"/proc/{process.pid}/fd"))


def _forge(path: str, payload: bytes, fds=(0, 1, 2)) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    if fds:
        socket.send_fds(connection, [payload], list(fds))
    elif payload:
        connection.sendall(payload)
    return connection


def _still_open(connection: socket.socket) -> bool:
    """Whether the server has not closed this connection (nothing to read, no EOF)."""
    try:
        return connection.recv(1, socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True


def _framed(data: bytes) -> bytes:
    return jobserver._HEADER.pack(len(data)) + data


def _wait_for(condition, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize(
    "payload",
    [
        _framed(b"[1, 2, 3]"),  # valid JSON, not an object: crashed the server before
        _framed(b"\xff\xfe not json"),
        _framed(json.dumps({"identity": {}, "argv": "x", "cwd": 1, "environ": []}).encode()),
        jobserver._HEADER.pack(1 << 30) + b"{",  # announces 1 GiB
    ],
)
def test_a_malformed_request_fails_alone_and_its_descriptors_are_closed(server, tmp_path,
                                                                        payload):
    client = run_client(tmp_path, "0")  # warm up: the server is ready
    client.communicate(timeout=120)
    before = _server_fds(server)
    forged = _forge(server.socket_path, payload)
    _wait_for(lambda: not _still_open(forged), what="the server kept the bad connection")
    forged.close()
    assert server.poll() is None, "the server died"
    _wait_for(lambda: _server_fds(server) <= before, what="the server leaked descriptors")
    client = run_client(tmp_path, "5")
    _, err = client.communicate(timeout=60)
    assert client.returncode == 5, err


def test_a_silent_or_half_sent_client_never_delays_another_job(server, tmp_path):
    silent = _forge(server.socket_path, b"", fds=())
    half = _forge(server.socket_path, _framed(b'{"identity": {}')[:-5])
    client = run_client(tmp_path, "7")
    out, err = client.communicate(timeout=60)
    assert client.returncode == 7, err
    assert json.loads(out.splitlines()[-1])["pid"] != client.pid  # served, not run locally
    # The job ran while both stalled connections were still waiting for their requests.
    assert _still_open(silent) and _still_open(half)
    silent.close()
    half.close()


@pytest.fixture()
def own_server(monkeypatch, tmp_path):
    """A server of this test alone (it is stopped or killed), ready, and clients that give up
    after 3 s."""
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    wait_until_serving(tmp_path / "warm-up")
    monkeypatch.setenv(jobserver.TIMEOUT_VARIABLE, "3")
    yield process
    try:
        os.kill(process.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    jobserver.stop(process)
    if saved is not None:
        os.environ[jobserver.SOCKET_VARIABLE] = saved


def test_a_client_of_a_stopped_server_runs_its_job_itself(own_server, tmp_path):
    os.kill(own_server.pid, signal.SIGSTOP)
    # Files, not pipes: the descriptors in the unread request keep a pipe open until the
    # stopped server reads or drops it.
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        client = run_client(tmp_path, "0", stdout=out, stderr=err)
        assert client.wait(timeout=60) == 0
    job = json.loads((tmp_path / "out").read_text().splitlines()[-1])
    assert job["pid"] == client.pid
    err = (tmp_path / "err").read_text()
    assert "no answer from the server" in err and "running the job in this process" in err
    os.kill(own_server.pid, signal.SIGCONT)  # when it wakes up, it must not run the job too
    time.sleep(2)
    assert len((tmp_path / "out").read_text().splitlines()) == 1


def test_a_job_whose_server_stops_answering_fails_saying_so_in_its_log(own_server, tmp_path):
    pid_file = tmp_path / "job.pid"
    client = run_client(tmp_path, "sleep", str(pid_file))
    _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the job never started")
    job = int(pid_file.read_text())
    os.kill(own_server.pid, signal.SIGSTOP)
    client.communicate(timeout=60)
    assert client.returncode == 1
    log = (tmp_path / "job.log").read_text()
    assert "the server stopped answering (no sign of life for 3 s)" in log
    _wait_for(lambda: "zombie" in _state(job) or not Path(f"/proc/{job}").exists(), 10,
              "the abandoned job still runs")


def test_a_job_whose_server_dies_fails_saying_so_in_its_log(own_server, tmp_path):
    pid_file = tmp_path / "job.pid"
    client = run_client(tmp_path, "sleep", str(pid_file))
    _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the job never started")
    os.kill(own_server.pid, signal.SIGKILL)
    client.communicate(timeout=60)
    assert client.returncode == 1
    assert "the server died while it ran this job" in (tmp_path / "job.log").read_text()


# ---- children import the clexp on disk ----

VERSION_JOB = """
import sys
from clexp.jobserver import delegate
delegate()
import clexp
print(clexp.__version__)
"""


def test_a_job_sees_clexp_as_edited_after_the_server_started(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", tiny_config())
    source = project / "src"
    monkeypatch.setenv("PYTHONPATH", str(source))  # as the workflow sets it for its jobs
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    try:
        (tmp_path / "job.py").write_text(VERSION_JOB)

        def job_version() -> str:
            result = subprocess.run([sys.executable, str(tmp_path / "job.py")], cwd=tmp_path,
                                    capture_output=True, text=True, timeout=120,
                                    env=dict(os.environ))
            assert result.returncode == 0, result.stderr
            return result.stdout.strip()

        # the server imported this project's clexp (package and server module) when it started
        assert job_version() == "0.1.0"
        init = source / "clexp" / "__init__.py"
        init.write_text(init.read_text().replace('"0.1.0"', '"0.1.0+edited"'))
        assert job_version() == "0.1.0+edited"
    finally:
        jobserver.stop(process)
        if saved is not None:
            os.environ[jobserver.SOCKET_VARIABLE] = saved


# ---- no socket folder outlives its run ----

OWNER = """
import sys, time
from clexp import jobserver
process = jobserver.start()
print(process.pid, process.socket_path, flush=True)
time.sleep(600)
"""


def _start_owner(tmp_path):
    (tmp_path / "owner.py").write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(tmp_path / "owner.py")],
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    server_pid, path = owner.stdout.readline().split()
    folder = Path(path).parent
    assert folder.name.startswith(f"clexp-jobs-{owner.pid}-")
    assert folder.stat().st_mode & 0o777 == 0o700  # other users cannot reach the socket
    return owner, int(server_pid), folder


def test_the_socket_folder_goes_when_its_owner_is_killed(tmp_path):
    owner, server_pid, folder = _start_owner(tmp_path)
    owner.kill()  # kill -9 of Snakemake: no onsuccess/onerror
    owner.wait()
    _wait_for(lambda: not folder.exists(), 30, "the socket folder outlived its owner")
    _wait_for(lambda: not Path(f"/proc/{server_pid}").exists() or "zombie" in _state(server_pid),
              30, "the server outlived its owner")


def test_a_folder_left_by_a_killed_process_group_is_removed_by_the_next_start(tmp_path):
    owner, server_pid, folder = _start_owner(tmp_path)
    os.kill(server_pid, signal.SIGKILL)  # kill -9 of everything: nobody can clean up
    owner.kill()
    owner.wait()
    assert folder.exists()
    saved = os.environ.get(jobserver.SOCKET_VARIABLE)
    process = jobserver.start()
    try:
        assert not folder.exists()
        assert Path(process.socket_path).parent.exists()  # a live owner's folder stays
        assert str(Path(process.socket_path).parent) not in jobserver.remove_stale_folders()
    finally:
        jobserver.stop(process)
        if saved is not None:
            os.environ[jobserver.SOCKET_VARIABLE] = saved
