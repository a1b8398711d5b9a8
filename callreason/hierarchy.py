"""Combining the three per-level classifiers: decoding over the taxonomy's valid paths (calibration:
:mod:`callreason.calibration`).

Each level's classifier gives probabilities ``p1 (n, k1)``, ``p2 (n, k2)``, ``p3 (n, k3)``. The joint
decoder scores every valid ``(level_1, level_2, level_3)`` path by ``p1 * p2 * p3`` and picks the best,
so a prediction is always a real path of the taxonomy. Greedy top-down decoding and independent
per-level argmax are kept for comparison.
"""

from __future__ import annotations

import numpy as np

from callreason.taxonomy import Taxonomy

PROB_FLOOR = 1e-12


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits (n, k) / temperature``, numerically stable. Returns ``(n, k)``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def path_log_scores(level_probs: list[np.ndarray], paths: np.ndarray) -> np.ndarray:
    """Sum of per-level log probabilities for every valid path.

    ``level_probs``: ``[p1 (n, k1), p2 (n, k2), p3 (n, k3)]``; ``paths (n_paths, 3)`` label ids.
    Probabilities are clipped at ``1e-12`` before the log. Returns ``(n, n_paths)``.
    """
    paths = np.asarray(paths, dtype=np.int64)
    if len(level_probs) != paths.shape[1]:
        raise ValueError(f"{len(level_probs)} levels of probabilities for paths of depth {paths.shape[1]}")
    scores = np.zeros((len(level_probs[0]), len(paths)), dtype=np.float64)
    for depth, probs in enumerate(level_probs):
        scores += np.log(np.clip(np.asarray(probs, dtype=np.float64), PROB_FLOOR, None))[:, paths[:, depth]]
    return scores


def joint_decode(level_probs: list[np.ndarray], paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best valid path by the product of level probabilities.

    Returns ``path_index (n,)`` (rows of ``paths``) and ``path_posterior (n, n_paths)``: the product
    renormalised over the valid paths, so each row sums to 1.
    """
    scores = path_log_scores(level_probs, paths)
    scores -= scores.max(axis=1, keepdims=True)
    posterior = np.exp(scores)
    posterior /= posterior.sum(axis=1, keepdims=True)
    return posterior.argmax(axis=1), posterior


def _child_mask(paths: np.ndarray, depth: int, n_parents: int, n_children: int) -> np.ndarray:
    """``(n_parents, n_children)`` bool: child id at ``depth`` sits under parent id at ``depth - 1``."""
    mask = np.zeros((n_parents, n_children), dtype=bool)
    mask[paths[:, depth - 1], paths[:, depth]] = True
    return mask


def greedy_decode(level_probs: list[np.ndarray], taxonomy: Taxonomy) -> np.ndarray:
    """Top-down decoding: argmax level_1, then the best child at level_2, then the best child at level_3.

    Returns ``(n, 3)`` label ids, always a valid path.
    """
    paths = taxonomy.paths
    chosen = [np.asarray(level_probs[0]).argmax(axis=1)]
    for depth in range(1, len(level_probs)):
        probs = np.asarray(level_probs[depth], dtype=np.float64)
        mask = _child_mask(paths, depth, np.asarray(level_probs[depth - 1]).shape[1], probs.shape[1])
        allowed = mask[chosen[-1]]  # (n, k_depth)
        chosen.append(np.where(allowed, probs, -np.inf).argmax(axis=1))
    return np.stack(chosen, axis=1).astype(np.int64)


def independent_argmax(level_probs: list[np.ndarray]) -> np.ndarray:
    """Each level's own argmax, ignoring the taxonomy. Returns ``(n, 3)`` ids (may be invalid paths)."""
    return np.stack([np.asarray(p).argmax(axis=1) for p in level_probs], axis=1).astype(np.int64)


def valid_path_mask(predicted_ids: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """``(n,)`` bool: row of ``predicted_ids (n, 3)`` is one of ``taxonomy.paths``."""
    predicted_ids = np.asarray(predicted_ids, dtype=np.int64).reshape(-1, taxonomy.paths.shape[1])
    valid = {tuple(row) for row in taxonomy.paths.tolist()}
    return np.array([tuple(row) in valid for row in predicted_ids.tolist()], dtype=bool)


def invalid_path_rate(predicted_ids: np.ndarray, taxonomy: Taxonomy) -> float:
    """Share of rows of ``predicted_ids (n, 3)`` that are not a valid path. ``0.0`` for no rows."""
    valid = valid_path_mask(predicted_ids, taxonomy)
    return float(1.0 - valid.mean()) if len(valid) else 0.0


def top2_margin(path_posterior: np.ndarray) -> np.ndarray:
    """``(n,)`` best minus second-best probability per row of ``path_posterior (n, n_paths)``."""
    posterior = np.asarray(path_posterior, dtype=np.float64)
    if posterior.shape[1] < 2:
        return posterior[:, 0].copy()
    top = np.partition(posterior, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def entropy(probs: np.ndarray) -> np.ndarray:
    """``(n,)`` natural-log entropy of each row of ``probs (n, k)`` (``0 log 0 = 0``)."""
    probs = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=1)
