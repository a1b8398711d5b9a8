"""Input validation: one clear InputError line per bad input, warning counts, inputs never modified.

The bad-input files live in tests/fixtures/ (regenerate with `python tests/fixtures/make_fixtures.py`).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callreason.errors import InputError
from callreason.io import read_parquet
from callreason.taxonomy import Taxonomy
from callreason.validation import (
    LABELED_COLUMNS,
    UNLABELED_COLUMNS,
    clean_summary,
    filter_confident,
    validate_labeled,
    validate_prediction_input,
    validate_unlabeled,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> tuple[pd.DataFrame, str]:
    path = FIXTURES / name
    return read_parquet(path), str(path)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load(FIXTURES / "taxonomy_good.json")


def call(func, frame: pd.DataFrame, *args, **kwargs):
    """Call ``func(frame, ...)`` and check that ``frame`` was not modified, even when it raises."""
    before = frame.copy(deep=True)
    try:
        return func(frame, *args, **kwargs)
    finally:
        pd.testing.assert_frame_equal(frame, before)


def raises(func, frame: pd.DataFrame, *args, must_contain: tuple[str, ...] = (), **kwargs) -> str:
    """Assert an InputError on one line that starts with the source path and contains ``must_contain``."""
    source = next(a for a in args if isinstance(a, str) and ("/" in a or a.endswith(".parquet")))
    with pytest.raises(InputError, match=re.escape(Path(source).name)) as info:
        call(func, frame, *args, **kwargs)
    message = str(info.value)
    assert message.startswith(source)
    assert "\n" not in message
    for part in must_contain:
        assert part in message, (part, message)
    return message


# --------------------------------------------------------------------------- good inputs

def test_good_labeled_passes(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    out, counts = call(validate_labeled, frame, taxonomy, source)
    assert tuple(out.columns) == LABELED_COLUMNS
    assert len(out) == 12 and out["call_id"].is_unique
    assert out["confidence"].dtype == np.float64
    assert all(isinstance(v, str) for col in LABELED_COLUMNS[:5] for v in out[col])
    assert counts == {"rows_read": 12, "rows_out": 12, "dropped_empty_summary": 0, "summaries_truncated": 0,
                      "control_characters_removed": 0, "dropped_duplicate_same_labels": 0}
    assert out is not frame


def test_good_unlabeled_and_prediction_pass():
    frame, source = fixture("unlabeled_good.parquet")
    out, counts = call(validate_unlabeled, frame.assign(extra=1), source, labeled_ids={"C-01"})
    assert tuple(out.columns) == UNLABELED_COLUMNS
    assert counts["rows_read"] == counts["rows_out"] == 6 and counts["dropped_call_id_in_labeled"] == 0
    out, counts = call(validate_prediction_input, frame, source)
    assert len(out) == 6 and "dropped_call_id_in_labeled" not in counts


def test_extra_columns_dropped_and_numeric_call_id_converted(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    frame = frame.assign(call_id=np.arange(100, 112), model="gpt", reasoning="...")
    out, _ = call(validate_labeled, frame, taxonomy, source)
    assert tuple(out.columns) == LABELED_COLUMNS
    assert out["call_id"].tolist() == [str(k) for k in range(100, 112)]
    out, _ = call(validate_prediction_input, pd.DataFrame({"call_id": [7.0, 8.0], "summary": ["a", "b"]}), source)
    assert out["call_id"].tolist() == ["7", "8"]


def test_clean_summary():
    assert clean_summary("  a\x00b\n\tc\x1b  <b>d</b>\r\n", 100) == "ab c <b>d</b>"
    assert clean_summary("one two three", 7) == "one two"
    assert clean_summary("\x00\x07", 10) == ""


# --------------------------------------------------------------------------- columns and dtypes

def test_missing_column(taxonomy):
    frame, source = fixture("labeled_missing_column.parquet")
    raises(validate_labeled, frame, taxonomy, source, must_contain=("'confidence'", "missing"))


def test_misspelled_column(taxonomy):
    frame, source = fixture("labeled_misspelled_column.parquet")
    raises(validate_labeled, frame, taxonomy, source, must_contain=("found 'sumary': rename it to 'summary'",))


def test_confidence_as_text(taxonomy):
    frame, source = fixture("labeled_confidence_text.parquet")
    raises(validate_labeled, frame, taxonomy, source,
           must_contain=("'confidence'", "'C-01' ('0.95')", "and 7 more", "write numbers"))


def test_confidence_out_of_range(taxonomy):
    frame, source = fixture("labeled_confidence_out_of_range.parquet")
    raises(validate_labeled, frame, taxonomy, source, must_contain=("'confidence'", "'C-03' (1.5)", "'C-06' (-0.2)"))


def test_confidence_nan(taxonomy):
    frame, source = fixture("labeled_confidence_nan.parquet")
    raises(validate_labeled, frame, taxonomy, source, must_contain=("'confidence'", "NaN", "'C-04'"))


def test_null_call_id(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    frame["call_id"] = frame["call_id"].astype(object)
    frame.loc[[2, 9], "call_id"] = [None, "  "]
    raises(validate_labeled, frame, taxonomy, source, must_contain=("'call_id'", "2, 9"))


def test_labels_must_be_text_and_present(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    numeric = frame.assign(level_2=np.arange(12))
    raises(validate_labeled, numeric, taxonomy, source, must_contain=("'level_2'", "'C-01' (0)", "strings"))
    missing = frame.astype({"level_3": object})
    missing.loc[[0, 11], "level_3"] = [None, ""]
    raises(validate_labeled, missing, taxonomy, source,
           must_contain=("'level_3'", "'C-01', 'C-12'", "label it or remove the row"))


# --------------------------------------------------------------------------- duplicates

def test_duplicate_ids_conflicting_labels(taxonomy):
    frame, source = fixture("labeled_duplicate_conflicting.parquet")
    raises(validate_labeled, frame, taxonomy, source, must_contain=("different labels", "'C-01'"))


def test_duplicate_ids_same_labels_dropped(taxonomy):
    frame, source = fixture("labeled_duplicate_same.parquet")
    out, counts = call(validate_labeled, frame, taxonomy, source)
    assert counts["dropped_duplicate_same_labels"] == 2
    assert counts["rows_read"] == 14 and counts["rows_out"] == 12 == len(out)
    assert out["call_id"].is_unique


def test_duplicate_ids_same_labels_different_summary(taxonomy):
    frame, source = fixture("labeled_duplicate_same.parquet")
    frame.loc[13, "summary"] = "Something else entirely."  # second copy of C-05
    raises(validate_labeled, frame, taxonomy, source, must_contain=("ambiguous", "'C-05'"))


def test_unlabeled_duplicate_ids():
    frame = pd.DataFrame({"call_id": ["U-1", "U-1", "U-2", "U-2"], "summary": ["a", "a", "b", "c"]})
    raises(validate_unlabeled, frame, "data/x.parquet", must_contain=("ambiguous", "'U-2'"))
    out, counts = call(validate_unlabeled, frame.iloc[:3], "data/x.parquet")
    assert counts["dropped_duplicate_same_summary"] == 1 and out["call_id"].tolist() == ["U-1", "U-2"]


# --------------------------------------------------------------------------- taxonomy

def test_unknown_label(taxonomy):
    frame, source = fixture("labeled_unknown_label.parquet")
    raises(validate_labeled, frame, taxonomy, source,
           must_contain=("'level_3'", "'router_reboot'", "'C-05', 'C-07'",
                         "add it to taxonomy/taxonomy.json or fix the label"))


def test_unknown_label_close_match(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    frame.loc[0, "level_2"] = "charge"
    raises(validate_labeled, frame, taxonomy, source, must_contain=("'level_2'", "did you mean 'charges'", "'C-01'"))


def test_invalid_path(taxonomy):
    frame, source = fixture("labeled_invalid_path.parquet")
    raises(validate_labeled, frame, taxonomy, source,
           must_contain=("'C-08'", "level_2 'charges' belongs under level_1 'billing'", "not 'technical'"))


def test_invalid_path_level_3(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    frame.loc[0, "level_3"] = "card_declined"  # under payments, row says charges
    raises(validate_labeled, frame, taxonomy, source,
           must_contain=("'C-01'", "level_3 'card_declined' belongs under level_2 'payments'", "not 'charges'"))


@pytest.mark.parametrize("name, part", [
    ("taxonomy_leaf_two_parents.json", "'refund'"),
    ("taxonomy_empty_branch.json", "'technical'"),
    ("taxonomy_not_nested.json", "'billing'"),
])
def test_bad_taxonomy(name, part):
    with pytest.raises(InputError, match=re.escape(name)) as info:
        Taxonomy.load(FIXTURES / name)
    assert part in str(info.value)


# --------------------------------------------------------------------------- rows dropped with counts

def test_empty_summaries_dropped(taxonomy):
    frame, source = fixture("labeled_empty_summaries.parquet")
    out, counts = call(validate_labeled, frame, taxonomy, source)
    assert counts["dropped_empty_summary"] == 3 and counts["rows_out"] == 9 == len(out)
    assert not {"C-02", "C-03", "C-04"} & set(out["call_id"])


def test_all_summaries_empty(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    raises(validate_labeled, frame.assign(summary=" "), taxonomy, source, must_contain=("'summary'", "empty"))


def test_huge_summary_with_markup_and_control_characters():
    frame, source = fixture("unlabeled_huge_summary.parquet")
    assert frame["summary"].str.len().max() > 1_000_000
    out, counts = call(validate_unlabeled, frame, source, max_chars=5000)
    assert counts["summaries_truncated"] == 1 and counts["control_characters_removed"] == 1
    text = out.loc[1, "summary"]
    assert len(text) <= 5000 and text.startswith("<b>Customer</b> said **the bill**")
    assert not re.search(r"[\x00-\x1f\x7f]", text)


def test_unlabeled_colliding_ids_dropped():
    frame, source = fixture("unlabeled_colliding_ids.parquet")
    labeled, _ = fixture("labeled_good.parquet")
    out, counts = call(validate_unlabeled, frame, source, labeled_ids=set(labeled["call_id"]))
    assert counts["dropped_call_id_in_labeled"] == 2 and counts["rows_out"] == 4 == len(out)
    assert not {"C-01", "C-05"} & set(out["call_id"])


def test_unlabeled_all_ids_labeled():
    frame = pd.DataFrame({"call_id": ["C-01"], "summary": ["a"]})
    raises(validate_unlabeled, frame, "data/u.parquet", labeled_ids={"C-01"}, must_contain=("already labeled",))


def test_nonstring_summaries():
    frame, source = fixture("unlabeled_nonstring_summaries.parquet")
    raises(validate_unlabeled, frame, source, must_contain=("'summary'", "'U-01' (12.5)", "strings"))
    raises(validate_prediction_input, frame, source, must_contain=("'summary'",))


# --------------------------------------------------------------------------- filtering

def test_filter_confident(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    checked, _ = validate_labeled(frame, taxonomy, source)
    kept, counts = call(filter_confident, checked, 0.75, source)
    assert counts == {"below_min_confidence": 5} and len(kept) == 7
    assert (kept["confidence"] >= 0.75).all()


def test_all_below_threshold(taxonomy):
    frame, source = fixture("labeled_all_below_threshold.parquet")
    checked, _ = validate_labeled(frame, taxonomy, source)
    raises(filter_confident, checked, 0.75, source,
           must_contain=("12 rows", "highest confidence 0.3", "filter.min_confidence in params.yaml"))


def test_bad_min_confidence(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    checked, _ = validate_labeled(frame, taxonomy, source)
    with pytest.raises(InputError, match="filter.min_confidence"):
        filter_confident(checked, "0.7", source)


# --------------------------------------------------------------------------- files and prediction input

def test_not_a_parquet_file():
    path = FIXTURES / "not_a_parquet.parquet"
    with pytest.raises(InputError, match=re.escape(path.name) + ".*not a readable parquet"):
        read_parquet(path)


def test_prediction_input_without_summary():
    frame, source = fixture("predict_no_summary.parquet")
    raises(validate_prediction_input, frame, source, must_contain=("'summary'", "'text'"))


def test_empty_prediction_input():
    frame, source = fixture("predict_empty.parquet")
    raises(validate_prediction_input, frame, source, must_contain=("nothing to predict",))


def test_empty_labeled_frame(taxonomy):
    frame, source = fixture("labeled_good.parquet")
    raises(validate_labeled, frame.iloc[:0], taxonomy, source, must_contain=("no rows",))


def test_fixtures_up_to_date(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.write_all(tmp_path):
        committed = FIXTURES / path.name
        assert committed.exists(), f"run python tests/fixtures/make_fixtures.py ({path.name} missing)"
        if path.suffix == ".parquet" and path.name != "not_a_parquet.parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(committed))
        else:
            assert path.read_bytes() == committed.read_bytes()


def test_prediction_chunk_with_only_empty_summaries_is_empty_not_error():
    frame = pd.DataFrame({"call_id": ["P-1", "P-2"], "summary": [None, "  "]})
    out, counts = call(validate_prediction_input, frame, "data/new_calls.parquet")
    assert len(out) == 0 and tuple(out.columns) == UNLABELED_COLUMNS
    assert counts["dropped_empty_summary"] == 2 and counts["rows_out"] == 0
    raises(validate_unlabeled, frame, "data/u.parquet", must_contain=("empty summary",))
