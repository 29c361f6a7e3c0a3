"""Send a job's stderr (and clexp's log messages) to its log file as well as to the terminal."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def log_stderr_to(path: str | Path) -> None:
    """Copy everything written to stderr from now on (tracebacks included) into `path`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = _Tee(sys.__stderr__, open(path, "w", buffering=1))  # noqa: SIM115
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
        force=True,
    )


def start_job(log_path: str | Path, threads: int, torch_too: bool = True) -> None:
    """What every workflow script does first: hand itself to the job server when there is one
    (`clexp.jobserver.delegate`; returns only where the job runs), send stderr to the job's
    log, and keep to the rule's `threads` (torch too, unless `torch_too` is false: figure and
    table jobs never import it)."""
    from clexp.jobserver import delegate
    from clexp.threads import limit_threads

    delegate(str(log_path))
    log_stderr_to(log_path)
    limit_threads(threads, torch_too=torch_too)
