"""``refit``: the shipped models, trained on every usable gold row, replaying the choices of the run they follow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from callreason.params import Settings
from callreason.pseudo_labels import retrain_rows
from callreason.run import ALL_SIDES, fit_levels, suspect_call_ids
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy


@dataclass
class Refit:
    """What ``refit`` trained: the rows' counts, the level summaries, and the choices it replayed."""

    counts: dict[str, Any]
    fits: dict[str, dict]
    temperature: dict[str, float]
    follows: str
    suspects: set[str]


def refit(dataset: pd.DataFrame, taxonomy: Taxonomy, settings: Settings, promotion: dict[str, Any],
          promoted_pseudo: pd.DataFrame, heldout: RunFolder, run: RunFolder, work_root: Path,
          levels: Iterable[str] = LEVELS) -> Refit:
    """``refit``: every usable gold row (less the suspects of all of them, when dropped) and, when ``promotion``
    says so, the promoted pseudo rows, train ``levels`` again into ``run``, replaying the choices of the run it
    follows (its records and rounded temperatures: the held-out run, or the promoted retrained one)."""
    levels = tuple(levels)
    suspects = suspect_call_ids(dataset, taxonomy, settings)
    gold = dataset[~dataset["call_id"].isin(suspects)]
    if promotion["promoted"]:
        pseudo, weight = promoted_pseudo, promotion["pseudo_weight"]
        replays, temperature, follows = promotion["replay"], promotion["temperature"], "models/retrained"
    else:
        pseudo, weight = promoted_pseudo.iloc[:0], 1.0
        replays, temperature, follows = heldout.training_records(levels), heldout.read_temperatures(), str(heldout.root)
    rows, counts = retrain_rows(gold, pseudo, taxonomy, weight, settings.train.confidence_weighting,
                                gold_sides=ALL_SIDES)
    fits = fit_levels(rows, rows.iloc[:0], taxonomy, settings, run.root, work_root, levels=levels,
                      sample_weight=rows["sample_weight"].to_numpy(np.float32), replays=replays)
    return Refit(counts, fits, temperature, follows, suspects)
