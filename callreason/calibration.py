"""Calibration: one softmax temperature per level, fitted on held-out rows, and the expected calibration error.

Raw softmax confidence is miscalibrated; pseudo-label thresholds and the reported probabilities use the
temperature-scaled ones. ``calibrate`` fits the temperatures of a three-level predictor on the validation slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from callreason.hierarchy import softmax
from callreason.taxonomy import LEVELS

if TYPE_CHECKING:
    from callreason.predict import HierarchicalPredictor

TEMPERATURE_BOUNDS = (0.05, 20.0)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels (n,)`` under ``softmax(logits (n, k) / temperature)``."""
    log_probs = log_softmax(logits / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling: the ``T`` in ``[0.05, 20]`` minimising the NLL of ``softmax(logits / T)``.

    ``logits (n, k)``, ``labels (n,)`` int class ids. The NLL is convex in ``1 / T``, so a bounded
    scalar search over ``log T`` finds the optimum. Returns ``1.0`` for fewer than 2 rows.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"fit_temperature: logits {logits.shape} and labels {labels.shape} do not match")
    if len(labels) < 2:
        return 1.0
    lo, hi = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(lambda log_t: _nll(logits, labels, float(np.exp(log_t))),
                             bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.clip(np.exp(result.x), *TEMPERATURE_BOUNDS))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-1 expected calibration error of ``probs (n, k)`` against ``labels (n,)``.

    Equal-width confidence bins ``(lo, hi]`` on ``[0, 1]``; the weighted mean over bins of
    ``|accuracy - mean confidence|``. Returns ``0.0`` for no rows.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.abs(np.bincount(bins, weights=correct, minlength=n_bins)
                 - np.bincount(bins, weights=confidence, minlength=n_bins))
    return float(gap.sum() / len(labels))


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
