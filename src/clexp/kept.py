"""Kept hard links of a finished job's outputs, which a resubmitted cluster job restores.

On a cluster, one experiment's jobs run as one group job. When it fails (a node lost, the time
limit hit, one member's error) Snakemake removes the outputs of all its members and submits
the whole group again: every training task would be trained again. A training job in a group
job therefore keeps a hard link of each output in a folder of its own (no extra disk while the
outputs exist) beside a key: a digest of everything the outputs depend on (the job's params and
wildcards, the contents of its input files). The same job in the resubmitted group finds the
key unchanged, links the kept files back into place and skips the work. A changed input,
setting or code digest changes the key, and the job runs as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from clexp.files import atomic_path, write_text

# Set by the workflow in cluster jobs: the folder pattern (with the job's wildcards) where a
# job keeps its outputs. Unset in local runs, which keep nothing.
KEEP_VARIABLE = "CLEXP_KEPT_OUTPUTS"
# Set in a resubmitted cluster job: restore what was kept (a first submission never does, so
# that a rerun by hand or a forced one always computes afresh).
RESTORE_VARIABLE = "CLEXP_RESTORE_KEPT_OUTPUTS"
KEY_FILE = "key"


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def job_key(params: dict, wildcards: dict, inputs: list[str | Path]) -> str:
    """Digest of what a job's outputs depend on: its params and wildcards (as JSON) and the
    contents of its input files, in order."""
    digest = hashlib.sha256()
    digest.update(json.dumps([params, wildcards], sort_keys=True, default=str).encode())
    for path in inputs:
        digest.update(f"\n{path}:{file_digest(path)}".encode())
    return digest.hexdigest()


def _kept_name(index: int, path: str | Path) -> str:
    return f"{index}-{Path(path).name}"


def keep(outputs: list[str | Path], folder: str | Path, key: str) -> None:
    """Keep a hard link (or copy) of each file of `outputs` in `folder`, with `key`. The key
    is removed first and written last, so a folder updated halfway never matches."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / KEY_FILE).unlink(missing_ok=True)
    for index, path in enumerate(outputs):
        with atomic_path(folder / _kept_name(index, path)) as temporary:
            _link_or_copy(Path(path), temporary)
    write_text(key + "\n", folder / KEY_FILE)


def restore(outputs: list[str | Path], folder: str | Path, key: str) -> bool:
    """Link the files kept in `folder` back to `outputs` if they were kept with `key`; return
    whether they were (else nothing is written)."""
    folder = Path(folder)
    try:
        kept_key = (folder / KEY_FILE).read_text().strip()
    except OSError:
        return False
    kept = [folder / _kept_name(index, path) for index, path in enumerate(outputs)]
    if kept_key != key or not all(path.is_file() for path in kept):
        return False
    for source, path in zip(kept, outputs, strict=True):
        with atomic_path(path) as temporary:
            _link_or_copy(source, temporary)
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links
        import shutil

        shutil.copyfile(source, target)
