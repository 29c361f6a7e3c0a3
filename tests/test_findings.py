"""Findings as rules over the numbers, and the comparison figures' data (no MNIST needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from clexp import comparisons, findings
from clexp.comparisons import checkpoint_table, comparison_groups, plot_section, section_figures


def run_metrics(experiment, seed, *, forget=True, sparsity=(0.5, 0.6, 0.7), probe=0.8,
                til=None, tasks=3):
    """Synthetic metrics.json rows of one run of `tasks` tasks (two classes each)."""
    task_list = [[2 * t, 2 * t + 1] for t in range(tasks)]
    rows = []
    for t in range(1, tasks + 1):
        per_task = [0.0 if (forget and j < t - 1) else (0.97 if j < t else 0.0)
                    for j in range(tasks)]
        if not forget:
            per_task = [0.6 if j < t - 1 else (0.95 if j == t - 1 else 0.0)
                        for j in range(tasks)]
        row = {
            "experiment": experiment, "seed": seed, "task": t, "num_tasks": tasks,
            "tasks": task_list, "val_acc": float(np.mean(per_task[:t])), "val_loss": 2.0 * t,
            "probe_acc": probe, "population_sparsity": sparsity[t - 1],
            "sparsity_h1": sparsity[t - 1], "sparsity_h2": sparsity[t - 1],
            "bias_stats": {"fc1": {"mean": -0.01 * t, "median": -0.02 * t, "std": 0.1},
                           "fc2": {"mean": -0.01 * t, "median": -0.01 * t, "std": 0.1},
                           "fc3": {"mean": 0.5, "median": 0.5, "std": 0.1}},
            "per_task_acc": per_task, "init_per_task_acc": [0.1] * tasks,
            "probe_unseen_acc": 0.9 if t < tasks else None,
        }
        if til is not None:
            row["per_task_acc_til"] = [til if j < t else 0.5 for j in range(tasks)]
        rows.append(row)
    return rows


def summary_rows(table: pd.DataFrame, extra: dict | None = None) -> pd.DataFrame:
    last = table.sort_values("task").groupby(["experiment", "seed"]).tail(1)
    summary = pd.DataFrame({"experiment": last["experiment"], "seed": last["seed"],
                            "final_val_acc": last["val_acc"], "fwt": -0.1})
    for column, values in (extra or {}).items():
        summary[column] = summary["experiment"].map(values)
    return summary.reset_index(drop=True)


def verdict(table, summary, key):
    frame = findings.findings_table(table, summary)
    return frame.set_index("key").loc[key]


@pytest.fixture
def study():
    metrics = []
    for seed in (0, 1, 2):
        metrics += run_metrics("seq", seed, sparsity=(0.5, 0.65, 0.8 + 0.01 * seed), probe=0.7)
        metrics += run_metrics("seq_bn", seed, sparsity=(0.5, 0.5, 0.52), probe=0.85)
    return checkpoint_table(metrics)


def test_the_claims_hold_on_numbers_that_show_them(study):
    summary = summary_rows(study)
    for key in ("seq_forgets", "plain_units_die", "plain_bias_negative", "bn_sparsity_half",
                "bn_keeps_representation", "probe_beats_head"):
        assert verdict(study, summary, key)["verdict"] == "holds", key
    row = verdict(study, summary, "plain_units_die")
    # mean ± sd over the three seeds, with n
    assert "0.810 ± 0.010 (n=3)" in row["evidence"]


def test_a_verdict_flips_when_the_numbers_under_it_change(study):
    summary = summary_rows(study)
    assert verdict(study, summary, "bn_keeps_representation")["verdict"] == "holds"
    altered = study.copy()
    altered.loc[altered["experiment"] == "seq_bn", "probe_acc"] = 0.6
    assert verdict(altered, summary, "bn_keeps_representation")["verdict"] == "does not hold"

    assert verdict(study, summary, "plain_units_die")["verdict"] == "holds"
    flat = study.copy()
    flat.loc[flat["experiment"] == "seq", "population_sparsity"] = 0.5
    assert verdict(flat, summary, "plain_units_die")["verdict"] == "does not hold"


def test_claims_whose_experiments_are_absent_are_not_run_and_say_why(study):
    summary = summary_rows(study)
    frame = findings.findings_table(study, summary).set_index("key")
    assert frame.loc["ogd_improves_probe", "verdict"] == "not run"
    assert "ogd_adam" in frame.loc["ogd_improves_probe", "evidence"]
    # the baselines: no method and no task-incremental column in this run
    assert frame.loc["er_keeps_accuracy", "verdict"] == "not run"
    assert frame.loc["til_seq_keeps", "verdict"] == "not run"
    # every claim of STUDY.md's list and every section has a row
    sections = set(frame["section"])
    assert {"Bounds", "Normalisation", "Representation", "Dropout", "Weight decay",
            "Sparsity", "Forward transfer", "OGD", "Baselines"} <= sections


def test_baseline_claims_work_when_the_methods_are_run(study):
    metrics = []
    for seed in (0, 1):
        metrics += run_metrics("ewc", seed, til=0.98)
        metrics += run_metrics("er", seed, forget=False, til=0.99)
    table = pd.concat([study, checkpoint_table(metrics)], ignore_index=True)
    summary = summary_rows(table, {"avg_acc_til": {"seq": 0.85, "ewc": 0.97, "er": 0.99}})
    frame = findings.findings_table(table, summary).set_index("key")
    assert frame.loc["classil_close_to_seq_ewc", "verdict"] == "holds"
    assert frame.loc["er_keeps_accuracy", "verdict"] == "holds"  # 0.6 on old tasks kept
    assert frame.loc["til_seq_keeps", "verdict"] == "holds"
    assert frame.loc["til_method_keeps_ewc", "verdict"] == "holds"
    assert frame.loc["til_method_keeps_si", "verdict"] == "not run"
    lower = summary_rows(table, {"avg_acc_til": {"seq": 0.85, "ewc": 0.7, "er": 0.99}})
    assert verdict(table, lower, "til_method_keeps_ewc")["verdict"] == "does not hold"
    # task-incremental accuracy of the seen tasks, per checkpoint
    ewc = table[(table["experiment"] == "ewc") & (table["task"] == 2)]
    assert ewc["acc_til"].tolist() == pytest.approx([0.98, 0.98])


def test_every_claim_names_a_figure_the_workflow_draws():
    for claim in findings.CLAIMS:
        section, name = claim.figure.split("/")
        if section == "study":
            assert name in ("l1_sweep", "weight_decay_sweep", "eval_loss_comparison")
        else:
            assert section in comparisons.COMPARISON_GROUPS
            assert name in section_figures(section), claim.key


def test_comparison_figures_draw_every_experiment_with_its_spread(tmp_path, study):
    joint = checkpoint_table(run_metrics("joint", 0, tasks=1, sparsity=(0.4,)))
    table = pd.concat([study, joint], ignore_index=True)
    groups = comparison_groups(["joint", "seq", "seq_bn"])
    assert groups == {"bounds": ["seq", "joint"], "normalisation": ["seq", "seq_bn"],
                      "representation": ["seq", "seq_bn"],
                      "forward_transfer": ["seq", "seq_bn"]}
    paths = {name: str(tmp_path / f"{name}.png") for name in section_figures("normalisation")}
    drawn = plot_section(table, groups["normalisation"], "normalisation", paths)
    accuracy = drawn["accuracy"]
    assert list(accuracy["experiment"].unique()) == ["seq", "seq_bn"]
    assert list(accuracy["task"]) == [1, 2, 3, 1, 2, 3]
    assert set(accuracy["n"]) == {3}
    sparsity = drawn["sparsity"].set_index(["experiment", "task"])
    assert sparsity.loc[("seq", 3), "sd"] == pytest.approx(0.01)
    retention = drawn["retention"]
    assert sorted(retention["eval_task"].unique()) == [1, 2]  # the last task has no later
    assert list(retention[(retention["experiment"] == "seq") & (retention["eval_task"] == 1)]
                ["mean"]) == pytest.approx([0.97, 0.0, 0.0])
    assert set(drawn["matrices"]) == {"seq", "seq_bn"}
    assert drawn["matrices"]["seq"].shape == (3, 3)
    for path in paths.values():
        assert imread(path).shape[0] > 200
    # a one-task run is a level in the bounds figures, never a single point
    bounds = plot_section(table, groups["bounds"], "bounds",
                          {"accuracy": str(tmp_path / "b.png"),
                           "matrices": str(tmp_path / "m.png")})
    levels = bounds["accuracy"][bounds["accuracy"]["num_tasks"] == 1]
    assert list(levels["experiment"]) == ["joint"]
    assert set(bounds["matrices"]) == {"seq"}


def test_sections_with_only_a_reference_experiment_are_not_drawn():
    assert "ogd" not in comparison_groups(["seq", "seq_bn"])
    assert comparison_groups(["seq", "seq_bn", "ogd_sgd"])["ogd"] == ["seq", "seq_bn", "ogd_sgd"]
    assert comparison_groups(["seq", "mine"])["other"] == ["seq", "mine"]


def test_the_ogd_section_shows_how_orthogonal_the_applied_updates_were():
    from clexp.comparisons import checkpoint_table
    from clexp.report import ogd_alignment_html

    def metrics(experiment, seed, task, alignment):
        return {"experiment": experiment, "seed": seed, "task": task, "num_tasks": 2,
                "val_acc": 0.5, "val_loss": 1.0, "probe_acc": 0.9, "population_sparsity": 0.5,
                "per_task_acc": [0.5, 0.5], "ogd_update_alignment_mean": alignment,
                "ogd_update_alignment_max": None if alignment is None else 2 * alignment}

    rows = [metrics("ogd_adam_bn", seed, 1, None) for seed in (0, 1)]
    rows += [metrics("ogd_adam_bn", 0, 2, 0.08), metrics("ogd_adam_bn", 1, 2, 0.12)]
    rows += [metrics("seq", 0, 1, None), metrics("seq", 0, 2, None)]
    table = checkpoint_table(rows)
    assert table["ogd_update_alignment_mean"].notna().sum() == 2
    page = ogd_alignment_html(table)
    assert "ogd_adam_bn" in page and "seq<" not in page
    assert ">0.1<" in page and ">0.2<" in page  # means over the two seeds: 0.1, max 0.2
    assert ogd_alignment_html(checkpoint_table(rows[4:])) == ""  # no OGD run: no table
