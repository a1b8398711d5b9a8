"""Suspect labels: out-of-fold TF-IDF self-confidence finds deliberately corrupted labels; fold choice; CL flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from callreason.errors import InputError
from callreason.label_issues import ISSUE_COLUMNS, choose_folds, confident_learning, find_label_issues
from callreason.taxonomy import LEVELS, Taxonomy

NESTED = {"billing": {"charges": ["refund_request"]}, "tech": {"network": ["internet_outage"]},
          "account": {"access": ["password_reset"]}}
VOCAB = {
    "refund_request": "refund money back charge overcharged credit reimburse bill",
    "internet_outage": "internet down outage connection router signal offline slow",
    "password_reset": "password login locked reset account access username forgot",
}
FILLER = "customer called agent said the today please about help".split()


def synthetic(n: int = 60, corrupt: int = 6, seed: int = 0) -> tuple[pd.DataFrame, Taxonomy, set[str]]:
    """``n`` rows over 3 classes with distinct words; ``corrupt`` rows get another class's label."""
    rng = np.random.default_rng(seed)
    taxonomy = Taxonomy.from_dict(NESTED)
    leaves = list(VOCAB)
    rows = []
    for i in range(n):
        leaf = leaves[i % 3]
        words = list(rng.choice(VOCAB[leaf].split(), size=4, replace=False)) + list(rng.choice(FILLER, size=4))
        rows.append({"call_id": f"C{i:03d}", "summary": " ".join(rng.permutation(words)), "label": leaf,
                     "confidence": 0.9, "split": ["train", "val", "test"][i % 5 % 3]})
    bad = rng.choice(n, size=corrupt, replace=False)
    for i in bad:
        true = rows[i]["label"]
        rows[i]["label"] = leaves[(leaves.index(true) + 1 + int(rng.integers(2))) % 3]
    frame = pd.DataFrame(rows)
    paths = [taxonomy.path_of_leaf(leaf) for leaf in frame.pop("label")]
    for depth, level in enumerate(LEVELS):
        frame[level] = [p[depth] for p in paths]
        frame[f"{level}_id"] = taxonomy.ids(level, frame[level].tolist())
    return frame, taxonomy, {f"C{i:03d}" for i in bad}


def test_corrupted_labels_rank_at_the_top_and_are_flagged():
    data, taxonomy, corrupted = synthetic()
    issues, counts = find_label_issues(data, taxonomy, folds=5, c=10.0, seed=0)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    assert issues["rank"].tolist() == list(range(1, 61))
    assert issues["given_label_prob"].is_monotonic_increasing
    top10 = set(issues.head(10)["call_id"])
    assert len(corrupted & top10) >= 5, (corrupted, issues.head(10))
    flagged = set(issues.loc[issues["flagged"], "call_id"])
    assert len(corrupted & flagged) >= 4 and len(flagged - corrupted) <= 2
    # the suggestion for a corrupted row is its original class, a valid path of the taxonomy
    rows = issues[issues["call_id"].isin(corrupted)]
    assert (rows["suggested_level_3"] != rows["given_level_3"]).sum() >= 5
    assert all(taxonomy.is_valid_path(*r) for r in rows[[f"suggested_{lv}" for lv in LEVELS]].itertuples(index=False))
    assert counts["rows_checked"] == 60 and counts["flagged"] == len(flagged)
    assert counts["cv"] == "stratified" and counts["folds"] == 5
    assert sum(counts["flagged_by_split"].values()) == len(flagged)


def test_fold_choice_follows_the_smallest_class():
    splitter, info = choose_folds(np.array([0] * 10 + [1] * 3), 5, 0)
    assert isinstance(splitter, StratifiedKFold) and info == {"cv": "stratified", "folds": 3}
    splitter, info = choose_folds(np.array([0] * 10 + [1] * 1), 5, 0)
    assert isinstance(splitter, KFold) and info == {"cv": "kfold", "folds": 5}
    with pytest.raises(InputError, match="folds"):
        choose_folds(np.array([0, 1]), 1, 0)


def test_small_classes_still_get_scored():
    data, taxonomy, _ = synthetic(n=30, corrupt=0)
    singleton = data.index[data["level_3"] == "password_reset"][1:]  # keep one password_reset row
    data = data.drop(index=singleton).reset_index(drop=True)
    issues, counts = find_label_issues(data, taxonomy, folds=5, c=10.0, seed=0)
    assert counts["cv"] == "kfold" and len(issues) == len(data)
    lone = issues[issues["given_level_3"] == "password_reset"].iloc[0]
    assert lone["given_class_rows"] == 1 and lone["rank"] == 1  # never seen in its training folds: most suspect


def test_confident_learning_flags():
    given = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9],   # row 2: given 0 but clearly class 1
                      [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    flagged, threshold = confident_learning(probs, given)
    np.testing.assert_allclose(threshold, [0.6, 0.7])
    # row 2: p(0)=0.1 < 0.6 and p(1)=0.9 >= 0.7 -> flagged; row 5: p(1)=0.6 < 0.7 but p(0)=0.4 < 0.6 -> not
    assert flagged.tolist() == [False, False, True, False, False, False]


def test_one_class_is_an_input_error():
    data, taxonomy, _ = synthetic(n=9, corrupt=0)
    data = data[data["level_3"] == "refund_request"]
    with pytest.raises(InputError, match="at least 2"):
        find_label_issues(data, taxonomy)
