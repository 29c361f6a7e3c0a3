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

One client cannot harm the others: the server reads every request without blocking (a client
that connects and sends nothing, or half a request, delays no one and is dropped after
`TIMEOUT_VARIABLE`'s seconds), checks it, and handles each connection inside its own error
boundary that always closes its descriptors. While a job runs, the server tells its client that
it is alive every second; a client that hears nothing for that long (a stopped server) kills its
job and fails, saying why in the job's log, and one that gets no answer to its request runs the
job itself. Children forget the server's imported clexp modules, so they import the code on
disk. The socket's folder (mode 0700: other users cannot reach it) is removed when the server
stops, when Snakemake dies (the server gets SIGTERM), and otherwise by the next `start` (folders
of owners that are gone).

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
# Seconds a client waits for an answer (and a running job for a sign of life) before it gives
# up, and the server waits for a complete request. Longer than the server's start-up imports.
TIMEOUT_VARIABLE = "CLEXP_JOB_SERVER_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
HEARTBEAT_S = 1.0
MAX_REQUEST_BYTES = 16 << 20
FOLDER_PREFIX = "clexp-jobs-"
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


def _timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _check_request(request) -> None:
    """Raise ValueError unless `request` has the shape `delegate` sends."""
    if not isinstance(request, dict):
        raise ValueError(f"the request is a JSON {type(request).__name__}, not an object")
    if not isinstance(request.get("identity"), dict):
        raise ValueError("the request has no identity object")
    argv = request.get("argv")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise ValueError("argv must be a non-empty list of strings")
    if not isinstance(request.get("cwd"), str):
        raise ValueError("cwd must be a string")
    environ = request.get("environ")
    if not (isinstance(environ, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in environ.items())):
        raise ValueError("environ must map strings to strings")


def cuda_initialised() -> bool:
    """Whether this process has initialised CUDA (torch imported and its CUDA state set up).

    A process forked from one that has cannot use CUDA, so the server never forks then: it
    refuses the job, which runs in its own process. The server only imports torch, which does
    not initialise CUDA; a job initialises it in its own child.
    """
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_initialized())
    except AttributeError:  # a torch without (or with a stubbed) cuda module
        return False


def _identity() -> dict:
    """What a client and the server must share for a forked child to equal a fresh process."""
    return {"prefix": sys.prefix, "executable": os.path.realpath(sys.executable),
            "version": sys.version}


# ---- the client side: a job's script ----


def _note(log_path: str | None, message: str) -> None:
    """Tell the job's log (and stderr) why the job failed outside its own code."""
    line = f"clexp job server: {message}"
    print(line, file=sys.stderr, flush=True)
    if log_path is not None:
        try:
            with open(log_path, "a") as log:
                log.write(line + "\n")
        except OSError:
            pass


def delegate(log_path: str | None = None) -> str | None:
    """Run the calling job's script in the job server, then exit with its status.

    Returns (and the script goes on in this process) when this process is already the
    server's child, when no server is announced in the environment, or when the server is
    unreachable, refuses the job or does not answer within `TIMEOUT_VARIABLE`'s seconds; the
    return value is then None, or a line saying why the job runs here (for the job's log).
    Exits with status 1 and a line in `log_path` when the server dies or stops answering while
    it runs the job. `log_path`, when given, receives the child's resource use.
    """
    path = os.environ.get(SOCKET_VARIABLE)
    if os.environ.get(_CHILD_VARIABLE) or not path or not available():
        return None
    timeout = _timeout()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(path)
        request = {
            "identity": _identity(), "argv": sys.argv, "cwd": os.getcwd(),
            "environ": dict(os.environ),
        }
        _send(connection, request, fds=(0, 1, 2))
        reply, _ = _receive(connection)
    except TimeoutError:
        connection.close()  # the server drops the job when it sees the connection closed
        return (f"clexp job server: no answer from the server at {path} within {timeout:g} s; "
                "running the job in this process")
    except (OSError, ValueError):
        connection.close()
        return None  # no server (or not ours): run here
    if not isinstance(reply, dict) or not reply.get("accepted"):
        connection.close()
        return None
    child = reply.get("pid")
    while True:
        try:
            reply, _ = _receive(connection)
        except TimeoutError:
            if isinstance(child, int):
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass
            _note(log_path, f"the server stopped answering (no sign of life for {timeout:g} s) "
                            f"while it ran this job (pid {child}); the job was killed and fails. "
                            "Rerun the workflow.")
            os._exit(1)
        except (OSError, ValueError):
            _note(log_path, "the server died while it ran this job (its connection closed "
                            "without the job's exit status), so the job fails. Rerun the "
                            "workflow; set job_server: false if it happens again.")
            os._exit(1)
        if isinstance(reply, dict) and "exit" in reply:
            break
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
        # The server's own clexp modules (the package, this module) are as old as the server:
        # the job imports the code on disk now, like a fresh process would.
        for name in [n for n in sys.modules if n == "clexp" or n.startswith("clexp.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
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


class _Pending:
    """A connection whose request has not fully arrived yet."""

    def __init__(self, connection: socket.socket, deadline: float):
        self.connection = connection
        self.deadline = deadline
        self.data = b""
        self.fds: list[int] = []

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.connection.close()


class Server:
    """Fork a child per request; report each child's exit to its client; kill orphans."""

    def __init__(self, path: str, parent: int | None = None):
        self.path = path
        self.parent = parent
        self.identity = _identity()
        self.timeout = _timeout()
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}
        self.pending: dict[socket.socket, _Pending] = {}
        self.wakeup_read = -1
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.listener.bind(path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.running = True
        self.closed = False

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

    def _log(self, message: str) -> None:
        print(f"clexp job server: {message}", file=sys.stderr, flush=True)

    def _accept(self) -> None:
        """Take every waiting connection; their requests are read as they arrive."""
        while True:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. out of descriptors: the client will time out
                self._log(f"cannot accept a connection ({error})")
                return
            connection.setblocking(False)
            self.pending[connection] = _Pending(connection, time.monotonic() + self.timeout)
            self.selector.register(connection, selectors.EVENT_READ, ("request", connection))

    def _read_request(self, connection: socket.socket) -> None:
        """Read what has arrived of one request; start its job once complete. Whatever the
        client sent, a failure ends this connection only (descriptors closed)."""
        pending = self.pending[connection]
        try:
            try:
                data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
            except (BlockingIOError, InterruptedError):
                return
            pending.fds.extend(fds)
            if not data:
                raise ConnectionError("the client closed the connection before its request")
            pending.data += data
            if len(pending.fds) > 3:
                raise ValueError("more than three descriptors")
            if len(pending.data) < _HEADER.size:
                return
            (size,) = _HEADER.unpack(pending.data[: _HEADER.size])
            if size > MAX_REQUEST_BYTES:
                raise ValueError(f"a request of {size} bytes")
            if len(pending.data) < _HEADER.size + size:
                return
            request = json.loads(pending.data[_HEADER.size : _HEADER.size + size])
            self._forget(connection)
            self._start(connection, request, pending)
        except Exception as error:  # noqa: BLE001 - the error boundary of one connection
            self._drop(connection, error)

    def _forget(self, connection: socket.socket) -> None:
        self.pending.pop(connection, None)
        try:
            self.selector.unregister(connection)
        except (KeyError, ValueError):
            pass

    def _drop(self, connection: socket.socket, error: BaseException) -> None:
        pending = self.pending.get(connection)
        self._forget(connection)
        if not isinstance(error, ConnectionError):
            self._log(f"dropped a request ({type(error).__name__}: {error})")
            try:
                connection.settimeout(0.1)
                _send(connection, {"refused": f"bad request: {error}"})
            except Exception:  # noqa: BLE001 - best effort: the client may be gone
                pass
        if pending is not None:
            pending.close()
        else:
            connection.close()

    def _start(self, connection: socket.socket, request, pending: _Pending) -> None:
        """Fork the job's child and tell the client (after `_read_request` checked nothing)."""
        try:
            _check_request(request)
            if request["identity"] != self.identity or len(pending.fds) != 3:
                raise ValueError("another Python environment")
            if cuda_initialised():
                raise ValueError("CUDA is initialised in the server, a forked child could not "
                                 "use it")
        except ValueError as error:
            connection.settimeout(0.1)
            try:
                _send(connection, {"refused": str(error)})
            except OSError:
                pass
            pending.close()
            return
        try:
            gone = connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            gone = False
        if gone:  # the client gave up waiting (e.g. this server was stopped): it runs the job
            pending.close()
            return
        fds, pending.fds = pending.fds, []
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        if pid == 0:
            # The child keeps only its client's descriptors (now in `fds`).
            for other in [self.listener, connection, *self.children.values(),
                          *self.pending.values()]:
                other.close()
            self.selector.close()
            if self.wakeup_read >= 0:
                os.close(self.wakeup_read)
            _run_child(request, fds)
        for fd in fds:
            os.close(fd)
        self.children[pid] = connection
        try:
            connection.settimeout(HEARTBEAT_S)
            _send(connection, {"accepted": True, "pid": pid})
            self.selector.register(connection, selectors.EVENT_READ, ("job", pid))
        except OSError:  # the client gave up meanwhile: so does its job
            self._client_gone(pid)

    def _client_gone(self, pid: int) -> None:
        """A client closed its connection before its child finished: kill the child."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _heartbeat(self) -> None:
        for pid, connection in list(self.children.items()):
            try:
                _send(connection, {"alive": True})
            except OSError:
                self._client_gone(pid)

    def _expire(self) -> None:
        now = time.monotonic()
        for connection, pending in list(self.pending.items()):
            if now > pending.deadline:
                self._drop(connection, TimeoutError(
                    f"no complete request within {self.timeout:g} s"))

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is None:
                continue
            try:
                self.selector.unregister(connection)
            except (KeyError, ValueError):
                pass
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
        self.wakeup_read = wakeup_read
        os.set_blocking(wakeup_read, False)
        os.set_blocking(wakeup_write, False)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs, not the server
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.selector.register(wakeup_read, selectors.EVENT_READ, ("wakeup", None))
        next_heartbeat = time.monotonic() + HEARTBEAT_S
        try:
            while self.running:
                for key, _ in self.selector.select(timeout=HEARTBEAT_S / 2):
                    kind, value = key.data
                    try:
                        if kind == "accept":
                            self._accept()
                        elif kind == "wakeup":
                            try:
                                os.read(wakeup_read, 4096)
                            except BlockingIOError:
                                pass
                        elif kind == "request":
                            if value in self.pending:
                                self._read_request(value)
                        else:
                            self._client_gone(value)
                    except Exception as error:  # noqa: BLE001 - never let one event stop all
                        self._log(f"error while serving ({type(error).__name__}: {error})")
                self._reap()
                self._expire()
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = time.monotonic() + HEARTBEAT_S
                if self.parent is not None and os.getppid() != self.parent:
                    self.running = False
        finally:
            self.shutdown()

    def _stop(self, *_) -> None:
        self.running = False

    def shutdown(self) -> None:
        """Kill the running jobs, then remove the socket and its folder (once)."""
        if self.closed:
            return
        self.closed = True
        for pid in list(self.children):
            self._client_gone(pid)
        deadline = time.monotonic() + 5
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)
        for connection in list(self.pending):
            self._drop(connection, ConnectionError("shutting down"))
        self.listener.close()
        _remove_socket(self.path)


def _remove_socket(path: str) -> None:
    """Remove the socket and, when `start` made it, its folder."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    if os.path.basename(folder).startswith(FOLDER_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_folders(directory: str | None = None) -> list[str]:
    """Remove this user's socket folders whose owner (the Snakemake process that started the
    server, its pid in the name) is gone: left by a `kill -9` of the whole process group.
    Returns the folders removed."""
    from clexp.files import process_alive

    directory = directory or tempfile.gettempdir()
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(FOLDER_PREFIX):
            continue
        owner = entry.name[len(FOLDER_PREFIX) :].split("-", 1)[0]
        try:
            mine = entry.is_dir(follow_symlinks=False) and entry.stat(
                follow_symlinks=False).st_uid == os.getuid()
        except OSError:
            continue
        if mine and owner.isdigit() and not process_alive(int(owner)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def start(parent: int | None = None) -> subprocess.Popen | None:
    """Start a server for this process's jobs and announce it in the environment."""
    if not available():
        return None
    remove_stale_folders()
    parent = os.getpid() if parent is None else parent
    # mkdtemp: mode 0700, so other users cannot reach the socket.
    directory = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{parent}-")
    path = os.path.join(directory, "socket")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "clexp.jobserver", "--socket", path, "--parent", str(parent)],
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
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

    def terminate(*_):
        raise SystemExit(0)

    # SIGTERM (from `stop`, or from Linux when Snakemake dies, even by kill -9) ends the
    # server through `shutdown`, which removes the socket folder.
    signal.signal(signal.SIGTERM, terminate)
    if args.parent is not None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(
                _PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - not Linux
            pass
        if os.getppid() != args.parent:
            _remove_socket(args.socket)
            return
    server = Server(args.socket, args.parent)  # listening first: early clients queue
    try:
        server.preload()
        server.serve()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
