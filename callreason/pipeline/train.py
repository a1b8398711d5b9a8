"""``train_l1/2/3``: one level's held-out model on the train split."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from callreason.params import Settings
from callreason.run import fit_levels, suspect_call_ids, training_rows
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy


def train_heldout(dataset: pd.DataFrame, taxonomy: Taxonomy, settings: Settings, run: RunFolder, work_root: Path,
                  live_root: Path | None = None, levels: Iterable[str] = LEVELS) -> tuple[dict[str, dict], set[str]]:
    """``train_l1/2/3``: each of ``levels`` on the train split (less the suspected wrong labels of train + val
    when ``train.drop_suspect_labels`` is on), its epoch and blend weight chosen on the validation slice, into
    ``run.level(level)``. Returns (the training summaries, the suspects left out)."""
    suspects = suspect_call_ids(training_rows(dataset, ("train", "val")), taxonomy, settings)
    fits = fit_levels(training_rows(dataset, ("train",), suspects), training_rows(dataset, ("val",)), taxonomy,
                      settings, run.root, work_root, live_root, levels=levels)
    return fits, suspects
