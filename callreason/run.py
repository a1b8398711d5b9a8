"""A training run: the three level models and everything needed to use them, in one folder.

The pipeline makes three runs (folders under ``models/``):

* ``heldout/``: trained on the train split; the validation slice chose each level's epoch, TF-IDF blend
  weight and temperature; ``metrics/evaluate.json`` scores it on the test split (an honest estimate).
* ``retrained/``: the same plus pseudo-labels of the unlabeled pool (by default for the epochs the held-out run
  chose); ``metrics/retrain.json`` scores it on the same test rows and says whether it was promoted (better on
  held-out gold).
* ``final/``: refit on every usable gold row (train + val + test, plus the pseudo rows if ``retrained``
  was promoted), replaying the choices of the held-out run it follows. No choice is made on rows it
  trained on. ``predict``, ``pseudo_label`` and ``select_uncertain`` use it.

What a run folder holds, and the one place that reads and writes it: :mod:`callreason.run_folder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from callreason.modeling import base_model_identity
from callreason.params import Settings
from callreason.run_folder import RunFolder
from callreason.split import SIDES
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.training import SharedEncodings, fit_level

MODELS = Path("models")
HELDOUT, RETRAINED, FINAL = MODELS / "heldout", MODELS / "retrained", MODELS / "final"
ALL_SIDES = SIDES  # the refit trains on every usable gold row, reserved ones included


def training_rows(dataset: pd.DataFrame, sides: Iterable[str], drop_ids: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of ``dataset`` on the given split ``sides``, less the call_ids in ``drop_ids``."""
    sides, dropped = set(sides), {str(x) for x in drop_ids}
    keep = dataset["split"].isin(sides) & ~dataset["call_id"].astype(str).isin(dropped)
    return dataset[keep].reset_index(drop=True)


def suspect_call_ids(rows: pd.DataFrame, taxonomy: Taxonomy, settings: Settings) -> set[str]:
    """call_ids whose LLM label cross-validation flags as likely wrong (``label_issues``), when
    ``train.drop_suspect_labels`` is on; else none. Computed on ``rows`` only, so the held-out run never
    looks at test labels."""
    if not settings.train.drop_suspect_labels or rows["level_3"].nunique() < 2:
        return set()
    from callreason.label_issues import find_label_issues

    issues, _ = find_label_issues(rows, taxonomy, folds=settings.label_issues.folds, c=settings.label_issues.c,
                                  seed=settings.seed)
    return set(issues.loc[issues["flagged"], "call_id"].astype(str))


def fit_levels(rows: pd.DataFrame, val: pd.DataFrame, taxonomy: Taxonomy, settings: Settings, folder: Path,
               work_root: Path, live_root: Path | None = None, levels: Iterable[str] = LEVELS,
               sample_weight: np.ndarray | None = None,
               replays: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Train each of ``levels`` into ``folder/<level>`` (see :func:`callreason.training.fit_level`), encoding
    the rows once for all of them (:class:`SharedEncodings`); ``replays[level]``: the training record whose
    choices a refit replays. Returns the summaries."""
    shared = SharedEncodings()
    return {level: fit_level(level, rows, val, taxonomy.labels[level], settings, folder / level,
                             None if live_root is None else live_root / level, work_root / level,
                             sample_weight=sample_weight, replay=None if replays is None else replays[level],
                             shared=shared)
            for level in levels}


def write_run_files(folder: Path, taxonomy: Taxonomy, settings: Settings, temperature: dict[str, float],
                    **facts: Any) -> None:
    """The files that complete a run folder beside its level models (:class:`RunFolder`): ``label_encoders/``,
    ``calibration.json`` and ``metadata.json`` (base model and revision, classes, what ``predict`` needs
    besides the models: its batch size and summary length limit, and ``facts``)."""
    run = RunFolder(folder)
    run.write_label_encoders(taxonomy)
    run.write_calibration(temperature)
    run.write_metadata({**base_model_identity(settings.model.base, settings.model.revision),
                        "classes": {level: len(taxonomy.labels[level]) for level in LEVELS},
                        "inference": {"batch_size": settings.evaluate.batch_size,
                                      "max_summary_chars": settings.data.max_summary_chars},
                        **facts})


PROMOTION = MODELS / "promotion.json"
"""Written by ``retrain``, read by ``refit``: ``{"promoted": false}`` or the retrained run's choices."""
PROMOTED_PSEUDO = Path("data/promoted_pseudo_labels.parquet")
"""The pseudo rows ``refit`` adds to the gold rows: the retrained run's when it was promoted, else none."""


def promotion_decision(heldout: dict[str, Any], retrained: dict[str, Any]) -> dict[str, Any]:
    """Whether the retrained run replaces the held-out one, from their scores on the same test rows
    (``metrics/evaluate.json`` and ``metrics/retrain.json``): only if its level_3 macro-F1 is higher and
    its path accuracy is not lower. Ties keep the held-out run."""
    gain = retrained["level_3"]["macro_f1"] - heldout["level_3"]["macro_f1"]
    path_gain = retrained["path"]["accuracy"] - heldout["path"]["accuracy"]
    promoted = gain > 0 and path_gain >= 0
    return {"promoted": bool(promoted), "level_3_macro_f1_gain": round(gain, 4),
            "path_accuracy_gain": round(path_gain, 4)}
