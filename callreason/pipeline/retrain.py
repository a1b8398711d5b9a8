"""``retrain``: does adding pseudo-labels of the unlabeled pool help? Decided on the same gold test rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from callreason.distributed import is_main_process
from callreason.evaluation import Evaluation, evaluate_run, headline_metrics
from callreason.params import Settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import retrain_set, score_unlabeled
from callreason.run import fit_levels, promotion_decision, suspect_call_ids, training_rows
from callreason.run_folder import RunFolder
from callreason.taxonomy import Taxonomy
from callreason.timing import PhaseTimer


@dataclass
class Retrained:
    """What ``retrain`` found: the pool scored by the held-out run, the pseudo rows it added, the counts of
    its training set, the level summaries, its evaluation on the test split, the promotion decision, its headline
    scores (the shape of ``metrics/evaluate.json``: what its model card, and the final run's when it is promoted,
    quote) and the seconds of its phases (``score_pool``, ``train``, ``evaluate``)."""

    scored: pd.DataFrame
    pseudo: pd.DataFrame
    counts: dict[str, Any]
    fits: dict[str, dict]
    evaluation: Evaluation
    decision: dict[str, Any]
    scores: dict[str, Any]
    seconds: dict[str, float]


def retrain(dataset: pd.DataFrame, pool: pd.DataFrame, taxonomy: Taxonomy, settings: Settings, heldout: RunFolder,
            heldout_scores: dict[str, Any], run: RunFolder, work_root: Path, live_root: Path | None = None,
            model_version: str = "") -> Retrained | None:
    """``retrain``: the calibrated held-out run labels the usable ``pool``; the confident, class-capped paths
    join the train split at ``pseudo_label.weight``; the three levels train again into ``run`` and are scored on
    the same test rows; promoted only if better than ``heldout_scores`` (the held-out run's scores). With
    ``pseudo_label.retrain_epochs: heldout`` each level replays the held-out run's max_length and epoch count
    (the probe alone where that run kept the probe) and the validation slice picks only its blend weight and
    temperature; with ``early_stopping`` it chooses its epoch on the validation slice too. Under
    ``accelerate launch`` only the main process scores the run; the others return None after training."""
    cfg = settings.pseudo_label
    timer = PhaseTimer()
    with timer.phase("score_pool"):
        predictor = HierarchicalPredictor.load(heldout.root, batch_size=cfg.batch_size, calibrated=True)
        scored = score_unlabeled(predictor, pool, cfg.chunk_rows).assign(model_version=model_version)
    suspects = suspect_call_ids(training_rows(dataset, ("train", "val")), taxonomy, settings)
    rows, pseudo, counts = retrain_set(dataset, scored, suspects, taxonomy, settings)
    val, test = training_rows(dataset, ("val",)), training_rows(dataset, ("test",))
    replays = heldout.training_records() if cfg.retrain_epochs == "heldout" else None
    with timer.phase("train"):
        fits = fit_levels(rows, val, taxonomy, settings, run.root, work_root, live_root,
                          sample_weight=rows["sample_weight"].to_numpy(np.float32), replays=replays)
    if not is_main_process():
        return None
    with timer.phase("evaluate"):
        retrained = HierarchicalPredictor.load(run.root, batch_size=settings.evaluate.batch_size, calibrated=False,
                                               taxonomy=taxonomy)
        evaluation = evaluate_run(retrained, test, val, median_confidence=float(dataset["confidence"].median()))
    return Retrained(scored, pseudo, counts, fits, evaluation, promotion_decision(heldout_scores, evaluation.details),
                     headline_metrics(evaluation.details, len(rows), len(val)), timer.rounded())


def promotion_record(retrained: Retrained, run: RunFolder, settings: Settings) -> dict[str, Any]:
    """``models/promotion.json``: what ``refit`` replays when the retrained run was promoted, else ``{promoted: false}``."""
    if not retrained.decision["promoted"]:
        return {"promoted": False}
    return {"promoted": True, "pseudo_weight": settings.pseudo_label.weight,
            "temperature": retrained.evaluation.details["calibration"]["temperature"],
            "replay": run.training_records(), "scores": retrained.scores}
