import math

import numpy as np
import pytest

from clexp.metrics import (
    accuracy,
    accuracy_matrix,
    average_accuracy,
    average_forgetting,
    backward_transfer,
    cross_entropy,
    forward_transfer,
    per_class_accuracy,
    per_task_accuracy,
    population_sparsity,
)

# A worked example: three tasks; R[i, j] = accuracy on task j after training task i.
ROWS = [
    [0.9, 0.0, 0.1],
    [0.5, 0.8, 0.0],
    [0.2, 0.4, 0.7],
]


def test_population_sparsity_on_a_hand_built_tensor():
    h1 = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])  # 4 zeros of 6
    h2 = np.array([[0.0, 3.0], [1.0, 1.0]])  # 1 zero of 4
    assert population_sparsity(h1) == pytest.approx(4 / 6)
    assert population_sparsity(h2) == pytest.approx(1 / 4)
    assert population_sparsity(h1, h2) == pytest.approx(5 / 10)


def test_accuracy_per_class_and_per_task():
    labels = np.array([1, 1, 2, 2, 3, 4])
    predictions = np.array([1, 0, 2, 2, 3, 3])
    assert accuracy(predictions, labels) == pytest.approx(4 / 6)
    assert per_class_accuracy(predictions, labels, [1, 2]) == {"1": 0.5, "2": 1.0}
    assert per_task_accuracy(predictions, labels, [[1, 2], [3, 4]]) == [0.75, 0.5]
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_cross_entropy_matches_the_definition():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0])
    expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 1)), -np.log(1 / (1 + np.exp(1)))])
    assert cross_entropy(logits, labels) == pytest.approx(expected)


def test_accuracy_matrix_summaries_on_a_worked_example():
    matrix = accuracy_matrix(ROWS)
    assert matrix.shape == (3, 3)
    assert average_accuracy(matrix) == pytest.approx((0.2 + 0.4 + 0.7) / 3)
    # BWT = ((0.2 - 0.9) + (0.4 - 0.8)) / 2
    assert backward_transfer(matrix) == pytest.approx(-0.55)
    # forgetting: task 1 best 0.9 -> 0.2 (0.7); task 2 best 0.8 -> 0.4 (0.4)
    assert average_forgetting(matrix) == pytest.approx(0.55)
    # FWT = ((R[0,1] - b1) + (R[1,2] - b2)) / 2 with b = [0.1, 0.05, 0.2]
    assert forward_transfer(matrix, np.array([0.1, 0.05, 0.2])) == pytest.approx(
        ((0.0 - 0.05) + (0.0 - 0.2)) / 2
    )


def test_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    matrix = accuracy_matrix([[0.5, 0.0, 0.0], [0.9, 0.9, 0.0], [0.3, 0.6, 0.8]])
    # task 1: best earlier 0.9 (after task 2), final 0.3
    assert average_forgetting(matrix) == pytest.approx(((0.9 - 0.3) + (0.9 - 0.6)) / 2)
    assert backward_transfer(matrix) == pytest.approx(((0.3 - 0.5) + (0.6 - 0.9)) / 2)


def test_single_task_runs_have_no_transfer():
    matrix = accuracy_matrix([[0.97]])
    assert average_accuracy(matrix) == pytest.approx(0.97)
    assert math.isnan(backward_transfer(matrix))
    assert math.isnan(average_forgetting(matrix))
    assert math.isnan(forward_transfer(matrix, np.array([0.1])))


def test_task_incremental_accuracy_uses_only_the_tasks_own_logits():
    from clexp.metrics import per_task_accuracy_til

    # rows: logits of four items; the largest logit is always class 3 (another task)
    logits = np.array([
        [0.0, 2.0, 1.0, 9.0],   # label 1: masked to [1, 2] -> 1 (right); unmasked -> 3
        [0.0, 2.0, 1.0, 9.0],   # label 2: masked -> 1 (wrong)
        [0.0, 5.0, 1.0, 9.0],   # label 3: masked to [0, 3] -> 3 (right)
        [4.0, 5.0, 1.0, 3.0],   # label 0: masked to [0, 3] -> 0 (right); unmasked -> 1
    ])
    labels = np.array([1, 2, 3, 0])
    tasks = [[1, 2], [0, 3]]
    assert per_task_accuracy_til(logits, labels, tasks) == [0.5, 1.0]
    assert per_task_accuracy(logits.argmax(1), labels, tasks) == [0.0, 0.5]


def test_run_summary_reports_both_scenarios():
    from clexp.summary import run_summary

    def row(task, cil, til):
        return {"experiment": "e", "seed": 0, "num_tasks": 2, "task": task, "val_acc": 0.5,
                "val_loss": 1.0, "probe_acc": 0.9, "population_sparsity": 0.5,
                "init_per_task_acc": [0.1, 0.1], "ogd_basis_size": 0, "epochs_run": 1,
                "per_task_acc": cil, "per_task_acc_til": til}

    summary = run_summary([row(2, [0.0, 0.9], [0.8, 1.0]), row(1, [1.0, 0.0], [1.0, 0.5])])
    assert summary["avg_acc"] == pytest.approx(0.45)
    assert summary["bwt"] == pytest.approx(-1.0)
    assert summary["avg_acc_til"] == pytest.approx(0.9)
    assert summary["bwt_til"] == pytest.approx(-0.2)
    old = run_summary([{k: v for k, v in row(1, [1.0, 0.0], [1.0, 0.5]).items()
                        if k != "per_task_acc_til"}])
    assert np.isnan(old["avg_acc_til"])


def test_the_task_incremental_accuracy_table_has_the_til_matrix_only():
    from clexp.summary import accuracy_table

    rows = [{"task": t, "tasks": [[1, 2], [3, 4]], "per_task_acc": [0.5, 0.0],
             "per_task_acc_til": [1.0, 0.5 * t], "val_acc": 0.5, "probe_acc": 0.9,
             "population_sparsity": 0.3} for t in (2, 1)]
    table = accuracy_table(rows, "per_task_acc_til")
    assert list(table.columns) == ["after_task", "task1 [1,2]", "task2 [3,4]"]
    assert table["task2 [3,4]"].tolist() == [0.5, 1.0]
    assert "val_acc" in accuracy_table(rows).columns
