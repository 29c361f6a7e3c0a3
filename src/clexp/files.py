"""Write every output under a temporary name and rename it into place.

A job killed mid-write then leaves no file that Snakemake would take as complete.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
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
