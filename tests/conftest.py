"""Shared fixtures: the data root beside the checkout and a tiny end-to-end study run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLEXP_TEST_DATA", REPO.parent / "shared" / "data")).resolve()
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"


def require_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST not found under {SHARED_DATA}; set CLEXP_TEST_DATA to its folder")
    return SHARED_DATA


def tiny_config(**overrides) -> dict:
    """The tiny study config, pointed at the test data, with top-level overrides."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["data_root"] = str(SHARED_DATA)
    config.update(overrides)
    return config


def make_project(directory: Path, config: dict) -> Path:
    """A copy of the workflow and the library in `directory`, with `config` as config.yaml.

    Tests edit the copy's source files and config, never the checkout's.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", directory / "Snakefile")
    for folder in ("workflow", "src"):
        shutil.copytree(REPO / folder, directory / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def snakemake(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in `project` and return the finished process (output captured)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny study built once for the session; returns the project folder."""
    require_data()
    project = make_project(tmp_path_factory.mktemp("tiny") / "project", tiny_config())
    result = snakemake(project, "results/report.html")
    assert result.returncode == 0, result.stdout + result.stderr
    return project
