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


def test_test_rows_of_a_class_too_small_to_measure_are_reserved_not_trained_on():
    ids = [f"C{i}" for i in range(200)]
    strata = ["rare"] * 4 + ["common"] * 196
    small = _split(ids, strata, min_rows=5)
    free = _split(ids, strata, min_rows=1)
    rare = small.iloc[:4]
    assert set(rare) <= {"train", "val", "reserved"}
    assert (rare[free.iloc[:4] == "test"] == "reserved").all()  # the rows the hash puts in test
    assert (rare[free.iloc[:4] != "test"] == free.iloc[:4][free.iloc[:4] != "test"]).all()  # the others as hashed
    assert set(small.iloc[4:]) == {"train", "val", "test"}


def test_a_class_crossing_min_rows_per_class_moves_no_row_between_train_val_and_test():
    """Seed 42, minimum 5: a class grows from 4 rows to 5 and then 40. No row changes between train, val and
    test; the only change allowed is reserved -> test (a row no held-out model ever trained on)."""
    ids = [f"N{i}" for i in range(60)]
    free = _split(ids, ["x"] * 60, min_rows=1)
    test_hashed = [i for i in ids if free[i] == "test"]
    others = [i for i in ids if free[i] != "test"]
    start = test_hashed[:2] + others[:2]  # a 4-row class with two test-hashed rows
    sizes, previous = [len(start), 5, 40], None
    for size in sizes:
        grown = start + [i for i in ids if i not in start][: size - len(start)]
        side = _split(grown, ["grows"] * len(grown), min_rows=5)
        if previous is not None:
            for call_id, before in previous.items():
                after = side[call_id]
                assert after == before or (before, after) == ("reserved", "test"), (call_id, before, after)
        previous = side
    first = _split(start, ["grows"] * 4, min_rows=5)
    assert (first[test_hashed[:2]] == "reserved").all()
    assert (previous[test_hashed[:2]] == "test").all()
