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


# CI sets this: it has the data, so a test that would skip for want of it fails instead.
REQUIRE_DATA_VARIABLE = "CLEXP_TESTS_REQUIRE_DATA"


def require_data(dataset: str = "MNIST") -> Path:
    """The test data folder; skip the test (fail it under CLEXP_TESTS_REQUIRE_DATA=1) when
    `dataset` (torchvision's folder name) is not there."""
    raw = SHARED_DATA / dataset / "raw"
    missing = [name for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
               if not (raw / name).is_file()]
    if missing:
        reason = (f"{dataset} not found under {SHARED_DATA} (missing {', '.join(missing)}); "
                  "set CLEXP_TEST_DATA to the folder holding it in torchvision's layout")
        if os.environ.get(REQUIRE_DATA_VARIABLE) == "1":
            pytest.fail(f"{reason} ({REQUIRE_DATA_VARIABLE}=1: the data must be there)")
        pytest.skip(reason)
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
