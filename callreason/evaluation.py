"""Evaluate one training run's three models on the gold test rows: metrics, calibration, plots, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from callreason.hierarchy import expected_calibration_error, fit_temperature, softmax
from callreason.io import atomic_path, write_json
from callreason.metrics import (
    classification_report_dict, confusion_rows, error_analysis_markdown, evaluation_metrics, plot_confusion_png,
)
from callreason.predict import HierarchicalPredictor, paths_frame
from callreason.taxonomy import LEVELS


def calibrate(predictor: HierarchicalPredictor, val_rows: pd.DataFrame) -> dict[str, Any]:
    """Fit one softmax temperature per level on the validation rows; set them on ``predictor``.

    Returns ``{"temperature": {level: T}, "val_ece_before": {...}, "val_ece_after": {...}}``.
    """
    report: dict[str, Any] = {"temperature": {}, "val_ece_before": {}, "val_ece_after": {}}
    if len(val_rows) < 2:
        report["temperature"] = {level: 1.0 for level in LEVELS}
        return report
    logits = predictor.level_logits(val_rows["summary"].tolist())
    for depth, (level, z) in enumerate(zip(LEVELS, logits)):
        y = val_rows[f"{level}_id"].to_numpy()
        t = fit_temperature(z, y)
        predictor.temperatures[depth] = t
        report["temperature"][level] = round(float(t), 4)
        report["val_ece_before"][level] = round(expected_calibration_error(softmax(z), y), 4)
        report["val_ece_after"][level] = round(expected_calibration_error(softmax(z, t), y), 4)
    return report


def evaluate_run(
    predictor: HierarchicalPredictor, test_rows: pd.DataFrame, val_rows: pd.DataFrame, name: str,
    predictions_path: Path,
) -> dict[str, Any]:
    """Calibrate on ``val_rows`` (the temperatures are set on ``predictor`` and returned in
    ``metrics["calibration"]["temperature"]``), score ``test_rows``, and write every output of stage ``name``:

    ``metrics/{name}.json``, ``plots/{name}/confusion_level_N.json|.png``,
    ``reports/{name}_errors.md``, ``reports/{name}_classification_report.json`` and ``predictions_path``
    (test predictions).
    """
    taxonomy = predictor.taxonomy
    calibration = calibrate(predictor, val_rows)
    texts = test_rows["summary"].tolist()
    logits = predictor.level_logits(texts)
    probs = predictor.level_probs(texts, logits)
    true_ids = test_rows[[f"{level}_id" for level in LEVELS]].to_numpy()
    metrics = evaluation_metrics(true_ids, probs, taxonomy)
    metrics["calibration"] = {
        "test_ece_before": {lv: round(expected_calibration_error(softmax(z), y), 4)
                            for lv, z, y in zip(LEVELS, logits, true_ids.T)},
        "test_ece_after": {lv: round(expected_calibration_error(p, y), 4) for lv, p, y in zip(LEVELS, probs, true_ids.T)},
        **calibration,
    }
    predicted = paths_frame(test_rows["call_id"].tolist(), probs, taxonomy)
    actual = {level: test_rows[level].tolist() for level in LEVELS}
    guessed = {level: predicted[level].tolist() for level in LEVELS}
    reports = {}
    for depth, level in enumerate(LEVELS):
        write_json(confusion_rows(actual[level], guessed[level]), f"plots/{name}/confusion_{level}.json")
        with atomic_path(f"plots/{name}/confusion_{level}.png") as tmp:
            plot_confusion_png(actual[level], guessed[level], taxonomy.labels[level], tmp,
                               f"{name}: {level} (row-normalised, test split)")
        reports[level] = classification_report_dict(true_ids[:, depth], taxonomy.ids(level, guessed[level]),
                                                    taxonomy.labels[level])
    write_json(reports, f"reports/{name}_classification_report.json")
    with atomic_path(f"reports/{name}_errors.md") as tmp:
        tmp.write_text(error_analysis_markdown(texts, actual, guessed))
    with atomic_path(predictions_path) as tmp:
        predicted.assign(**{f"true_{level}": actual[level] for level in LEVELS}).to_parquet(tmp, index=False)
    write_json(metrics, f"metrics/{name}.json")
    return metrics
