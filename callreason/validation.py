"""Checks for the user's input frames: one clear ``InputError`` line per problem, warnings as counts.

Every function returns a new frame (the input is never modified) plus ``counts``: rows dropped or
changed per reason, always with ``rows_read`` and ``rows_out``. Error messages start with the
source file path, name the column and the first few offending call_ids, and say what to do.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from callreason.errors import InputError
from callreason.taxonomy import LEVELS, Taxonomy

LABELED_COLUMNS = ("call_id", "summary", "level_1", "level_2", "level_3", "confidence")
UNLABELED_COLUMNS = ("call_id", "summary")

MAX_SHOWN = 5  # offending ids/values shown in a message before "and N more"
TAXONOMY_HINT = "add it to taxonomy/taxonomy.json or fix the label"

# Control characters (Unicode Cc) other than the line/tab whitespace, which becomes a space.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_WHITESPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------- message helpers

def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a value on one line, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _listing(items: Sequence[str]) -> str:
    """``a, b, c, d, e and 3 more`` (items already formatted)."""
    shown = ", ".join(items[:MAX_SHOWN])
    return shown if len(items) <= MAX_SHOWN else f"{shown} and {len(items) - MAX_SHOWN} more"


def _ids(ids: Sequence[str]) -> str:
    return _listing([_short(i) for i in ids])


def _ids_with_values(ids: Sequence[str], values: Sequence[Any]) -> str:
    return _listing([f"{_short(i)} ({_short(v)})" for i, v in zip(ids, values)])


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


# --------------------------------------------------------------------------- cleaning

def _clean(text: str, max_chars: int) -> tuple[str, bool, bool]:
    """Cleaned text, whether control characters were removed, whether it was truncated."""
    removed = _CONTROL.search(text) is not None
    if removed:
        text = _CONTROL.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars].rstrip()
    return text, removed, truncated


def clean_summary(text: str, max_chars: int) -> str:
    """Remove control characters (tabs/newlines become spaces), collapse whitespace, strip, truncate.

    Markup (HTML, markdown) is left as text.
    """
    return _clean(text, max_chars)[0]


# --------------------------------------------------------------------------- column checks

def _check_columns(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Error for missing required columns (with rename hints) or a required column given twice."""
    present = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in present]
    if missing:
        spare = [c for c in present if c not in required]
        hints = []
        for name in missing:
            lowered = {c.lower().strip(): c for c in spare}
            match = difflib.get_close_matches(name, list(lowered), n=1, cutoff=0.6)
            if match:
                found = lowered[match[0]]
                spare.remove(found)
                hints.append(f"found {found!r}: rename it to {name!r}")
        hint = "; ".join(hints) if hints else f"columns present: {_listing([repr(c) for c in present]) or 'none'}"
        raise InputError(f"{source}: missing required column(s) {', '.join(repr(c) for c in missing)}; {hint}; "
                         f"expected columns {', '.join(required)}")
    doubled = [c for c in required if present.count(c) > 1]
    if doubled:
        raise InputError(f"{source}: column {doubled[0]!r} appears more than once; keep one")


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """Values of a column as Python objects, whatever the column's label type."""
    position = [str(c) for c in frame.columns].index(name)
    return frame.iloc[:, position].tolist()


def normalized_call_ids(frame: pd.DataFrame, source: str) -> list[str]:
    """call_id as strings; numbers become their text (``12.0`` -> ``"12"``); null or blank is an error."""
    out: list[str] = []
    blank_rows: list[int] = []
    for row, value in enumerate(_column(frame, "call_id")):
        if _is_null(value) or (isinstance(value, str) and not value.strip()):
            blank_rows.append(row)
            continue
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            out.append(str(int(value)))
        elif isinstance(value, numbers.Real) and float(value).is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    if blank_rows:
        raise InputError(f"{source}: column 'call_id' is empty in {len(blank_rows)} row(s) (row "
                         f"{_listing([str(r) for r in blank_rows])}, counting from 0); give every row a unique call_id")
    return out


def _summaries(frame: pd.DataFrame, ids: list[str], source: str, max_chars: int,
               counts: dict[str, int]) -> list[str | None]:
    """Cleaned summaries; ``None`` for null/blank ones (to drop). Non-text values are an error."""
    values = _column(frame, "summary")
    bad = [(i, v) for i, v in zip(ids, values) if not _is_null(v) and not isinstance(v, str)]
    if bad:
        raise InputError(f"{source}: column 'summary' must hold text, found {len(bad)} non-text value(s) in call_ids "
                         f"{_ids_with_values(*zip(*bad))}; write the summaries as strings")
    out: list[str | None] = []
    for value in values:
        if _is_null(value):
            out.append(None)
            continue
        text, removed, truncated = _clean(value, max_chars)
        counts["control_characters_removed"] += removed
        counts["summaries_truncated"] += truncated
        out.append(text or None)
    return out


def _labels(frame: pd.DataFrame, ids: list[str], source: str) -> dict[str, list[str]]:
    """level_1..level_3 as strings; null/blank or non-text labels are an error."""
    labels: dict[str, list[str]] = {}
    for level in LEVELS:
        values = _column(frame, level)
        empty = [i for i, v in zip(ids, values) if _is_null(v) or (isinstance(v, str) and not v.strip())]
        if empty:
            raise InputError(f"{source}: column {level!r} is empty for {len(empty)} row(s), call_ids {_ids(empty)}; "
                             "label it or remove the row")
        bad = [(i, v) for i, v in zip(ids, values) if not isinstance(v, str)]
        if bad:
            raise InputError(f"{source}: column {level!r} must hold label names (text), found {len(bad)} non-text "
                             f"value(s) in call_ids {_ids_with_values(*zip(*bad))}; write the label names as strings")
        labels[level] = values
    return labels


def _confidence(frame: pd.DataFrame, ids: list[str], source: str) -> np.ndarray:
    """confidence as float64 in [0, 1]; text, NaN or out-of-range values are an error."""
    position = [str(c) for c in frame.columns].index("confidence")
    column = frame.iloc[:, position]
    if pd.api.types.is_bool_dtype(column.dtype):
        raise InputError(f"{source}: column 'confidence' holds true/false values; write numbers in [0, 1]")
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        raw = column.tolist()
        bad = [(i, v) for i, v in zip(ids, raw)
               if not _is_null(v) and (not isinstance(v, numbers.Real) or isinstance(v, bool))]
        if bad:
            raise InputError(f"{source}: column 'confidence' must hold numbers, found {len(bad)} non-numeric value(s) "
                             f"in call_ids {_ids_with_values(*zip(*bad))}; write numbers (e.g. 0.9, not '0.9')")
        values = np.array([np.nan if _is_null(v) else float(v) for v in raw], dtype="float64")
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise InputError(f"{source}: column 'confidence' is missing (NaN) for {missing.size} row(s), call_ids "
                         f"{_ids([ids[k] for k in missing])}; give every row a confidence in [0, 1] or remove it")
    outside = np.flatnonzero((values < 0) | (values > 1))
    if outside.size:
        hint = "; if they are percentages divide by 100" if values.max() <= 100 and values.min() >= 0 else ""
        raise InputError(f"{source}: column 'confidence' must be in [0, 1], found {outside.size} value(s) outside in "
                         f"call_ids {_ids_with_values([ids[k] for k in outside], [float(values[k]) for k in outside])}"
                         f"{hint}")
    return values


def _check_taxonomy(labels: dict[str, list[str]], ids: list[str], taxonomy: Taxonomy, source: str) -> None:
    """Every label known to the taxonomy, every row a valid path."""
    for level in LEVELS:
        known = set(taxonomy.labels[level])
        rows: dict[str, list[str]] = {}
        for i, label in zip(ids, labels[level]):
            if label not in known:
                rows.setdefault(label, []).append(i)
        if rows:
            parts = []
            for label, where in list(rows.items())[:MAX_SHOWN]:
                close = difflib.get_close_matches(label, taxonomy.labels[level], n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                parts.append(f"{_short(label)}{guess} in call_ids {_ids(where)}")
            more = f" and {len(rows) - MAX_SHOWN} more label(s)" if len(rows) > MAX_SHOWN else ""
            raise InputError(f"{source}: column {level!r} has {len(rows)} label(s) not in the taxonomy: "
                             f"{'; '.join(parts)}{more}; {TAXONOMY_HINT}")
    for child, parent in (("level_2", "level_1"), ("level_3", "level_2")):
        expected = taxonomy.parent[child]
        bad = [(i, c, p) for i, c, p in zip(ids, labels[child], labels[parent]) if expected[c] != p]
        if bad:
            shown = [f"{_short(i)} ({child} {c!r} belongs under {parent} {expected[c]!r}, not {p!r})"
                     for i, c, p in bad]
            raise InputError(f"{source}: {len(bad)} row(s) have a {child} that is not a child of their {parent}: "
                             f"call_ids {_listing(shown)}; fix the labels so each row is a path of "
                             "taxonomy/taxonomy.json")


def _deduplicate(ids: list[str], keys: list[tuple], keep: list[int], source: str,
                 what: str) -> tuple[list[int], int]:
    """Drop repeated call_ids whose ``keys`` are identical (keep first); error when they differ.

    ``keys[k]`` is ``(labels..., summary)``; ``what`` names the labels in messages.
    """
    first: dict[str, int] = {}
    conflicting: list[str] = []
    ambiguous: list[str] = []
    out: list[int] = []
    dropped = 0
    for k in keep:
        i = ids[k]
        if i not in first:
            first[i] = k
            out.append(k)
            continue
        a, b = keys[first[i]], keys[k]
        if a == b:
            dropped += 1
        elif a[:-1] != b[:-1]:
            if i not in conflicting:
                conflicting.append(i)
        elif i not in ambiguous:
            ambiguous.append(i)
    if conflicting:
        raise InputError(f"{source}: {len(conflicting)} call_id(s) appear more than once with different {what}: "
                         f"{_ids(conflicting)}; keep one row per call_id with the right {what}")
    if ambiguous:
        lead = f"the same {what} but " if what != "summary" else ""
        raise InputError(f"{source}: {len(ambiguous)} call_id(s) appear more than once with {lead}different summaries "
                         f"(ambiguous): {_ids(ambiguous)}; give each call a unique call_id or remove the extra rows")
    return out, dropped


def _start(frame: pd.DataFrame, required: Sequence[str], source: str, empty_message: str) -> dict[str, int]:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{source}: expected a table (pandas DataFrame), got {type(frame).__name__}")
    _check_columns(frame, required, source)
    if len(frame) == 0:
        raise InputError(f"{source}: {empty_message}")
    return {"rows_read": len(frame), "dropped_empty_summary": 0, "summaries_truncated": 0,
            "control_characters_removed": 0}


# --------------------------------------------------------------------------- public API

def validate_labeled(frame: pd.DataFrame, taxonomy: Taxonomy, source: str,
                     max_chars: int = 20000) -> tuple[pd.DataFrame, dict[str, int]]:
    """Checked copy with exactly LABELED_COLUMNS (call_id str, summary cleaned str, labels str, confidence float64),
    plus counts of rows dropped or changed per reason (warnings)."""
    counts = _start(frame, LABELED_COLUMNS, source, "no rows; the labeled file must have at least one labeled row")
    counts["dropped_duplicate_same_labels"] = 0
    ids = normalized_call_ids(frame, source)
    confidence = _confidence(frame, ids, source)
    labels = _labels(frame, ids, source)
    _check_taxonomy(labels, ids, taxonomy, source)
    summaries = _summaries(frame, ids, source, max_chars, counts)
    keep = [k for k, s in enumerate(summaries) if s is not None]
    counts["dropped_empty_summary"] = len(summaries) - len(keep)
    keys = [(labels["level_1"][k], labels["level_2"][k], labels["level_3"][k], summaries[k])
            for k in range(len(ids))]
    keep, counts["dropped_duplicate_same_labels"] = _deduplicate(ids, keys, keep, source, "labels")
    if not keep:
        raise InputError(f"{source}: no rows left: all {len(ids)} summaries are empty; fill in column 'summary'")
    out = pd.DataFrame({
        "call_id": pd.Series([ids[k] for k in keep], dtype="str"),
        "summary": pd.Series([summaries[k] for k in keep], dtype="str"),
        **{level: pd.Series([labels[level][k] for k in keep], dtype="str") for level in LEVELS},
        "confidence": pd.Series(confidence[keep], dtype="float64"),
    })
    counts["rows_out"] = len(out)
    return out, counts


def filter_confident(frame: pd.DataFrame, min_confidence: float,
                     source: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows with confidence >= min_confidence; counts {"below_min_confidence": n}. InputError if nothing is left
    (say how many rows there were, the max confidence seen, and to lower filter.min_confidence in params.yaml)."""
    if (not isinstance(min_confidence, numbers.Real) or isinstance(min_confidence, bool)
            or not 0 <= float(min_confidence) <= 1):
        raise InputError(f"params.yaml: filter.min_confidence must be a number in [0, 1], got {min_confidence!r}")
    confidence = frame["confidence"].to_numpy(dtype="float64")
    mask = confidence >= float(min_confidence)
    if not mask.any():
        seen = f"highest confidence {confidence.max():.4g}" if len(confidence) else "no rows"
        raise InputError(f"{source}: no rows have confidence >= {min_confidence} ({len(confidence)} rows, {seen}); "
                         "lower filter.min_confidence in params.yaml")
    kept = frame.loc[mask].reset_index(drop=True)
    return kept, {"below_min_confidence": int((~mask).sum())}


def _validate_summaries_only(frame: pd.DataFrame, source: str, labeled_ids: Iterable[str] | None, max_chars: int,
                             empty_message: str, allow_none_left: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    counts = _start(frame, UNLABELED_COLUMNS, source, empty_message)
    counts["dropped_duplicate_same_summary"] = 0
    ids = normalized_call_ids(frame, source)
    summaries = _summaries(frame, ids, source, max_chars, counts)
    keep = [k for k, s in enumerate(summaries) if s is not None]
    counts["dropped_empty_summary"] = len(summaries) - len(keep)
    if labeled_ids is not None:
        labeled = set(labeled_ids)
        before = len(keep)
        keep = [k for k in keep if ids[k] not in labeled]
        counts["dropped_call_id_in_labeled"] = before - len(keep)
    keys = [(summaries[k],) for k in range(len(ids))]
    keep, counts["dropped_duplicate_same_summary"] = _deduplicate(ids, keys, keep, source, "summary")
    if not keep and not allow_none_left:
        why = f"{counts['dropped_empty_summary']} with an empty summary"
        if labeled_ids is not None:
            why += f", {counts['dropped_call_id_in_labeled']} with a call_id that is already labeled"
        raise InputError(f"{source}: no rows left of {len(ids)} ({why}); {empty_message}")
    out = pd.DataFrame({
        "call_id": pd.Series([ids[k] for k in keep], dtype="str"),
        "summary": pd.Series([summaries[k] for k in keep], dtype="str"),
    })
    counts["rows_out"] = len(out)
    return out, counts


def validate_unlabeled(frame: pd.DataFrame, source: str, labeled_ids: set[str] | None = None,
                       max_chars: int = 20000) -> tuple[pd.DataFrame, dict[str, int]]:
    """Checked copy with call_id, summary (extra columns dropped), and counts.

    Rows whose call_id is in ``labeled_ids`` are dropped (``dropped_call_id_in_labeled``): they are already labeled.
    """
    return _validate_summaries_only(frame, source, labeled_ids, max_chars,
                                    "no unlabeled summaries; add rows with call_id and summary",
                                    allow_none_left=False)


def validate_prediction_input(frame: pd.DataFrame, source: str,
                              max_chars: int = 20000) -> tuple[pd.DataFrame, dict[str, int]]:
    """For `stages.predict`: needs call_id and summary; same rules as unlabeled but no labeled-id check.

    A frame with no rows is an error ("nothing to predict"); a frame whose rows are all dropped (empty
    summaries) gives an empty result, so a caller that validates chunk by chunk decides what "nothing" means.
    """
    return _validate_summaries_only(frame, source, None, max_chars,
                                    "nothing to predict; give a parquet file with rows of call_id and summary",
                                    allow_none_left=True)
