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
            "task_share": 1 / t,
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


def untrained_rows(experiments=("seq", "seq_bn"), seeds=(0, 1, 2), tasks=3, probe=0.5):
    """A synthetic untrained table (task 0 of each run): its probe at `probe`."""
    rows = []
    for experiment in experiments:
        for seed in seeds:
            row = {"experiment": experiment, "seed": seed, "task": 0, "num_tasks": tasks,
                   "population_sparsity": 0.5, "probe_unseen_acc": 0.6,
                   "probe_all_acc": probe}
            for t in range(1, tasks + 1):
                row[f"probe_acc_after{t}"] = probe + 0.01 * seed
                row[f"probe_old_acc_after{t}"] = probe if t > 1 else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def verdict(table, summary, key, untrained=None):
    """The row of `key`, evaluated with its own claim only (no multiplicity to adjust for)."""
    claims = [c for c in findings.CLAIMS if c.key == key.split(".")[0]]
    untrained = untrained_rows() if untrained is None else untrained
    frame = findings.findings_table(table, summary, untrained, claims).set_index("key")
    return frame.loc[key] if key in frame.index else frame.iloc[0]


@pytest.fixture
def study():
    metrics = []
    for seed in (0, 1, 2):
        metrics += run_metrics("seq", seed, sparsity=(0.5, 0.65, 0.8 + 0.01 * seed), probe=0.7)
        metrics += run_metrics("seq_bn", seed, sparsity=(0.5, 0.5, 0.52), probe=0.85)
    return checkpoint_table(metrics)


def test_the_claims_hold_on_numbers_that_show_them(study):
    summary = summary_rows(study)
    for key in ("seq_forgets", "plain_bias_negative", "bn_sparsity_half",
                "bn_keeps_representation"):
        assert verdict(study, summary, key)["claim_verdict"] == "holds", key
    row = verdict(study, summary, "plain_units_die.2")
    # mean ± sd over the three seeds, with n
    assert "0.810 ± 0.010 (n=3)" in row["evidence"]
    assert row["verdict"] == "holds"


def test_a_verdict_flips_when_the_numbers_under_it_change(study):
    summary = summary_rows(study)
    assert verdict(study, summary, "bn_keeps_representation.1")["verdict"] == "holds"
    altered = study.copy()
    altered.loc[altered["experiment"] == "seq_bn", "probe_acc"] = 0.6
    assert verdict(altered, summary, "bn_keeps_representation.1")["verdict"] == "does not hold"
    assert verdict(altered, summary, "bn_keeps_representation.1")["claim_verdict"] == \
        "does not hold"
    flat = study.copy()
    flat.loc[flat["experiment"] == "seq", "population_sparsity"] = 0.5
    assert verdict(flat, summary, "plain_units_die.2")["verdict"] == "does not hold"


def test_claims_whose_experiments_are_absent_are_not_run_and_say_why(study):
    summary = summary_rows(study)
    frame = findings.findings_table(study, summary).set_index("key")
    assert frame.loc["ogd_improves_probe.1", "verdict"] == "not run"
    assert "ogd_adam" in frame.loc["ogd_improves_probe.1", "evidence"]
    # the baselines: no method and no task-incremental column in this run
    assert frame.loc["er_keeps_accuracy.1", "verdict"] == "not run"
    assert frame.loc["masked_seq_keeps", "verdict"] == "not run"
    # every claim of STUDY.md's list and every section has a row
    sections = set(frame["section"])
    assert {"Bounds", "Normalisation", "Representation", "Dropout", "Weight decay",
            "Sparsity", "Forward transfer", "OGD", "Baselines"} <= sections
    assert list(frame.reset_index().columns[:12]) == [
        "key", "section", "finding", "experiments", "evidence", "effect", "ci_low", "ci_high",
        "margin", "comparison", "verdict", "figure"]


def test_baseline_claims_work_when_the_methods_are_run(study):
    metrics = []
    for seed in (0, 1, 2):
        metrics += run_metrics("ewc", seed, til=0.98)
        metrics += run_metrics("er", seed, forget=False, til=0.99)
    table = pd.concat([study, checkpoint_table(metrics)], ignore_index=True)
    til = {("seq", 0): 0.85, ("seq", 1): 0.86, ("seq", 2): 0.84,
           **{(e, s): v + 0.003 * s for e, v in (("ewc", 0.97), ("er", 0.99))
              for s in (0, 1, 2)}}
    summary = summary_rows(table)
    summary["avg_acc_til"] = [til.get((e, s), 0.5) for e, s in zip(summary["experiment"],
                                                           summary["seed"], strict=True)]
    frame = findings.findings_table(table, summary).set_index("key")
    assert frame.loc["classil_close_to_seq_ewc", "verdict"] == "holds"
    assert frame.loc["er_keeps_accuracy.1", "claim_verdict"] == "holds"  # 0.6 on old tasks
    assert frame.loc["masked_seq_keeps", "verdict"] == "holds"
    assert frame.loc["masked_method_keeps_ewc.2", "claim_verdict"] == "holds"
    assert frame.loc["masked_method_keeps_si.1", "verdict"] == "not run"
    lower = summary.copy()
    lower.loc[lower["experiment"] == "ewc", "avg_acc_til"] = 0.7
    assert verdict(table, lower, "masked_method_keeps_ewc.1")["verdict"] == "does not hold"
    # task-incremental accuracy of the seen tasks, per checkpoint
    ewc = table[(table["experiment"] == "ewc") & (table["task"] == 2)]
    assert ewc["acc_til"].tolist() == pytest.approx([0.98, 0.98, 0.98])


# ---- the statistics, on synthetic tables ----


def synthetic(values: dict[str, list[list[float]]], column: str = "x") -> pd.DataFrame:
    """A checkpoint table: experiment -> per seed, `column` after each task."""
    rows = []
    for experiment, runs in values.items():
        for seed, per_task in enumerate(runs):
            for task, value in enumerate(per_task, start=1):
                rows.append({"experiment": experiment, "seed": seed, "task": task,
                             "num_tasks": len(per_task), column: value})
    return pd.DataFrame(rows)


def one_claim(table, comparison, summary=None, untrained=None, others=()):
    claim = findings.Claim("c", "Test", "a claim", (comparison,), "bounds/accuracy")
    frame = findings.findings_table(table, summary if summary is not None else pd.DataFrame(),
                                    untrained, [claim, *others])
    return frame[frame["key"].str.split(".").str[0] == "c"]


def test_the_same_means_hold_at_small_spread_and_are_inconclusive_at_large_spread():
    Q = findings.Q
    comparison = findings.Greater(Q("a", "x"), Q("b", "x"), 0.05)
    tight = synthetic({"a": [[0.720], [0.722], [0.718]], "b": [[0.660], [0.658], [0.662]]})
    wide = synthetic({"a": [[0.67], [0.72], [0.77]], "b": [[0.61], [0.66], [0.71]]})
    small, large = one_claim(tight, comparison).iloc[0], one_claim(wide, comparison).iloc[0]
    assert small["effect"] == pytest.approx(large["effect"]) == pytest.approx(0.06)
    assert small["verdict"] == "holds" and small["ci_low"] > 0.05
    assert large["verdict"] == "inconclusive"
    assert large["ci_low"] < 0.05 < large["ci_high"]
    # the interval is Welch's: scipy's own test of a − b − 0.05 > 0 gives the same p-value
    from scipy import stats
    a, b = [0.67, 0.72, 0.77], [0.61 + 0.05, 0.66 + 0.05, 0.71 + 0.05]
    expected = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    assert large["p_value"] == pytest.approx(expected)


def test_identical_seeds_do_not_give_certainty():
    Q = findings.Q
    equal = synthetic({"a": [[0.701]] * 3, "b": [[0.700]] * 3})
    row = one_claim(equal, findings.Greater(Q("a", "x"), Q("b", "x"))).iloc[0]
    assert row["ci_low"] < 0  # the sd floor keeps the interval open
    assert row["verdict"] == "inconclusive"


def test_close_to_fails_for_a_method_at_zero():
    Q = findings.Q
    comparison = findings.Equivalent(Q("method", "x"), Q("seq", "x"), 0.1)
    broken = synthetic({"method": [[0.0], [0.0], [0.0]], "seq": [[0.2], [0.21], [0.19]]})
    assert one_claim(broken, comparison).iloc[0]["verdict"] == "does not hold"
    close = synthetic({"method": [[0.21], [0.22], [0.2]], "seq": [[0.2], [0.21], [0.19]]})
    assert one_claim(close, comparison).iloc[0]["verdict"] == "holds"
    above = synthetic({"method": [[0.5], [0.52], [0.51]], "seq": [[0.2], [0.21], [0.19]]})
    assert one_claim(above, comparison).iloc[0]["verdict"] == "does not hold"


def test_a_monotone_claim_fails_when_one_task_breaks_the_order():
    rising = [[0.50, 0.60, 0.70, 0.80, 0.90], [0.51, 0.61, 0.71, 0.81, 0.91],
              [0.49, 0.59, 0.69, 0.79, 0.89]]
    comparison = findings.Monotone("seq", "x")
    rows = one_claim(synthetic({"seq": rising}), comparison)
    assert list(rows["key"]) == ["c.t1-2", "c.t2-3", "c.t3-4", "c.t4-5"]
    assert set(rows["verdict"]) == {"holds"} and set(rows["claim_verdict"]) == {"holds"}
    broken = [run[:3] + [run[1]] + run[4:] for run in rising]  # task 4 falls back
    rows = one_claim(synthetic({"seq": broken}), comparison).set_index("key")
    assert rows.loc["c.t3-4", "verdict"] == "does not hold"
    assert rows.loc["c.t1-2", "verdict"] == "holds"
    assert set(rows["claim_verdict"]) == {"does not hold"}


def test_ordered_claims_compare_each_neighbour():
    Q = findings.Q
    table = synthetic({"a": [[0.9], [0.91], [0.89]], "b": [[0.7], [0.71], [0.69]],
                       "c": [[0.75], [0.76], [0.74]]})
    rows = one_claim(table, findings.Ordered((Q("a", "x"), Q("b", "x"), Q("c", "x"))))
    assert list(rows["verdict"]) == ["holds", "does not hold"]


def test_one_seed_is_untested():
    Q = findings.Q
    table = synthetic({"a": [[0.9]], "b": [[0.1]]})
    row = one_claim(table, findings.Greater(Q("a", "x"), Q("b", "x"))).iloc[0]
    assert row["verdict"] == row["claim_verdict"] == "untested (n = 1)"
    assert row["n"] == 1


def test_a_partial_run_is_not_run_and_never_read_at_an_intermediate_task():
    Q = findings.Q
    partial = synthetic({"a": [[0.9, 0.8, 0.7]], "b": [[0.1, 0.1, 0.1, 0.1, 0.1]]})
    partial["num_tasks"] = 5  # run a stopped after task 3 of 5
    row = one_claim(partial, findings.Greater(Q("a", "x"), Q("b", "x"))).iloc[0]
    assert row["verdict"] == "not run"
    assert "not run to the end (tasks 1, 2, 3 of 5)" in row["evidence"]
    # with complete seeds beside it, the partial one is left out and named
    mixed = pd.concat([partial, synthetic({"a": [[0.0] * 5] * 3}).assign(
        seed=lambda f: f["seed"] + 1)], ignore_index=True)
    row = one_claim(mixed, findings.Less(Q("a", "x"), 0.5)).iloc[0]
    assert row["n"] == 3 and row["effect"] == pytest.approx(0.0)
    assert "seed 0: not run to the end" in row["evidence"]


def test_paired_comparisons_use_the_differences_within_each_seed():
    Q = findings.Q
    # large spread between seeds, a steady +0.1 within each: paired, the claim holds
    table = synthetic({"seq": [[0.3, 0.4], [0.6, 0.7], [0.9, 1.0]]})
    row = one_claim(table, findings.Greater(Q("seq", "x"), Q("seq", "x", "first"), 0.05)).iloc[0]
    assert row["verdict"] == "holds" and "paired" in row["evidence"]
    assert row["ci_low"] == pytest.approx(row["ci_high"] - 2 * (row["ci_high"] - 0.1))


def test_holm_adjusts_across_the_table():
    levels = findings.holm_levels({"a": 0.001, "b": 0.03, "c": 0.031})
    assert levels == {"a": pytest.approx(0.05 / 3), "b": pytest.approx(0.025),
                      "c": pytest.approx(0.05)}
    assert findings.holm_rejected({"a": 0.001, "b": 0.03, "c": 0.031}) == {"a"}  # 0.03 > 0.025
    assert findings.holm_rejected({"a": 0.001, "b": 0.02, "c": 0.04}) == {"a", "b", "c"}
    assert findings.holm_rejected({"a": 0.06, "b": 0.001}) == {"b"}
    # a claim that clears its margin at 95 % loses "holds" when 30 others like it share the
    # table
    Q = findings.Q
    table = synthetic({"a": [[0.80], [0.84], [0.88]]})
    claim = findings.Claim("c", "Test", "a claim", (findings.Greater(Q("a", "x"), 0.7),),
                           "bounds/accuracy")
    alone = findings.findings_table(table, pd.DataFrame(), None, [claim]).iloc[0]
    assert alone["verdict"] == "holds" and alone["holm_alpha"] == pytest.approx(0.05)
    crowd = [findings.Claim(f"o{i}", "Test", "other", claim.comparisons, "bounds/accuracy")
             for i in range(30)]
    frame = findings.findings_table(table, pd.DataFrame(), None, [claim, *crowd])
    adjusted = frame.iloc[0]
    assert adjusted["ci_low"] > 0.7 and adjusted["claim_verdict"] == "inconclusive"
    note = findings.multiplicity_note(frame)
    assert note["tested"] == 31 and note["lost_to_adjustment"] == 31 and note["holds"] == 0


def test_the_control_reads_the_untrained_network_at_the_same_classes():
    Q, U = findings.Q, findings.U
    table = synthetic({"seq": [[0.9, 0.8, 0.7]] * 3}, column="probe_acc")
    untrained = pd.DataFrame({"experiment": ["seq"] * 3, "seed": [0, 1, 2], "task": 0,
                              "num_tasks": 3, "probe_acc_after1": 0.99,
                              "probe_acc_after3": [0.60, 0.62, 0.64]})
    rows = one_claim(table, findings.Greater(Q("seq", "probe_acc"), U("seq", "probe_acc")),
                     untrained=untrained)
    assert rows.iloc[0]["effect"] == pytest.approx(0.08)  # after task 3: 0.7 vs 0.62
    assert "untrained seq" in rows.iloc[0]["evidence"]
    first = one_claim(table, findings.Greater(Q("seq", "probe_acc", "first"),
                                              U("seq", "probe_acc", "first")),
                      untrained=untrained).iloc[0]
    assert first["verdict"] == "does not hold"  # 0.9 vs 0.99 after task 1


def test_no_holds_row_has_an_interval_that_fails_its_margin(study):
    frame = findings.findings_table(study, summary_rows(study))
    holds = frame[frame["verdict"] == "holds"]
    assert not holds.empty
    for row in holds.itertuples():
        if row.comparison.startswith("equivalent"):
            assert -row.margin < row.ci_low and row.ci_high < row.margin, row.key
        elif ">" in row.comparison:
            assert row.ci_low > row.margin, row.key
        else:
            assert row.ci_high < row.margin, row.key


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


def test_comparison_figures_draw_the_untrained_control(tmp_path, study):
    untrained = untrained_rows(probe=0.4)
    paths = {name: str(tmp_path / f"{name}.png") for name in ("probe", "sparsity", "accuracy")}
    drawn = plot_section(study, ["seq", "seq_bn"], "normalisation", paths, untrained)
    probe = drawn["probe"]
    control = probe[probe["experiment"] == "untrained seq"]
    assert list(control["task"]) == [1, 2, 3]
    assert list(control["mean"]) == pytest.approx([0.41] * 3)  # seeds 0-2: 0.40, 0.41, 0.42
    assert set(control["n"]) == {3}
    sparsity = drawn["sparsity"]
    assert list(sparsity[sparsity["experiment"] == "untrained seq"]["mean"]) == [0.5] * 3
    # accuracy has no control (nothing is seen before training)
    assert not drawn["accuracy"]["experiment"].str.startswith("untrained").any()
    without = plot_section(study, ["seq", "seq_bn"], "normalisation",
                           {"probe": str(tmp_path / "p.png")})
    assert set(without["probe"]["experiment"]) == {"seq", "seq_bn"}
    assert imread(paths["probe"]).shape[0] > 200


def test_the_gtl_claims_mirror_the_notebooks_ogd_claims():
    """Each OGD-GTL claim compares the same quantities with the same margins as its notebook
    claim, with OGD-GTL's runs in place of the notebook's mean-loss OGD runs."""
    import dataclasses

    def gtl(name):
        return name.replace("ogd_", "ogd_gtl_", 1) if name.startswith("ogd_") else name

    def mapped(part):
        swap = {}
        for side in ("a", "b"):
            value = getattr(part, side)
            if isinstance(value, findings.Quantity):
                swap[side] = dataclasses.replace(value, experiment=gtl(value.experiment))
        return dataclasses.replace(part, **swap)

    claims = {claim.key: claim for claim in findings.CLAIMS}
    mirrored = ["sparsity_low", "sparsity_falls", "improves_probe", "bn_retains_ogd_adam_bn",
                "bn_retains_ogd_sgd_bn", "adam_fewer_epochs", "no_plateau"]
    for key in mirrored:
        notebook = claims[f"ogd_{key}"]
        published = claims[f"gtl_{key.replace('_ogd_', '_ogd_gtl_')}"]
        assert published.section == "OGD-GTL"
        assert published.text.startswith("Does the notebook's observation hold for the "
                                          "published method (OGD-GTL)?")
        assert published.figure == notebook.figure.replace("ogd/", "ogd_gtl/")
        assert published.parts() == [mapped(p) for p in notebook.parts()], key
        assert all(e.startswith("ogd_gtl_") or not e.startswith("ogd")
                   for e in published.experiments)
