"""``encode``: label ids per level from the taxonomy and the deterministic call_id split."""

from __future__ import annotations

from typing import Any

import pandas as pd

from callreason.dataset import encode_dataset
from callreason.params import Settings
from callreason.taxonomy import Taxonomy


def encode(kept: pd.DataFrame, taxonomy: Taxonomy, settings: Settings,
           source: str = "data/filtered.parquet") -> tuple[pd.DataFrame, dict[str, Any]]:
    """``encode``: label ids from the taxonomy and the call_id split (:func:`callreason.dataset.encode_dataset`)."""
    split = settings.split
    return encode_dataset(kept, taxonomy, split.test_fraction, split.val_fraction, settings.seed,
                          split.min_rows_per_class, source)
