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
