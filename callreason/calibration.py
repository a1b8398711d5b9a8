"""Calibration: one softmax temperature per level, fitted on held-out rows, and the expected calibration error.

Raw softmax confidence is miscalibrated; pseudo-label thresholds and the reported probabilities use the
temperature-scaled ones. ``calibrate`` fits the three levels' temperatures on held-out logits (the validation
slice); ``HierarchicalPredictor.fit_temperatures`` applies it to a run.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from callreason.hierarchy import softmax
from callreason.taxonomy import LEVELS

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


def uncalibrated_report() -> dict[str, Any]:
    """What :func:`calibrate` reports when there are too few held-out rows to fit on (temperatures of 1)."""
    return {"temperature": {level: 1.0 for level in LEVELS}, "val_ece_before": {}, "val_ece_after": {}}


def calibrate(level_logits: Sequence[np.ndarray], level_labels: Sequence[np.ndarray]) -> tuple[list[float], dict[str, Any]]:
    """One softmax temperature per level, fitted on held-out ``level_logits`` (``(n, k_level)`` each) and
    their ``level_labels`` (``(n,)`` class ids each).

    Returns the temperatures (level order) and ``{"temperature": {level: T rounded}, "val_ece_before": {...},
    "val_ece_after": {...}}``.
    """
    temperatures: list[float] = []
    report: dict[str, Any] = {"temperature": {}, "val_ece_before": {}, "val_ece_after": {}}
    for level, z, y in zip(LEVELS, level_logits, level_labels):
        t = fit_temperature(z, y)
        temperatures.append(t)
        report["temperature"][level] = round(float(t), 4)
        report["val_ece_before"][level] = round(expected_calibration_error(softmax(z), y), 4)
        report["val_ece_after"][level] = round(expected_calibration_error(softmax(z, t), y), 4)
    return temperatures, report
