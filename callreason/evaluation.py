"""Evaluate one training run's three models on the gold test rows (:func:`evaluate_run`: metrics, calibration,
suspected label errors) and write what an evaluating stage shows (:func:`write_evaluation`: plots, reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from callreason.calibration import expected_calibration_error
from callreason.error_report import error_report_markdown, suspect_labels_frame, suspected_label_errors
from callreason.hierarchy import joint_decode, softmax
from callreason.io import atomic_path, write_json
from callreason.metrics import classification_report_dict, confusion_rows, evaluation_metrics
from callreason.plots import plot_confusion_png, top_confusion_rows
from callreason.predict import HierarchicalPredictor, paths_frame
from callreason.taxonomy import LEVELS, Taxonomy


def headline_metrics(details: dict[str, Any], train_rows: int, val_rows: int) -> dict[str, Any]:
    """The numbers a person compares across experiments (``metrics/evaluate.json``, 15 keys): per level
    macro-F1 and accuracy, path accuracy, the invalid-path rate of independent heads, ECE after calibration,
    the rows of each split (the held-out run's training rows, its validation slice, the test rows scored) and
    the suspected share of wrong test labels. ``level_3`` comes first: `dvc exp show` never collapses the
    first metric column, however narrow the terminal."""
    levels = {level: {"macro_f1": details[level]["macro_f1"], "accuracy": details[level]["accuracy"]} for level in LEVELS}
    return {
        "level_3": levels["level_3"],
        "path": {"accuracy": details["path"]["accuracy"], "argmax_invalid_rate": details["path"]["argmax_invalid_rate"]},
        "level_2": levels["level_2"],
        "level_1": levels["level_1"],
        "ece": dict(details["calibration"]["test_ece_after"]),
        "rows": {"train": train_rows, "val": val_rows, "test": details["rows"]},
        "suspected_wrong_labels": details["suspected_wrong_labels"]["share"],
    }


@dataclass
class Evaluation:
    """What scoring a run on the test rows measured: ``details`` (``reports/<stage>.json``), the rows, the
    jointly decoded predictions, the probability the run gives each row's LLM path, and the suspect mask."""

    details: dict[str, Any]
    test_rows: pd.DataFrame
    predicted: pd.DataFrame
    given: np.ndarray
    suspect: np.ndarray


def evaluate_run(predictor: HierarchicalPredictor, test_rows: pd.DataFrame, val_rows: pd.DataFrame,
                 median_confidence: float) -> Evaluation:
    """Calibrate on ``val_rows`` (the temperatures are set on ``predictor``) and score ``test_rows``: greedy
    and argmax decoding, calibration before/after and the temperatures, per-class scores, and the test rows
    whose LLM label looks wrong (``median_confidence``: the median LLM confidence of the labeled rows).
    ``details["calibration"]["temperature"]`` holds the fitted temperatures. Writes nothing."""
    taxonomy = predictor.taxonomy
    test_rows = test_rows.reset_index(drop=True)
    calibration = predictor.fit_temperatures(val_rows)
    texts = test_rows["summary"].tolist()
    logits = predictor.level_logits(texts)
    probs = predictor.level_probs(texts, logits)
    true_ids = test_rows[[f"{level}_id" for level in LEVELS]].to_numpy()
    details = evaluation_metrics(true_ids, probs, taxonomy)
    details["calibration"] = {
        "test_ece_before": {lv: round(expected_calibration_error(softmax(z), y), 4)
                            for lv, z, y in zip(LEVELS, logits, true_ids.T)},
        "test_ece_after": {lv: round(expected_calibration_error(p, y), 4) for lv, p, y in zip(LEVELS, probs, true_ids.T)},
        **calibration,
    }
    predicted = paths_frame(test_rows["call_id"].tolist(), probs, taxonomy)
    _, posterior = joint_decode(probs, taxonomy.paths)
    path_index = {tuple(path): i for i, path in enumerate(taxonomy.paths.tolist())}
    given = posterior[np.arange(len(test_rows)), [path_index[tuple(row)] for row in true_ids.tolist()]]
    suspect = suspected_label_errors(given, test_rows["confidence"].to_numpy(np.float64), median_confidence)
    details["per_class"] = {level: classification_report_dict(true_ids[:, d], taxonomy.ids(level, predicted[level]),
                                                              taxonomy.labels[level]) for d, level in enumerate(LEVELS)}
    details["classes_scored"] = {level: int(len(np.unique(true_ids[:, d]))) for d, level in enumerate(LEVELS)}
    details["suspected_wrong_labels"] = {"rows": int(suspect.sum()), "share": round(float(suspect.mean()), 4)}
    return Evaluation(details, test_rows, predicted, given, suspect)


def write_evaluation(evaluation: Evaluation, taxonomy: Taxonomy, name: str, plots_dir: Path, reports_dir: Path,
                     predictions_path: Path) -> None:
    """The outputs of an evaluating stage ``name``:

    * ``reports_dir/{name}.json``: the details (the stage writes its headline metrics from them);
    * ``plots_dir/confusion_level_N.png`` (taxonomy order, counts, support), the vega data
      ``confusion_level_1|2.json`` and ``top_confusions_level_2|3.json``;
    * ``reports_dir/{name}_errors.md`` and ``reports_dir/{name}_suspect_labels.csv`` (test rows whose LLM
      label looks wrong); ``predictions_path`` (the test rows' predicted and true paths).
    """
    details, rows, predicted = evaluation.details, evaluation.test_rows, evaluation.predicted
    for level in LEVELS:
        actual, guessed = rows[level].tolist(), predicted[level].tolist()
        with atomic_path(plots_dir / f"confusion_{level}.png") as tmp:
            plot_confusion_png(actual, guessed, taxonomy, level, tmp, f"{name}: {level} confusion (test split)")
        if level != "level_1":
            write_json(top_confusion_rows(actual, guessed), plots_dir / f"top_confusions_{level}.json")
        if level != "level_3":
            write_json(confusion_rows(actual, guessed), plots_dir / f"confusion_{level}.json")
    with atomic_path(reports_dir / f"{name}_errors.md") as tmp:
        tmp.write_text(error_report_markdown(name, rows, predicted, evaluation.given, evaluation.suspect,
                                             {lv: details[lv]["macro_f1"] for lv in LEVELS}, details["classes_scored"]))
    with atomic_path(reports_dir / f"{name}_suspect_labels.csv") as tmp:
        suspect_labels_frame(rows, predicted, evaluation.given, evaluation.suspect).to_csv(tmp, index=False)
    with atomic_path(predictions_path) as tmp:
        predicted.assign(**{f"true_{level}": rows[level].tolist() for level in LEVELS}).to_parquet(tmp, index=False)
    write_json(details, reports_dir / f"{name}.json")
