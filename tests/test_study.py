import pandas as pd
import pytest

from clexp.config import DEFAULT_OPTIONS
from clexp.study import weight_decay_sweep, weight_decay_sweep_experiments


def settings_of(**overrides):
    return dict(DEFAULT_OPTIONS, tasks=[[1, 2], [3, 4]], **overrides)


SETTINGS = {
    "seq": settings_of(name="seq"),  # 4 fixed epochs: another protocol
    "seq_wd001": settings_of(name="seq_wd001", stop_at_train_acc=0.98),
    "seq_wd1": settings_of(name="seq_wd1", weight_decay=1.0, stop_at_train_acc=0.98),
    "seq_wd5": settings_of(name="seq_wd5", weight_decay=5.0, stop_at_train_acc=0.98,
                           probe_all_classes=True, epochs=7),  # neither changes the protocol
    "fast_wd1": settings_of(name="fast_wd1", weight_decay=1.0, stop_at_train_acc=0.98, lr=0.01),
    "bn_wd1": settings_of(name="bn_wd1", weight_decay=1.0, stop_at_train_acc=0.98,
                          norm="batch"),
}


def summary_of(names):
    return pd.DataFrame({
        "experiment": names, "seed": 0, "final_val_acc": [0.2 + 0.1 * i for i in range(len(names))],
        "final_probe_acc": 0.8, "final_sparsity": 0.5, "avg_forgetting": 0.9, "total_epochs": 9,
    })


def test_weight_decay_sweep_joins_one_protocol_only():
    assert weight_decay_sweep_experiments(SETTINGS) == ["seq_wd001", "seq_wd1", "seq_wd5"]
    table = weight_decay_sweep(summary_of(list(SETTINGS)), SETTINGS)
    assert list(table["experiment"]) == ["seq_wd001", "seq_wd1", "seq_wd5"]
    assert list(table["weight_decay"]) == [0.01, 1.0, 5.0]
    assert set(table["stop_at_train_acc"]) == {0.98}
    assert list(table["final_val_acc"]) == pytest.approx([0.3, 0.4, 0.5])


def test_weight_decay_sweep_without_an_early_stopped_run_is_empty():
    settings = {"seq": SETTINGS["seq"]}
    assert weight_decay_sweep_experiments(settings) == []
    table = weight_decay_sweep(summary_of(["seq"]), settings)
    assert table.empty and "weight_decay" in table.columns


def test_scenario_table_lays_the_methods_out_by_scenario():
    from clexp.study import scenario_table

    settings = {
        "seq": settings_of(name="seq"),
        "ewc": settings_of(name="ewc", method="ewc", ewc_lambda=100.0),
        "class_ewc": settings_of(name="class_ewc", method="ewc", ewc_lambda=None,
                                 tuned={"settings": ["ewc_lambda"]}),
        "task_seq": settings_of(name="task_seq", scenario="task"),
        "task_ewc": settings_of(name="task_ewc", method="ewc", scenario="task",
                                tuned={"settings": ["ewc_lambda"]}),
        "domain_joint": settings_of(name="domain_joint", joint=True, scenario="domain"),
        "seq_bn": settings_of(name="seq_bn", norm="batch"),            # not a reference method
        "ogd": settings_of(name="ogd", ogd=True),                      # nor OGD
        "online": settings_of(name="online", method="ewc", ewc_online=True, scenario="task",
                              tuned={"settings": ["ewc_lambda"]}),
    }
    summary = pd.DataFrame({
        "experiment": ["seq", "seq", "ewc", "class_ewc", "task_seq", "task_ewc", "task_ewc",
                       "domain_joint", "seq_bn", "ogd", "online"],
        "seed": [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        "avg_acc": [0.19, 0.21, 0.2, 0.22, 0.9, 0.95, 0.97, 0.93, 0.3, 0.3, 0.96],
    })
    table = scenario_table(summary, settings)
    rows = {(r["method"], r["strength"]): r for r in table.to_dict("records")}
    assert list(rows) == [("None (lower bound)", ""), ("Joint (upper bound)", ""),
                          ("EWC", "tuned"), ("EWC", "default"), ("Online EWC", "tuned")]
    none = rows[("None (lower bound)", "")]
    assert none["class_experiment"] == "seq" and none["class_mean"] == pytest.approx(0.2)
    assert none["class_sd"] == pytest.approx(pd.Series([0.19, 0.21]).std())
    assert none["task_experiment"] == "task_seq" and none["task_n"] == 1
    assert pd.isna(none["task_sd"]) and pd.isna(none["domain_experiment"])
    tuned = rows[("EWC", "tuned")]
    assert tuned["task_mean"] == pytest.approx(0.96) and tuned["class_experiment"] == "class_ewc"
    assert rows[("EWC", "default")]["class_experiment"] == "ewc"
    assert rows[("Joint (upper bound)", "")]["domain_mean"] == pytest.approx(0.93)
