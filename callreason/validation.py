"""Checks for the user's input frames: every problem of a file in one run, one line each; warnings as counts.

Values are normalised before they are compared: call_ids are text with surrounding whitespace removed
(numbers become their text); labels are Unicode NFC and stripped (:func:`callreason.taxonomy.normalize_label`,
as the taxonomy's are); summaries are NFC with invisible characters removed (control, zero-width, bidi
and other format characters), whitespace collapsed, and truncated. Rows whose summary is empty after that
are dropped and counted. Conflicts that appear after normalisation (``"CALL-1"`` and ``"CALL-1 "`` with
different labels) are errors that name both spellings.

Every function returns a new frame (the input is never modified) plus ``counts``: rows dropped or changed
per reason, always with ``rows_read`` and ``rows_out``. Each problem line starts with the source file,
names the column and the first few offending call_ids or rows, and says what to do.
"""

from __future__ import annotations

import decimal
import difflib
import math
import numbers
import re
import unicodedata
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from callreason.errors import InputError, Problems
from callreason.taxonomy import LEVELS, Taxonomy, normalize_label

LABELED_COLUMNS = ("call_id", "summary", "level_1", "level_2", "level_3", "confidence")
UNLABELED_COLUMNS = ("call_id", "summary")

MAX_SHOWN = 5  # offending ids/values shown in a message before "and N more"
TAXONOMY_HINT = "add it to taxonomy/taxonomy.json or fix the label"

INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
"""Characters that carry no visible text: control (Unicode Cc, except whitespace) and format (Cf) characters,
among them zero-width spaces and joiners, bidi embeddings/overrides/isolates, the BOM and soft hyphens."""
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


DROP_REASONS = {
    "below_min_confidence": "confidence below filter.min_confidence",
    "dropped_empty_summary": "empty summary",
    "dropped_duplicate_same_labels": "repeated call_id with the same labels and summary",
    "dropped_duplicate_same_summary": "repeated call_id with the same summary",
    "dropped_duplicate_call_id": "call_id already predicted in an earlier chunk",
    "dropped_call_id_in_labeled": "call_id already labeled",
}
"""The reasons a row read can be left out, by the ``counts`` key that counts them."""


def dropped_line(counts: dict[str, int]) -> str:
    """``dropped 3 (2 empty summary, 1 repeated call_id with the same summary)`` from ``counts``, or
    ``dropped none``: the part of each command's closing line that accounts for every row read."""
    parts = [(int(counts[key]), text) for key, text in DROP_REASONS.items() if counts.get(key)]
    if not parts:
        return "dropped none"
    return f"dropped {sum(n for n, _ in parts)} ({', '.join(f'{n} {text}' for n, text in parts)})"


# --------------------------------------------------------------------------- cleaning

def _clean(text: str, max_chars: int) -> tuple[str, bool, bool]:
    """Cleaned text, whether invisible characters were removed, whether it was truncated."""
    text = unicodedata.normalize("NFC", text)
    removed = INVISIBLE.search(text) is not None
    if removed:
        text = INVISIBLE.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars].rstrip()
    return text, removed, truncated


def clean_summary(text: str, max_chars: int) -> str:
    """NFC, invisible characters removed (tabs/newlines become spaces), whitespace collapsed, stripped,
    truncated to ``max_chars``. Markup (HTML, markdown) is left as text."""
    return _clean(text, max_chars)[0]


def normalize_call_id(value: Any) -> str | None:
    """A call_id as compared everywhere: text (``12.0`` -> ``"12"``), NFC, stripped; None if null or blank."""
    if _is_null(value):
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = str(int(value))
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
        value = str(int(value))
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


# --------------------------------------------------------------------------- column checks

def _check_columns(frame: pd.DataFrame, required: Sequence[str], problems: Problems) -> set[str]:
    """Record missing required columns (with rename hints) or doubled ones; returns the usable required columns."""
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
        problems.add(f"missing required column(s) {', '.join(repr(c) for c in missing)}; {hint}; "
                     f"expected columns {', '.join(required)}")
    doubled = [c for c in required if present.count(c) > 1]
    for name in doubled:
        problems.add(f"column {name!r} appears more than once; keep one")
    return {c for c in required if c in present and c not in doubled}


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """Values of a column as Python objects, whatever the column's label type."""
    position = [str(c) for c in frame.columns].index(name)
    return frame.iloc[:, position].tolist()


def _call_ids(frame: pd.DataFrame, problems: Problems) -> tuple[list[str | None], list[Any]]:
    """(normalised call_ids, raw values); null or blank ones are a problem (named by row number)."""
    raw = _column(frame, "call_id")
    ids = [normalize_call_id(value) for value in raw]
    blank_rows = [str(row) for row, value in enumerate(ids) if value is None]
    if blank_rows:
        problems.add(f"column 'call_id' is empty in {len(blank_rows)} row(s) (row {_listing(blank_rows)}, counting "
                     "from 0); give every row a unique call_id")
    return ids, raw


def normalized_call_ids(frame: pd.DataFrame, source: str) -> list[str]:
    """call_id as compared everywhere (see :func:`normalize_call_id`); a null or blank one is an error."""
    problems = Problems(source)
    ids, _ = _call_ids(frame, problems)
    problems.raise_if_any()
    return ids


def _where(ids: list[str | None], rows: Iterable[int]) -> list[str]:
    """call_ids of ``rows`` (``row N`` where the call_id itself is missing)."""
    return [ids[k] if ids[k] is not None else f"row {k}" for k in rows]


def _summaries(frame: pd.DataFrame, ids: list[str | None], problems: Problems, max_chars: int,
               counts: dict[str, int]) -> list[str | None]:
    """Cleaned summaries; ``None`` for null/blank/invisible-only ones (to drop). Non-text values are a problem."""
    values = _column(frame, "summary")
    bad = [k for k, v in enumerate(values) if not _is_null(v) and not isinstance(v, str)]
    if bad:
        problems.add(f"column 'summary' must hold text, found {len(bad)} non-text value(s) in call_ids "
                     f"{_ids_with_values(_where(ids, bad), [values[k] for k in bad])}; write the summaries as strings")
    out: list[str | None] = []
    for value in values:
        if _is_null(value) or not isinstance(value, str):
            out.append(None)
            continue
        text, removed, truncated = _clean(value, max_chars)
        counts["control_characters_removed"] += removed
        counts["summaries_truncated"] += truncated
        out.append(text or None)
    return out


def _labels(frame: pd.DataFrame, ids: list[str | None], problems: Problems) -> dict[str, list[str | None]]:
    """level_1..level_3 normalised (NFC, stripped); null/blank or non-text labels are problems (value None)."""
    labels: dict[str, list[str | None]] = {}
    for level in LEVELS:
        values = _column(frame, level)
        empty = [k for k, v in enumerate(values) if _is_null(v) or (isinstance(v, str) and not normalize_label(v))]
        if empty:
            problems.add(f"column {level!r} is empty for {len(empty)} row(s), call_ids {_ids(_where(ids, empty))}; "
                         "label it or remove the row")
        bad = [k for k, v in enumerate(values) if not _is_null(v) and not isinstance(v, str)]
        if bad:
            problems.add(f"column {level!r} must hold label names (text), found {len(bad)} non-text value(s) in "
                         f"call_ids {_ids_with_values(_where(ids, bad), [values[k] for k in bad])}; write the label "
                         "names as strings")
        labels[level] = [normalize_label(v) if isinstance(v, str) and normalize_label(v) else None for v in values]
    return labels


def _confidence(frame: pd.DataFrame, ids: list[str | None], problems: Problems) -> np.ndarray:
    """confidence as float64 in [0, 1]; text, NaN or out-of-range values are problems (NaN in the result)."""
    position = [str(c) for c in frame.columns].index("confidence")
    column = frame.iloc[:, position]
    if pd.api.types.is_bool_dtype(column.dtype):
        problems.add("column 'confidence' holds true/false values; write numbers in [0, 1]")
        return np.full(len(column), np.nan)
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        raw = [float(v) if isinstance(v, decimal.Decimal) else v for v in column.tolist()]  # parquet decimal128
        bad = [k for k, v in enumerate(raw)
               if not _is_null(v) and (not isinstance(v, numbers.Real) or isinstance(v, bool))]
        if bad:
            problems.add(f"column 'confidence' must hold numbers, found {len(bad)} non-numeric value(s) in call_ids "
                         f"{_ids_with_values(_where(ids, bad), [raw[k] for k in bad])}; write numbers (e.g. 0.9, "
                         "not '0.9')")
        unusable = set(bad)
        values = np.array([float(v) if k not in unusable and not _is_null(v) else np.nan for k, v in enumerate(raw)],
                          dtype="float64")
        values[bad] = 0.5  # reported above; not reported again as missing
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        problems.add(f"column 'confidence' is missing (NaN) for {missing.size} row(s), call_ids "
                     f"{_ids(_where(ids, missing))}; give every row a confidence in [0, 1] or remove it")
    outside = np.flatnonzero((values < 0) | (values > 1))
    if outside.size:
        finite = values[~np.isnan(values)]
        hint = "; if they are percentages divide by 100" if finite.max() <= 100 and finite.min() >= 0 else ""
        problems.add(f"column 'confidence' must be in [0, 1], found {outside.size} value(s) outside in call_ids "
                     f"{_ids_with_values(_where(ids, outside), [float(values[k]) for k in outside])}{hint}")
    return values


def _label_hint(label: str, known: list[str]) -> str:
    """Why ``label`` may not match: the same name in another case/spacing, else the closest name."""
    def loose(text: str) -> str:
        return "".join(text.split()).casefold()

    same = [k for k in known if loose(k) == loose(label)]
    if same:
        return f" (differs from the taxonomy's {same[0]!r} only in letter case or spacing: write it as {same[0]!r})"
    close = difflib.get_close_matches(label, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_taxonomy(labels: dict[str, list[str | None]], ids: list[str | None], taxonomy: Taxonomy,
                    problems: Problems) -> None:
    """Every label known to the taxonomy, every row a valid path (rows with a missing label are skipped)."""
    unknown_rows: set[int] = set()
    for level in LEVELS:
        known = set(taxonomy.labels[level])
        rows: dict[str, list[int]] = {}
        for k, label in enumerate(labels[level]):
            if label is not None and label not in known:
                rows.setdefault(label, []).append(k)
                unknown_rows.add(k)
        if rows:
            parts = [f"{_short(label)}{_label_hint(label, taxonomy.labels[level])} in call_ids "
                     f"{_ids(_where(ids, where))}" for label, where in list(rows.items())[:MAX_SHOWN]]
            more = f" and {len(rows) - MAX_SHOWN} more label(s)" if len(rows) > MAX_SHOWN else ""
            problems.add(f"column {level!r} has {len(rows)} label(s) not in the taxonomy: {'; '.join(parts)}{more}; "
                         f"{TAXONOMY_HINT}")
    for child, parent in (("level_2", "level_1"), ("level_3", "level_2")):
        expected = taxonomy.parent[child]
        bad = [(k, c, p) for k, (c, p) in enumerate(zip(labels[child], labels[parent]))
               if k not in unknown_rows and c is not None and p is not None and expected[c] != p]
        if bad:
            shown = [f"{_short(_where(ids, [k])[0])} ({child} {c!r} belongs under {parent} {expected[c]!r}, not {p!r})"
                     for k, c, p in bad]
            problems.add(f"{len(bad)} row(s) have a {child} that is not a child of their {parent}: call_ids "
                         f"{_listing(shown)}; fix the labels so each row is a path of taxonomy/taxonomy.json")


def _deduplicate(ids: list[str | None], raw_ids: list[Any], keys: list[tuple], keep: list[int],
                 problems: Problems, what: str) -> tuple[list[int], int]:
    """Drop repeated call_ids (compared normalised) whose ``keys`` are identical (keep the first); a problem
    when they differ. ``keys[k]`` is ``(labels..., summary)``; ``what`` names the labels in messages."""
    first: dict[str, int] = {}
    spellings: dict[str, set[str]] = {}
    conflicting: list[str] = []
    ambiguous: list[str] = []
    out: list[int] = []
    dropped = 0
    for k in keep:
        i = ids[k]
        spellings.setdefault(i, set()).add(str(raw_ids[k]))
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

    def named(found: list[str]) -> str:
        items = [_short(i) + (f" (spelled {', '.join(repr(s) for s in sorted(spellings[i]))})"
                              if len(spellings[i]) > 1 else "") for i in found]
        return _listing(items)

    if conflicting:
        problems.add(f"{len(conflicting)} call_id(s) appear more than once with different {what} (call_ids are "
                     f"compared with surrounding spaces removed): {named(conflicting)}; keep one row per call_id "
                     f"with the right {what}")
    if ambiguous:
        lead = f"the same {what} but " if what != "summary" else ""
        problems.add(f"{len(ambiguous)} call_id(s) appear more than once with {lead}different summaries (ambiguous): "
                     f"{named(ambiguous)}; give each call a unique call_id or remove the extra rows")
    return out, dropped


def _start(frame: pd.DataFrame, required: Sequence[str], source: str,
           empty_message: str) -> tuple[Problems, set[str], dict[str, int]]:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{source}: expected a table (pandas DataFrame), got {type(frame).__name__}")
    problems = Problems(source)
    usable = _check_columns(frame, required, problems)
    if len(frame) == 0:
        problems.add(empty_message)
        problems.raise_if_any()
    counts = {"rows_read": len(frame), "dropped_empty_summary": 0, "summaries_truncated": 0,
              "control_characters_removed": 0}
    return problems, usable, counts


# --------------------------------------------------------------------------- public API

def validate_labeled(frame: pd.DataFrame, taxonomy: Taxonomy, source: str,
                     max_chars: int = 20000) -> tuple[pd.DataFrame, dict[str, int]]:
    """Checked copy with exactly LABELED_COLUMNS (call_id str, summary cleaned str, labels str, confidence float64),
    plus counts of rows dropped or changed per reason (warnings). Every problem is reported in one InputError."""
    problems, usable, counts = _start(frame, LABELED_COLUMNS, source,
                                      "no rows; the labeled file must have at least one labeled row")
    counts["dropped_duplicate_same_labels"] = 0
    if "call_id" not in usable:
        problems.raise_if_any()
    ids, raw_ids = _call_ids(frame, problems)
    confidence = _confidence(frame, ids, problems) if "confidence" in usable else None
    labels = _labels(frame, ids, problems) if set(LEVELS) <= usable else None
    if labels is not None:
        _check_taxonomy(labels, ids, taxonomy, problems)
    summaries = _summaries(frame, ids, problems, max_chars, counts) if "summary" in usable else None
    if problems or labels is None or summaries is None or confidence is None:
        problems.raise_if_any()
    keep = [k for k, s in enumerate(summaries) if s is not None]
    counts["dropped_empty_summary"] = len(summaries) - len(keep)
    keys = [(labels["level_1"][k], labels["level_2"][k], labels["level_3"][k], summaries[k]) for k in range(len(ids))]
    keep, counts["dropped_duplicate_same_labels"] = _deduplicate(ids, raw_ids, keys, keep, problems, "labels")
    if not keep:
        problems.add(f"no rows left: all {len(ids)} summaries are empty (or only invisible characters); "
                     "fill in column 'summary'")
    problems.raise_if_any()
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
    problems, usable, counts = _start(frame, UNLABELED_COLUMNS, source, empty_message)
    counts["dropped_duplicate_same_summary"] = 0
    if "call_id" not in usable:
        problems.raise_if_any()
    ids, raw_ids = _call_ids(frame, problems)
    summaries = _summaries(frame, ids, problems, max_chars, counts) if "summary" in usable else None
    if problems or summaries is None:
        problems.raise_if_any()
    keep = [k for k, s in enumerate(summaries) if s is not None]
    counts["dropped_empty_summary"] = len(summaries) - len(keep)
    if labeled_ids is not None:
        labeled = {normalize_call_id(x) for x in labeled_ids}
        before = len(keep)
        keep = [k for k in keep if ids[k] not in labeled]
        counts["dropped_call_id_in_labeled"] = before - len(keep)
    keys = [(summaries[k],) for k in range(len(ids))]
    keep, counts["dropped_duplicate_same_summary"] = _deduplicate(ids, raw_ids, keys, keep, problems, "summary")
    if not keep and not allow_none_left and not problems:
        why = f"{counts['dropped_empty_summary']} with an empty summary"
        if labeled_ids is not None:
            why += f", {counts['dropped_call_id_in_labeled']} with a call_id that is already labeled"
        problems.add(f"no rows left of {len(ids)} ({why}); {empty_message}")
    problems.raise_if_any()
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
