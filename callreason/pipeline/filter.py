"""``filter``: which checked labeled rows are kept (the LLM's answers applied, the unconfident left out).

The stage script checks and reads the files and writes the outputs; this is the step between.
"""

from __future__ import annotations

import pandas as pd

from callreason.params import Settings
from callreason.relabel import apply_relabels
from callreason.validation import filter_confident


def select_confident(checked: pd.DataFrame, answers: pd.DataFrame, settings: Settings,
                     source: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """``filter``: the checked labeled rows with the checked LLM answers applied, less the rows under
    ``filter.min_confidence``. Returns (kept rows, counts: relabeled/added rows and the rows below)."""
    merged, relabel_counts = apply_relabels(checked, answers)
    kept, filter_counts = filter_confident(merged, settings.filter.min_confidence, source)
    return kept, {**relabel_counts, **filter_counts}
