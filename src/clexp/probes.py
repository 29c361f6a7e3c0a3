"""Linear probes: how much a frozen representation still separates the classes."""

from __future__ import annotations

import numpy as np

from clexp.metrics import accuracy, per_class_accuracy


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    max_iter: int = 1000,
) -> dict | None:
    """Fit a logistic regression on standardised features and score it on the evaluation set.

    Returns `acc`, `per_class_acc` and `coef_norm` (the L2 norm of each class's coefficient
    vector), or None when the training labels hold fewer than two classes.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(train_labels)
    if len(classes) < 2:
        return None
    scaler = StandardScaler().fit(train_features)
    probe = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings():
        # A probe that has not fully converged is still a valid lower bound on separability.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(scaler.transform(train_features), train_labels)
    predictions = probe.predict(scaler.transform(eval_features))
    coefficients = probe.coef_ if len(classes) > 2 else np.vstack([-probe.coef_, probe.coef_])
    return {
        "acc": accuracy(predictions, eval_labels),
        "per_class_acc": per_class_accuracy(predictions, eval_labels, classes.tolist()),
        "coef_norm": {
            str(c): float(np.linalg.norm(w)) for c, w in zip(classes, coefficients, strict=True)
        },
    }
