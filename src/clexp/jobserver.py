"""A warm process that local jobs fork from, so that each job skips Python's heavy imports.

Most of this study's jobs are short (seconds of work), and importing torch, scikit-learn and
matplotlib costs about 2-4 s per process on a small machine: with ~400 jobs, start-up was the
larger part of the study's wall time. The workflow therefore starts one *job server* per local
Snakemake run (`onstart`, stopped `onsuccess`/`onerror`). It imports the heavy libraries once
and then, for every job, forks a child that runs the job's script exactly as `python script`
would have: same script file, working directory, environment, arguments, stdin/stdout/stderr
(passed over the Unix socket) and exit status. The library code of clexp itself is imported by
each child, never by the server, so a job always runs the code on disk.

The job's own process (the *client*, started by Snakemake as usual) connects, hands over its
script and file descriptors, waits, and exits with the child's status; it keeps the job slot,
so `--cores` and `threads:` keep their meaning. If the client dies (Ctrl-C, a failed sibling,
a killed Snakemake) the server kills the child; if the server dies, its children die with it.
When there is no server, it refuses the job (another Python environment, e.g. `--use-conda`),
or on a cluster node, the client runs the script itself: the server changes speed, never
results.

Because the child is not a descendant of the client, Snakemake's `benchmark:` measures the
client only (its wall time is the job's, its memory is not). The client therefore appends the
child's resource use to the job's log as one line (`JOB_USAGE_PREFIX`), which the benchmark
reads (`clexp.bench.rule_time_table`).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import gc
import importlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOCKET_VARIABLE = "CLEXP_JOB_SERVER"
_CHILD_VARIABLE = "CLEXP_JOB_SERVER_CHILD"
JOB_USAGE_PREFIX = "clexp job server usage:"
PRELOAD = (
    "numpy", "pandas", "yaml", "threadpoolctl", "torch", "sklearn.linear_model",
    "sklearn.manifold", "matplotlib", "matplotlib.pyplot", "snakemake.script",
    "torch._dynamo",  # imported by the first optimizer a job builds: 1.7 s
)
_HEADER = struct.Struct("!I")
_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Whether this platform can run the server (fork, Unix sockets, parent-death signal)."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _send(connection: socket.socket, message: dict, fds=()) -> None:
    payload = json.dumps(message).encode()
    data = _HEADER.pack(len(payload)) + payload
    if fds:
        socket.send_fds(connection, [data], list(fds))
    else:
        connection.sendall(data)


def _receive_exactly(connection: socket.socket, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        data += chunk
    return data


def _receive(connection: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    if max_fds:
        data, fds, _, _ = socket.recv_fds(connection, 1 << 16, max_fds)
        if not data:
            raise ConnectionError("the other side closed the connection")
    else:
        data, fds = b"", []
    data = _receive_exactly(connection, _HEADER.size, data)
    (size,) = _HEADER.unpack(data[: _HEADER.size])
    payload = _receive_exactly(connection, _HEADER.size + size, data)[_HEADER.size :]
    return json.loads(payload), fds


def _identity() -> dict:
    """What a client and the server must share for a forked child to equal a fresh process."""
    return {"prefix": sys.prefix, "executable": os.path.realpath(sys.executable),
            "version": sys.version}


# ---- the client side: a job's script ----


def delegate(log_path: str | None = None) -> None:
    """Run the calling job's script in the job server, then exit with its status.

    Returns (and the script goes on in this process) when this process is already the
    server's child, when no server is announced in the environment, or when the server is
    unreachable or refuses the job. `log_path`, when given, receives the child's resource use.
    """
    path = os.environ.get(SOCKET_VARIABLE)
    if os.environ.get(_CHILD_VARIABLE) or not path or not available():
        return
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        request = {
            "identity": _identity(), "argv": sys.argv, "cwd": os.getcwd(),
            "environ": dict(os.environ),
        }
        _send(connection, request, fds=(0, 1, 2))
        reply, _ = _receive(connection)
    except OSError:
        connection.close()
        return  # no server (or not ours): run here
    if reply.get("refused"):
        connection.close()
        return
    try:
        reply, _ = _receive(connection)
    except ConnectionError:
        print("clexp job server: the server went away while running this job",
              file=sys.stderr)
        os._exit(1)
    if log_path is not None and "max_rss_mb" in reply:
        with open(log_path, "a") as log:
            log.write(
                f"{JOB_USAGE_PREFIX} pid {reply['pid']} exit {reply['exit']} "
                f"cpu_s {reply['cpu_s']:.2f} max_rss_mb {reply['max_rss_mb']:.1f}\n"
            )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(reply["exit"])


def job_usage(log_path: str | Path) -> dict | None:
    """The child's resource use recorded in a job's log by `delegate`, or None."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(JOB_USAGE_PREFIX):
            fields = line[len(JOB_USAGE_PREFIX) :].split()
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            return {"cpu_s": float(values["cpu_s"]), "max_rss_mb": float(values["max_rss_mb"])}
    return None


# ---- the server side ----


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process and run its script; never returns."""
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        wakeup = signal.set_wakeup_fd(-1)
        if wakeup >= 0:
            os.close(wakeup)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        os.environ[_CHILD_VARIABLE] = "1"
        tempfile.tempdir = None  # the job's TMPDIR, not a folder the server looked up
        # Exit handlers registered by the server's imports are about the server's objects
        # (one deletes temporary files): the child runs only those its job registers, and
        # flushes logging. (weakref.finalize hooks in through one such inherited handler, so
        # finalizers still pending at exit are not run; clexp's jobs do not rely on them.)
        atexit._clear()
        sys.argv = list(request["argv"])
        script = sys.argv[0]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        import runpy

        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - report like the interpreter, then exit 1
        sys.excepthook(*sys.exc_info())  # the job's own hook (clexp.joblog), as the interpreter
        code = 1
    finally:
        try:
            logging.shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _warm_up_matplotlib() -> None:
    """Draw one small figure, so that fonts, colormaps and the PNG writer are loaded once here
    rather than in every figure job (matplotlib starts no threads: safe to fork after)."""
    try:
        import io

        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(2, 1))
    left.plot([1, 2], [1, 10], marker="o", label="x → y ✗")
    left.set_yscale("log")
    left.legend(title="t")
    image = right.imshow([[0.0, 1.0]], cmap="viridis")
    figure.colorbar(image, ax=right)
    figure.suptitle("warm-up")
    figure.savefig(io.BytesIO(), format="png", dpi=40)
    plt.close(figure)


class Server:
    """Fork a child per request; report each child's exit to its client; kill orphans."""

    def __init__(self, path: str, parent: int | None = None):
        self.path = path
        self.parent = parent
        self.identity = _identity()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.listener.bind(path)
        self.listener.listen(64)
        self.running = True

    def preload(self, modules=PRELOAD) -> None:
        os.environ.setdefault("MPLBACKEND", "Agg")
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        _warm_up_matplotlib()
        # Keep the garbage collector off the preloaded objects: a child's collections would
        # otherwise walk (and so copy, page by page) all of them: ~0.3 s per job.
        gc.collect()
        gc.freeze()

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        connection.settimeout(10)
        try:
            request, fds = _receive(connection, max_fds=3)
        except (OSError, ValueError):
            connection.close()
            return
        if request.get("identity") != self.identity or len(fds) != 3:
            _send(connection, {"refused": "another Python environment"})
            connection.close()
            for fd in fds:
                os.close(fd)
            return
        _send(connection, {"accepted": True})
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            # The child keeps only its client's descriptors (now in `fds`).
            for other in [self.listener, connection, *self.children.values()]:
                other.close()
            self.selector.close()
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        connection.settimeout(None)
        self.children[pid] = connection
        self.selector.register(connection, selectors.EVENT_READ, pid)

    def _client_gone(self, pid: int) -> None:
        """A client closed its connection before its child finished: kill the child."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is None:
                continue
            self.selector.unregister(connection)
            code = os.waitstatus_to_exitcode(status)
            try:
                _send(connection, {
                    "pid": pid, "exit": code if code >= 0 else 128 - code,
                    "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
                })
            except OSError:
                pass
            connection.close()

    def serve(self) -> None:
        wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs, not the server
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(wakeup_read, selectors.EVENT_READ, "wakeup")
        try:
            while self.running:
                for key, _ in self.selector.select(timeout=1.0):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wakeup":
                        try:
                            os.read(wakeup_read, 4096)
                        except BlockingIOError:
                            pass
                    else:
                        self._client_gone(key.data)
                self._reap()
                if self.parent is not None and os.getppid() != self.parent:
                    self.running = False
        finally:
            self.shutdown()

    def _stop(self, *_) -> None:
        self.running = False

    def shutdown(self) -> None:
        for pid in list(self.children):
            self._client_gone(pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def start(parent: int | None = None) -> subprocess.Popen | None:
    """Start a server for this process's jobs and announce it in the environment."""
    if not available():
        return None
    directory = tempfile.mkdtemp(prefix="clexp-jobs-")
    path = os.path.join(directory, "socket")
    parent = os.getpid() if parent is None else parent
    process = subprocess.Popen(
        [sys.executable, "-m", "clexp.jobserver", "--socket", path, "--parent", str(parent)],
        stdin=subprocess.DEVNULL,
    )
    process.socket_path = path
    deadline = time.monotonic() + 10
    while not os.path.exists(path):  # listening takes a moment; the imports come after
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            return None
        time.sleep(0.01)
    os.environ[SOCKET_VARIABLE] = path
    return process


def stop(process: subprocess.Popen | None) -> None:
    """Stop a server from `start` (its running jobs are killed) and remove its socket."""
    if process is None:
        return
    if os.environ.get(SOCKET_VARIABLE) == process.socket_path:
        del os.environ[SOCKET_VARIABLE]
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(os.path.dirname(process.socket_path), ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _die_with_parent()
        if os.getppid() != args.parent:
            return
    server = Server(args.socket, args.parent)  # listening first: early clients queue
    server.preload()
    server.serve()


if __name__ == "__main__":
    main()
