"""``evaluate``: the held-out run calibrated on the validation slice and scored on the test split."""

from __future__ import annotations

import pandas as pd

from callreason.evaluation import Evaluation, evaluate_run
from callreason.params import Settings
from callreason.predict import HierarchicalPredictor
from callreason.run import training_rows
from callreason.run_folder import RunFolder
from callreason.taxonomy import Taxonomy


def evaluate_heldout(dataset: pd.DataFrame, taxonomy: Taxonomy, settings: Settings,
                     run: RunFolder) -> tuple[Evaluation, HierarchicalPredictor]:
    """``evaluate``: the held-out run calibrated on the validation slice and scored on the test split.
    Returns what it measured and the calibrated predictor (its temperatures unrounded, as it scored)."""
    predictor = HierarchicalPredictor.load(run.root, batch_size=settings.evaluate.batch_size, calibrated=False,
                                           taxonomy=taxonomy)
    evaluation = evaluate_run(predictor, training_rows(dataset, ("test",)), training_rows(dataset, ("val",)),
                              median_confidence=float(dataset["confidence"].median()))
    return evaluation, predictor
