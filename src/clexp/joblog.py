"""Send a job's stderr (and clexp's log messages) to its log file as well as to the terminal."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

from clexp.errors import ClexpError


def log_stderr_to(path: str | Path) -> None:
    """Send everything written to stderr from now on (tracebacks included) to `path` only,
    and report an error that ends the job on the console too (`report_error`).

    The console stays for Snakemake's progress and for errors, each printed once.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - open for the job's lifetime
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
        force=True,
    )
    sys.excepthook = functools.partial(report_error, log_path=str(path))


def report_error(kind, error, trace, log_path: str = "") -> None:
    """Exception hook of a job. A clexp error (a problem the user can fix; its message says
    how) is one line, in the log and on the console. Anything else goes to the log with its
    traceback, as Python prints it, and one line on the console points there."""
    if isinstance(error, ClexpError):
        line = f"{kind.__name__}: {error}"
        print(line, file=sys.stderr)
    else:
        sys.__excepthook__(kind, error, trace)
        line = f"{kind.__name__}: {error} (traceback in {log_path})"
    if sys.stderr is not sys.__stderr__:
        print(line, file=sys.__stderr__, flush=True)


def start_job(log_path: str | Path, threads: int, torch_too: bool = True) -> None:
    """What every workflow script does first: hand itself to the job server when there is one
    (`clexp.jobserver.delegate`; returns only where the job runs), send stderr to the job's
    log, and keep to the rule's `threads` (torch too, unless `torch_too` is false: figure and
    table jobs never import it)."""
    from clexp.jobserver import delegate
    from clexp.threads import limit_threads

    why_here = delegate(str(log_path))
    log_stderr_to(log_path)
    if why_here:  # e.g. the server did not answer: the job's log says why it ran here
        print(why_here, file=sys.stderr)
    limit_threads(threads, torch_too=torch_too)
