import numpy as np
import pandas as pd

from callreason.split import assign_split


def _split(ids, strata, seed=42, min_rows=1):
    return pd.Series(assign_split(pd.Series(ids), pd.Series(strata), 0.2, 0.1, seed, min_rows), index=ids)


def test_split_is_deterministic_and_roughly_stratified():
    ids = [f"C{i}" for i in range(4000)]
    strata = ["a" if i % 4 else "b" for i in range(4000)]
    first, second = _split(ids, strata), _split(ids, strata)
    assert first.equals(second)
    for cls in ("a", "b"):
        share = (first[[s == cls for s in strata]] == "test").mean()
        assert 0.17 < share < 0.23
    assert 0.06 < (first == "val").mean() < 0.09


def test_appending_rows_never_moves_an_existing_row():
    ids = [f"C{i}" for i in range(500)]
    before = _split(ids, ["x"] * 500)
    after = _split(ids + [f"N{i}" for i in range(300)], ["x"] * 800)
    assert after[ids].equals(before)


def test_seed_changes_the_split():
    ids = [f"C{i}" for i in range(500)]
    assert not _split(ids, ["x"] * 500, seed=1).equals(_split(ids, ["x"] * 500, seed=2))


def test_small_classes_stay_in_train():
    ids = [f"C{i}" for i in range(200)]
    strata = ["rare"] * 3 + ["common"] * 197
    side = _split(ids, strata, min_rows=5)
    assert (side.iloc[:3] == "train").all()
    assert set(side.iloc[3:]) == {"train", "val", "test"}
