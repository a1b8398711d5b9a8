"""Scores: per-level macro-F1 (over the classes present in the test split), path accuracy, DVC confusion rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score

from callreason.hierarchy import greedy_decode, independent_argmax, invalid_path_rate, joint_decode
from callreason.taxonomy import LEVELS, Taxonomy

DECIMALS = 4


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars / arrays turned into plain Python, floats rounded to 4 decimals."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), DECIMALS)
    return value


def level_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Macro-F1, accuracy and weighted-F1 of ``y_pred (n,)`` against ``y_true (n,)`` (label ids < ``n_classes``).

    Macro-F1 averages the F1 of the classes present in ``y_true`` (the test split's classes): a class with
    no test rows cannot be measured, so it neither counts as 0 nor at all. A prediction of such a class
    still costs the recall of the row's true class. Undefined precision counts as 0.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"level_scores: y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    if len(y_true) == 0:
        raise ValueError("level_scores: no rows to score")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        if ids.min() < 0 or ids.max() >= n_classes:
            raise ValueError(f"level_scores: {name} has ids outside [0, {n_classes})")
    return {
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def evaluation_metrics(true_ids: np.ndarray, level_probs: list[np.ndarray], taxonomy: Taxonomy) -> dict:
    """Scores of the joint (valid-path) decoding, with greedy and per-level argmax for comparison.

    ``true_ids (n, 3)`` label ids; ``level_probs`` ``[p1 (n, k1), p2 (n, k2), p3 (n, k3)]``.
    Returns a JSON-ready dict with keys ``level_1..level_3`` (joint decoding), ``path``, ``argmax``
    and ``rows``; floats rounded to 4 decimals.
    """
    true_ids = np.asarray(true_ids, dtype=np.int64)
    if true_ids.ndim != 2 or true_ids.shape[1] != len(LEVELS) or len(true_ids) == 0:
        raise ValueError(f"evaluation_metrics: true_ids must be (n > 0, 3), got {true_ids.shape}")
    path_index, _ = joint_decode(level_probs, taxonomy.paths)
    joint_ids = taxonomy.paths[path_index]
    greedy_ids = greedy_decode(level_probs, taxonomy)
    argmax_ids = independent_argmax(level_probs)
    n_classes = {level: len(taxonomy.labels[level]) for level in LEVELS}

    metrics: dict[str, Any] = {
        level: level_scores(true_ids[:, d], joint_ids[:, d], n_classes[level]) for d, level in enumerate(LEVELS)
    }
    greedy_level_3 = level_scores(true_ids[:, -1], greedy_ids[:, -1], n_classes[LEVELS[-1]])
    metrics["path"] = {
        "accuracy": float((joint_ids == true_ids).all(axis=1).mean()),
        "joint_vs_greedy_level_3_macro_f1_gain": metrics[LEVELS[-1]]["macro_f1"] - greedy_level_3["macro_f1"],
        "argmax_invalid_rate": invalid_path_rate(argmax_ids, taxonomy),
        "greedy_accuracy": float((greedy_ids == true_ids).all(axis=1).mean()),
    }
    metrics["argmax"] = {
        level: {"macro_f1": level_scores(true_ids[:, d], argmax_ids[:, d], n_classes[level])["macro_f1"]}
        for d, level in enumerate(LEVELS)
    }
    metrics["rows"] = int(len(true_ids))
    return _plain(metrics)


def classification_report_dict(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """scikit-learn's per-class report over the classes present in ``y_true`` (ids into ``labels``), JSON-ready.

    Its ``macro avg`` is the macro-F1 of :func:`level_scores`: the same classes, the same number.
    """
    present = sorted(set(np.asarray(y_true).tolist()))
    report = classification_report(y_true, y_pred, labels=present, target_names=[labels[i] for i in present],
                                   output_dict=True, zero_division=0)
    return _plain(report)


def confusion_rows(actual: list[str], predicted: list[str]) -> list[dict[str, str]]:
    """``[{"actual": a, "predicted": p}, ...]``, one per row, for DVC's ``confusion`` plot template."""
    if len(actual) != len(predicted):
        raise ValueError(f"confusion_rows: {len(actual)} actual vs {len(predicted)} predicted labels")
    return [{"actual": str(a), "predicted": str(p)} for a, p in zip(actual, predicted)]
