"""The Phase 3 loop: rows exported for the LLM labeler, and its answers brought back in.

Export: the relabel queue (uncertain unlabeled rows) and the suspected wrong labels are written as JSONL and
CSV with ``call_id, summary`` and the models' top paths with their probabilities, beside a copy of the
taxonomy, so a labeling prompt can be built from them.

Import: answers (parquet, CSV or JSONL with ``call_id, summary, level_1, level_2, level_3, confidence`` and
optionally ``source``) are checked like the labeled file and merged into ``data/relabeled.parquet``: one row
per call_id, the latest answer winning, with provenance (``source``, ``round``, the label it replaced,
``imported_at``). ``filter`` reads that file beside the user's labeled file, which is never modified: an
answer for a call_id of the labeled file replaces its label (its summary stays), any other answer is a new
labeled row. The split hashes call_ids, so a relabeled row keeps its side.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from callreason.errors import InputError, Problems, cause
from callreason.io import atomic_path, check_input_file, read_parquet, read_text
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import LABELED_COLUMNS, clean_summary, normalize_call_id, validate_labeled

RELABELED_COLUMNS = (*LABELED_COLUMNS, "source", "round", *(f"replaced_{lv}" for lv in LEVELS), "imported_at")
"""Columns of ``data/relabeled.parquet``: an answer per call_id (the latest) and where it came from.
``replaced_level_N`` is the label it replaced (empty for a call that had none)."""
TOP_PATHS = 3


# --------------------------------------------------------------------------- files

def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A parquet, CSV (comma-separated, UTF-8) or JSONL (one JSON object per line) file as a frame, by its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path, what)
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        check_input_file(path, what)
        raise InputError(f"{path}: unknown file type {suffix!r}; give a .parquet, .csv or .jsonl file")
    text = read_text(path, what)
    try:
        if suffix == ".csv":
            frame = pd.read_csv(io.StringIO(text), dtype={"call_id": str}, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_json(io.StringIO(text), lines=True, dtype={"call_id": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a readable {suffix[1:]} file ({cause(exc, 80)}); "
                         "write one answer per row/line") from None
    if suffix == ".csv" and len(frame.columns) == 1:
        header = str(frame.columns[0])
        separator = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")) if sep in header), None)
        if separator:
            raise InputError(f"{path}: one column named {header[:60]!r}: the file is separated by {separator}, not "
                             "commas; save it as comma-separated CSV (or as .parquet / .jsonl)")
    return frame


def empty_relabeled() -> pd.DataFrame:
    """``RELABELED_COLUMNS`` with no rows (what the repository ships before the first import)."""
    types = {"confidence": "float64", "round": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "str")) for c in RELABELED_COLUMNS})


def read_relabeled(path: str | Path) -> pd.DataFrame:
    """``data/relabeled.parquet``, or no rows when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return empty_relabeled()
    frame = read_parquet(path, "relabeled answers")
    missing = [c for c in RELABELED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; it is written by `python -m stages.import_labels`, "
                         "do not edit it by hand (delete it to start over)")
    return frame.loc[:, list(RELABELED_COLUMNS)]


# --------------------------------------------------------------------------- import

def merge_answers(relabeled: pd.DataFrame, answers: pd.DataFrame, labeled: pd.DataFrame, source: str,
                  now: datetime | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """``relabeled`` plus the checked ``answers`` (``LABELED_COLUMNS`` + optional ``source``) as a new round.

    A later answer for a call_id replaces an earlier one; ``replaced_level_N`` records the label it
    replaced (the previous answer's, else the labeled file's, else empty). An answer for a call_id of
    ``labeled`` (the checked labeled file) keeps that row's summary. Returns (merged rows, counts).
    """
    now = now or datetime.now(timezone.utc)
    round_ = int(relabeled["round"].max()) + 1 if len(relabeled) else 1
    current = pd.concat([labeled.assign(source="labeled file"), relabeled], ignore_index=True)
    current = current.drop_duplicates("call_id", keep="last").set_index("call_id")
    new = answers.copy()
    new["source"] = answers["source"].astype(str) if "source" in answers else source
    known = new["call_id"].isin(current.index)
    for level in LEVELS:
        new[f"replaced_{level}"] = new["call_id"].map(current[level]).where(known, None)
    in_labeled = new["call_id"].isin(labeled["call_id"])
    original_summary = new["call_id"].map(labeled.set_index("call_id")["summary"])
    new["summary"] = original_summary.where(in_labeled, new["summary"])
    new["round"] = round_
    new["imported_at"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = sum((new[lv] != new[f"replaced_{lv}"]) & known for lv in LEVELS).astype(bool)
    merged = pd.concat([relabeled[~relabeled["call_id"].isin(new["call_id"])], new.loc[:, list(RELABELED_COLUMNS)]],
                       ignore_index=True)
    counts = {"answers": int(len(new)), "round": round_, "relabels_of_labeled_rows": int(in_labeled.sum()),
              "new_labeled_rows": int((~known).sum()), "labels_changed": int(changed.sum()),
              "replaced_earlier_answers": int(new["call_id"].isin(relabeled["call_id"]).sum()),
              "rows_in_relabeled_file": int(len(merged))}
    return merged.loc[:, list(RELABELED_COLUMNS)].reset_index(drop=True), counts


def check_answers(frame: pd.DataFrame, taxonomy: Taxonomy, source: str, max_chars: int,
                  labeled: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The answers checked like the labeled file (every problem in one error), with an optional ``source``,
    and the counts. An answer for a call_id of ``labeled`` (the checked labeled file) may leave its summary
    empty (the labeled row's is used); any other answer with an empty summary is an error, never dropped."""
    frame = frame.copy()
    if labeled is not None and {"call_id", "summary"} <= set(map(str, frame.columns)):
        summaries = labeled.set_index("call_id")["summary"]
        ids = pd.Series([normalize_call_id(c) for c in frame["call_id"]], index=frame.index)
        blank = frame["summary"].map(lambda v: not clean_summary(v, max_chars) if isinstance(v, str)
                                     else v is None or (isinstance(v, float) and np.isnan(v)))
        known = blank & ids.isin(summaries.index)
        frame.loc[known, "summary"] = ids[known].map(summaries)
        unknown = blank & ~ids.isin(summaries.index) & ids.notna()
        if unknown.any():
            problems = Problems(source)
            shown = ", ".join(repr(i) for i in ids[unknown].head(5)) + (
                f" and {int(unknown.sum()) - 5} more" if unknown.sum() > 5 else "")
            problems.add(f"column 'summary' is empty in {int(unknown.sum())} answer(s) for call_ids not in the labeled "
                         f"file: {shown}; a new labeled row needs its summary: fill it in or remove the answer")
            try:
                validate_labeled(frame[~unknown], taxonomy, source, max_chars)
            except InputError as exc:
                problems.lines += exc.lines
            problems.raise_if_any()
    checked, counts = validate_labeled(frame, taxonomy, source, max_chars)
    if "source" in frame.columns:
        sources = dict(zip((normalize_call_id(c) for c in frame["call_id"]), frame["source"].astype(str)))
        checked["source"] = checked["call_id"].map(sources)
    return checked, counts


def apply_relabels(labeled: pd.DataFrame, relabeled: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The checked labeled rows with the relabeled answers applied: an answer replaces the labels and
    confidence of its call_id, or adds a row. Both frames have ``LABELED_COLUMNS`` (checked)."""
    answers = relabeled.loc[:, list(LABELED_COLUMNS)]
    replaced = labeled["call_id"].isin(answers["call_id"])
    merged = pd.concat([labeled[~replaced], answers], ignore_index=True)
    order = {c: i for i, c in enumerate(labeled["call_id"])}
    merged = merged.assign(_order=merged["call_id"].map(order).fillna(len(order))).sort_values(
        ["_order", "call_id"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return merged, {"relabeled_rows": int(replaced.sum()), "added_rows": int((~answers["call_id"].isin(
        labeled["call_id"])).sum())}


# --------------------------------------------------------------------------- export

def queue_export(queue: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The relabel queue for the labeler: ``rank, call_id, summary, hesitation_level`` and ``top_paths``
    (the models' three most probable paths, from ``data/unlabeled_scored.parquet``)."""
    scored = scored.set_index("call_id").loc[queue["call_id"]]
    paths = []
    for _, row in scored.iterrows():
        ranked = [({lv: row[lv] for lv in LEVELS}, row["path_prob"])]
        ranked += [({lv: row[f"{p}_{lv}"] for lv in LEVELS}, row[f"{p}_path_prob"]) for p in ("second", "third")
                   if row[f"{p}_level_3"] is not None and not pd.isna(row[f"{p}_level_3"])]
        paths.append([{**path, "probability": round(float(prob), 4)} for path, prob in ranked])
    return queue.loc[:, ["rank", "call_id", "summary", "hesitation_level"]].assign(top_paths=paths)


def export_for_labeler(frame: pd.DataFrame, folder: Path, name: str, taxonomy_path: str | Path,
                       columns: list[str]) -> None:
    """``folder/{name}.jsonl`` and ``.csv`` (``columns`` plus ``top_paths``: a list of
    ``{level_1, level_2, level_3, probability}``; in the CSV, ``path_N``/``probability_N`` columns) and
    ``folder/taxonomy.json``, the taxonomy the answers must use."""
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        with (tmp / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for row in frame.to_dict("records"):
                handle.write(json.dumps({c: _plain(row[c]) for c in [*columns, "top_paths"]}, ensure_ascii=False) + "\n")
        flat = frame.loc[:, columns].copy()
        for n in range(TOP_PATHS):
            flat[f"path_{n + 1}"] = [" > ".join(p[n][lv] for lv in LEVELS) if len(p) > n else "" for p in frame["top_paths"]]
            flat[f"probability_{n + 1}"] = [p[n]["probability"] if len(p) > n else None for p in frame["top_paths"]]
        flat.to_csv(tmp / f"{name}.csv", index=False)
        (tmp / "taxonomy.json").write_text(Path(taxonomy_path).read_text(encoding="utf-8"), encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
