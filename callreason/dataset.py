"""The encode step: label ids from the taxonomy, the split, and the label encoders for inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from callreason.errors import InputError
from callreason.io import read_parquet
from callreason.split import SIDES, assign_split
from callreason.taxonomy import LEVELS, Taxonomy

DATASET_COLUMNS = ("call_id", "summary", *LEVELS, *(f"{lv}_id" for lv in LEVELS), "confidence", "split")
"""Columns of ``data/prepared/dataset.parquet``: the filtered rows, their label ids and split side."""


def encode_dataset(
    frame: pd.DataFrame, taxonomy: Taxonomy, test_fraction: float, val_fraction: float, seed: int,
    min_rows_per_class: int, source: str = "data/filtered.parquet",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``level_N_id`` and ``split`` to validated, filtered rows; returns (dataset, report). Too few rows
    for a held-out run (no train or test row, or no validation row while ``val_fraction`` > 0) is an
    ``InputError`` naming the counts."""
    data = frame.loc[:, ["call_id", "summary", *LEVELS, "confidence"]].copy()
    for level in LEVELS:
        data[f"{level}_id"] = taxonomy.ids(level, data[level])
    data["split"] = assign_split(data["call_id"], data["level_3"], test_fraction, val_fraction, seed,
                                 min_rows_per_class)
    data = data.loc[:, list(DATASET_COLUMNS)].sort_values("call_id", kind="stable").reset_index(drop=True)
    counts = data["level_3"].value_counts()
    report: dict[str, Any] = {
        "rows": {side: int((data["split"] == side).sum()) for side in SIDES},
        "classes": {level: len(taxonomy.labels[level]) for level in LEVELS},
        "classes_with_rows": {level: int(data[level].nunique()) for level in LEVELS},
        "level_3_without_rows": sorted(set(taxonomy.labels["level_3"]) - set(counts.index)),
        "level_3_too_small_to_test": sorted(counts[counts < min_rows_per_class].index),
        "level_3_without_test_rows": sorted(set(counts.index) - set(data.loc[data["split"] == "test", "level_3"])),
    }
    rows = report["rows"]
    if not rows["train"] or not rows["test"] or (val_fraction > 0 and not rows["val"]):
        raise InputError(f"{source}: {len(data)} row(s) split into train {rows['train']}, validation {rows['val']}, "
                         f"test {rows['test']} (reserved {rows['reserved']}): the held-out run needs rows on each "
                         "side; add labeled rows (several per level_3 class), lower filter.min_confidence or "
                         "split.min_rows_per_class in params.yaml")
    return data, report


def load_dataset(path: str | Path) -> pd.DataFrame:
    """The prepared dataset (rows of one split side: :func:`callreason.run.training_rows`)."""
    return read_parquet(path, "prepared dataset", "run `dvc repro encode` first")
