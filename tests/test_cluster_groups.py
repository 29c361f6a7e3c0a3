"""Cluster runs group one experiment's jobs into one job (workflow/rules/common.smk: run_group),
checked on dry runs of the tiny study, without a cluster: `--jobs` counts cluster jobs, as the
SLURM profile sets it. tests/test_slurm.py runs the same on a real one-node SLURM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import make_project, snakemake, tiny_config

pytestmark = pytest.mark.slow

GROUP = re.compile(r"Group job (\S+) \(jobs in lexicogr\. order\):$")
JOB = re.compile(r"^( *)(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
# Never grouped: they join every run (grouping follows dependencies).
UNGROUPED = {"code_digest", "prepare_data", "checkpoint_table", "summarize", "plot_study",
             "findings", "plot_comparisons", "report"}


def planned(project: Path, *args: str) -> tuple[list[dict], list[str]]:
    """The jobs of a dry run (rule, wildcards, group) and the group jobs it lists."""
    result = snakemake(project, "-n", "results/report.html", "--quiet", "host", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, groups, group = [], [], None
    for line in result.stdout.splitlines():
        if found := GROUP.search(line):
            group = found.group(1)
            groups.append(group)
        elif found := JOB.match(line):
            indent, rule = found.groups()
            group = group if indent else None
            jobs.append({"rule": rule, "wildcards": {}, "group": group})
        elif (found := WILDCARDS.match(line)) and jobs:
            jobs[-1]["wildcards"] = dict(item.split("=", 1)
                                         for item in found.group(1).split(", "))
    return jobs, groups


def test_a_cluster_run_is_one_group_job_per_experiment_and_a_local_run_has_none(tmp_path):
    config = tiny_config(seeds=[0, 1], tasks=[[1, 2], [3, 4]])
    project = make_project(tmp_path / "project", config)
    jobs, groups = planned(project, "--jobs", "10")

    # Every job of one experiment (all seeds, every per-run rule) is in its experiment's group;
    # the dataset, the code digests and the aggregates are in none.
    assert sorted(groups) == ["run_class_si", "run_domain_lwf", "run_joint", "run_seq",
                              "run_seq_bn", "run_task_seq"]
    for job in jobs:
        experiment = job["wildcards"].get("experiment")
        assert job["group"] == (f"run_{experiment}" if experiment else None), job
    assert {job["rule"] for job in jobs if job["group"] is None} == UNGROUPED
    per_run = {job["rule"] for job in jobs if job["group"]}
    assert {"train_task", "evaluate_checkpoint", "evaluate_untrained", "analyze_checkpoint",
            "plot_checkpoint", "plot_run", "plot_run_tasks", "tune_point",
            "select_setting"} <= per_run
    assert {job["wildcards"]["seed"] for job in jobs if job["group"] == "run_seq"} == {"0", "1"}

    # A local dry run lists the same jobs, none of them grouped.
    local, local_groups = planned(project)
    assert local_groups == [] and not any(job["group"] for job in local)
    assert sorted(job["rule"] for job in local) == sorted(job["rule"] for job in jobs)
