"""Write every output under a temporary name and rename it into place.

A job killed mid-write then leaves no file that Snakemake would take as complete (and its
temporary file is removed when that output is next written). A full disk is reported as such,
naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from clexp.errors import DiskFullError

_TEMPORARY_MARK = ".tmp-"


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of `path` left by writers that were killed (their pid is
    gone), e.g. a job killed by kill -9 while it saved."""
    prefix = f".{path.name}{_TEMPORARY_MARK}"
    for candidate in path.parent.glob(f"{prefix}*"):
        pid = candidate.name[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            candidate.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it.

    Raises DiskFullError (naming `path`) when the device is full.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.name}{_TEMPORARY_MARK}{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        raise DiskFullError(
            errno.ENOSPC,
            f"{path}: no space left on device (or disk quota exceeded) while writing it "
            f"({free} there). Free some space, then rerun the workflow; nothing incomplete "
            "was kept.",
        ) from error
    finally:
        if temporary.exists() or temporary.is_symlink():
            temporary.unlink()


def write_json(data, path: str | Path) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path):
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_csv(frame, path: str | Path) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def write_text(text: str, path: str | Path) -> None:
    """Write text, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_npz(arrays: dict, path: str | Path) -> None:
    """Write numpy arrays as an uncompressed .npz, atomically."""
    import numpy as np

    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def code_digest(paths) -> str:
    """SHA-256 over the files at `paths` (each one's path as given, then its bytes), in the
    order given: one line that changes exactly when one of the files does."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        data = Path(path).read_bytes()
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"
