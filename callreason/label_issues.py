"""Suspect LLM labels: rows whose given level_3 a cheap out-of-sample model finds unlikely.

Every labeled row (all splits of the prepared dataset) gets out-of-fold probabilities from a
TF-IDF (word 1-2 grams + char_wb 2-5 grams, sublinear tf) logistic regression, by k-fold
cross-validation, so a row is never judged by a model that saw its own label.

* score: the self-confidence, the out-of-fold probability of the given label (low = suspect);
* flag (confident learning): the self-confidence is below its class's threshold (the mean
  self-confidence of the rows given that class) while another class's probability is at or above
  that other class's threshold.

Folds: ``min(label_issues.folds, smallest class count)`` stratified folds; if a class has a single
row, stratification is impossible and plain shuffled k-fold is used (such a class's row is then
judged by a model that never saw the class: expect it flagged, ``given_class_rows`` shows it).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd
from joblib import cpu_count
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from callreason.errors import InputError
from callreason.lexical import tfidf_union
from callreason.taxonomy import LEVELS, Taxonomy

ISSUE_COLUMNS = (
    "rank", "call_id", "summary", "split", *(f"given_{lv}" for lv in LEVELS), *(f"suggested_{lv}" for lv in LEVELS),
    "given_label_prob", "suggested_prob", "flagged", "given_class_rows", "llm_confidence", "top_paths",
)
"""Columns of ``data/label_issues.parquet``, most suspect first (``rank`` 1). ``top_paths``: the out-of-fold
model's three most probable paths ``{level_1, level_2, level_3, probability}``."""


def text_model(c: float, seed: int) -> Pipeline:
    """The project's TF-IDF features (:func:`callreason.lexical.tfidf_union`) -> multinomial logistic regression."""
    return Pipeline([("tfidf", tfidf_union()), ("logreg", LogisticRegression(C=c, max_iter=2000, random_state=seed))])


def choose_folds(labels: np.ndarray, folds: int, seed: int) -> tuple[StratifiedKFold | KFold, dict[str, Any]]:
    """Stratified ``min(folds, smallest class count)`` folds (at least 2), else plain shuffled k-fold."""
    if not isinstance(folds, numbers.Integral) or isinstance(folds, bool) or folds < 2:
        raise InputError(f"params.yaml: label_issues.folds must be an integer >= 2, got {folds!r}")
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    n = min(int(folds), smallest)
    if n >= 2:
        return StratifiedKFold(n, shuffle=True, random_state=seed), {"cv": "stratified", "folds": n}
    n = min(int(folds), len(labels))
    if n < 2:
        raise InputError(f"label_issues: {len(labels)} labeled row(s); need at least 2 to cross-validate")
    return KFold(n, shuffle=True, random_state=seed), {"cv": "kfold", "folds": n}


def out_of_fold_probs(texts: list[str], labels: np.ndarray, folds: int, c: float,
                      seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``(n, m)`` out-of-fold class probabilities for ``labels`` coded ``0..m-1`` (every code present). The folds
    are fitted in parallel, one per CPU this process may use (the same probabilities as one after another)."""
    if not isinstance(c, numbers.Real) or isinstance(c, bool) or not c > 0:
        raise InputError(f"params.yaml: label_issues.c must be a number > 0, got {c!r}")
    splitter, info = choose_folds(labels, folds, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*[Nn]umber of classes in training fold.*")
        probs = cross_val_predict(text_model(float(c), seed), texts, labels, cv=splitter, method="predict_proba",
                                  n_jobs=min(info["folds"], cpu_count()))
    return probs, info


def confident_learning(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flags and per-class thresholds.

    ``probs (n, m)`` out-of-fold probabilities, ``given (n,)`` class codes. ``threshold[j]`` is the mean
    of ``probs[i, j]`` over the rows given class ``j`` (``inf`` for a class no row is given). A row is
    flagged when ``probs[i, given] < threshold[given]`` and ``probs[i, k] >= threshold[k]`` for some ``k != given``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    given = np.asarray(given, dtype=np.int64)
    rows = np.arange(len(given))
    self_confidence = probs[rows, given]
    totals = np.bincount(given, weights=self_confidence, minlength=probs.shape[1])
    counts = np.bincount(given, minlength=probs.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        threshold = np.where(counts > 0, totals / np.maximum(counts, 1), np.inf)
    above = probs >= threshold[None, :]
    above[rows, given] = False
    return (self_confidence < threshold[given]) & above.any(axis=1), threshold


def find_label_issues(dataset: pd.DataFrame, taxonomy: Taxonomy, folds: int = 5, c: float = 10.0,
                      seed: int = 42) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All rows of ``dataset`` (prepared dataset columns), most suspect first (``ISSUE_COLUMNS``), and counts."""
    classes, given = np.unique(dataset["level_3"].astype(str).to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"label_issues: the labeled rows have {len(classes)} level_3 class(es); need at least 2")
    probs, info = out_of_fold_probs(dataset["summary"].astype(str).tolist(), given, folds, c, seed)
    flagged, _ = confident_learning(probs, given)
    rows = np.arange(len(given))
    best = probs.argmax(axis=1)
    suggested = [taxonomy.path_of_leaf(leaf) for leaf in classes[best]]
    frame = pd.DataFrame({
        "call_id": dataset["call_id"].astype(str).to_numpy(),
        "summary": dataset["summary"].to_numpy(),
        "split": dataset["split"].to_numpy() if "split" in dataset else "",
        **{f"given_{lv}": dataset[lv].astype(str).to_numpy() for lv in LEVELS},
        **{f"suggested_{lv}": [path[depth] for path in suggested] for depth, lv in enumerate(LEVELS)},
        "given_label_prob": probs[rows, given],
        "suggested_prob": probs[rows, best],
        "flagged": flagged,
        "given_class_rows": np.bincount(given)[given],
        "llm_confidence": dataset["confidence"].to_numpy(np.float64) if "confidence" in dataset else np.nan,
        "top_paths": [[{**dict(zip(LEVELS, taxonomy.path_of_leaf(classes[j]))), "probability": round(float(p[j]), 4)}
                       for j in np.argsort(-p, kind="stable")[:3]] for p in probs],
    })
    frame = frame.sort_values(["given_label_prob", "call_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    confidence = frame.groupby("flagged")["llm_confidence"].mean()
    counts = {
        "rows_checked": int(len(frame)),
        "flagged": int(frame["flagged"].sum()),
        "flagged_share": round(float(frame["flagged"].mean()), 4),
        "flagged_by_split": {str(k): int(v) for k, v in frame.groupby("split")["flagged"].sum().items()},
        "out_of_fold_accuracy": round(float((best == given).mean()), 4),
        "mean_given_label_prob": round(float(frame["given_label_prob"].mean()), 4),
        "mean_llm_confidence": {"flagged" if k else "not_flagged": round(float(v), 4)
                                for k, v in confidence.items() if pd.notna(v)},
        **info, "c": float(c),
    }
    return frame.loc[:, list(ISSUE_COLUMNS)], counts
