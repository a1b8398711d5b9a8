"""Tests for the synthetic demo data generator (fast: small sizes except one full run)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from callreason.demo import generate_demo_data, make_taxonomy, write_demo_data


@pytest.fixture(scope="module")
def full():
    return generate_demo_data(seed=0, return_gold=True)


def _leaves(tax):
    return [l3 for l2s in tax.values() for l3s in l2s.values() for l3 in l3s]


def test_taxonomy_shape_and_uniqueness():
    tax = make_taxonomy()
    l2 = [x for l2s in tax.values() for x in l2s]
    leaves = _leaves(tax)
    assert len(tax) == 8
    assert 38 <= len(l2) <= 46
    assert 56 <= len(leaves) <= 72
    assert len(set(l2)) == len(l2) and len(set(leaves)) == len(leaves)
    assert all(l3s for l2s in tax.values() for l3s in l2s.values())
    names = list(tax) + l2 + leaves
    assert all(n == n.lower() and " " not in n for n in names)


def test_deterministic_and_seed_sensitive():
    a = generate_demo_data(seed=7, n_labeled=300, n_unlabeled=200)
    b = generate_demo_data(seed=7, n_labeled=300, n_unlabeled=200)
    c = generate_demo_data(seed=8, n_labeled=300, n_unlabeled=200)
    assert a[0] == b[0]
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])
    assert not a[1]["summary"].equals(c[1]["summary"])


def test_schema_and_dtypes(full):
    tax, lab, unl = full
    _, lab_public, _ = generate_demo_data(seed=1, n_labeled=200, n_unlabeled=50)
    assert list(lab_public.columns) == ["call_id", "summary", "level_1", "level_2", "level_3", "confidence"]
    assert list(unl.columns) == ["call_id", "summary", "level_1", "level_2", "level_3"]
    assert len(lab) == 2400 and len(unl) == 5000
    for df in (lab_public, unl):
        for col in df.columns:
            if col != "confidence":
                assert df[col].map(type).eq(str).all(), col
    assert lab_public["confidence"].dtype == np.float64
    assert lab["confidence"].between(0.0, 1.0).all()
    assert not lab.isna().any().any() and not unl.isna().any().any()


def test_paths_valid(full):
    tax, lab, unl = full
    valid = {(l1, l2, l3) for l1, l2s in tax.items() for l2, l3s in l2s.items() for l3 in l3s}
    for df, cols in [(lab, ["level_1", "level_2", "level_3"]),
                     (lab, ["gold_level_1", "gold_level_2", "gold_level_3"]),
                     (unl, ["level_1", "level_2", "level_3"])]:
        assert set(map(tuple, df[cols].to_numpy())) <= valid


def test_call_ids_unique(full):
    _, lab, unl = full
    ids = pd.concat([lab["call_id"], unl["call_id"]])
    assert ids.is_unique
    assert lab["call_id"].str.fullmatch(r"CALL-\d{6}").all()
    assert unl["call_id"].str.fullmatch(r"UNL-\d{6}").all()


def test_word_counts(full):
    _, lab, unl = full
    for df in (lab, unl):
        wc = df["summary"].str.split().str.len()
        assert wc.between(40, 120).all()
    assert lab["summary"].is_unique


def test_class_balance(full):
    tax, lab, unl = full
    counts = lab["gold_level_3"].value_counts()
    assert set(counts.index) == set(_leaves(tax))
    assert counts.min() >= 12
    assert counts.max() >= 4 * counts.min()  # unequal, long-tailed
    assert set(unl["level_3"]) <= set(_leaves(tax))


def test_confidence_and_noise(full):
    _, lab, _ = full
    hi = lab["confidence"] >= 0.75
    assert 1800 <= hi.sum() <= 2000
    wrong = lab["level_3"] != lab["gold_level_3"]
    assert 0.08 <= wrong.mean() <= 0.12
    assert 0.005 <= wrong[hi].mean() <= 0.06  # some confidently wrong
    assert lab.loc[wrong, "confidence"].median() < 0.75 <= lab.loc[~wrong, "confidence"].median()
    # Mostly sibling/cousin mistakes.
    assert (lab.loc[wrong, "level_1"] == lab.loc[wrong, "gold_level_1"]).mean() >= 0.6


def test_write_demo_data_byte_identical(tmp_path):
    write_demo_data(tmp_path / "a", seed=0)
    write_demo_data(tmp_path / "b", seed=0)
    files = ["taxonomy/taxonomy.json", "data/phase2_labeled.parquet",
             "data/unlabeled_summaries.parquet", "data/demo_unlabeled_gold.parquet"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert json.loads((tmp_path / "a" / files[0]).read_text()) == make_taxonomy()
    lab = pd.read_parquet(tmp_path / "a" / files[1])
    assert list(lab.columns) == ["call_id", "summary", "level_1", "level_2", "level_3", "confidence"]
    assert list(pd.read_parquet(tmp_path / "a" / files[2]).columns) == ["call_id", "summary"]
    gold = pd.read_parquet(tmp_path / "a" / files[3])
    assert list(gold.columns) == ["call_id", "level_1", "level_2", "level_3"]


def test_long_mode_keeps_the_rows_and_labels_and_hides_the_reason_anywhere(full):
    """``long=True``: the short demo's rows with 200-600-word transcripts around each whole short summary."""
    _, short, short_pool = full
    _, long, long_pool = generate_demo_data(seed=0, return_gold=True, long=True)
    assert long.drop(columns="summary").equals(short.drop(columns="summary"))
    assert long_pool.drop(columns="summary").equals(short_pool.drop(columns="summary"))
    words = long["summary"].str.split().str.len()
    assert words.between(200, 600).all() and words.median() > 300
    starts = np.array([t.index(s) / len(t) for t, s in zip(long["summary"], short["summary"])])  # raises if not whole
    assert (starts < 0.15).mean() > 0.05 and (starts > 0.6).mean() > 0.1  # early and late, not in one place
    # The sentences around the summary carry no reason: a TF-IDF classifier of level_1 on them alone is at chance.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    filler = [t.replace(s, " ") for t, s in zip(long["summary"], short["summary"])]
    x = TfidfVectorizer().fit_transform(filler)
    y = long["gold_level_1"].to_numpy()
    model = LogisticRegression(max_iter=1000).fit(x[:1600], y[:1600])
    majority = pd.Series(y[1600:]).value_counts(normalize=True).iloc[0]
    assert (model.predict(x[1600:]) == y[1600:]).mean() <= majority + 0.05
    _, again, _ = generate_demo_data(seed=0, return_gold=True, long=True)
    assert again.equals(long)
