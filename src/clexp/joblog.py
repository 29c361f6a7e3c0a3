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
