"""The Phase 3 relabel queue: the unlabeled summaries the models are least sure about, spread over confusions.

Input is ``data/unlabeled_scored.parquet`` (see ``callreason.pseudo_labels.SCORED_COLUMNS``); rows taken
as pseudo-labels are left out. Uncertainty orderings (most uncertain first):

* ``margin``: smallest gap between the best and the second-best path probability;
* ``entropy``: largest entropy of the posterior over the valid paths;
* ``least_confidence``: largest ``1 - path_prob``.

Diversity: rows are grouped (by predicted ``level_2``, or by the unordered pair of the top-2 leaves,
``path_pair``) and taken round-robin: the most uncertain row of every group first (groups in order of
that row's uncertainty), then every group's second, and so on, so one confusion cannot fill the queue.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np
import pandas as pd

from callreason.errors import InputError
from callreason.params import GROUPINGS, STRATEGIES
from callreason.taxonomy import LEVELS

MAX_GROUPS_REPORTED = 50  # per_group in the metrics: the largest groups only

QUEUE_COLUMNS = (
    "rank", "call_id", "summary", *(f"predicted_{lv}" for lv in LEVELS), *(f"alternative_{lv}" for lv in LEVELS),
    "path_prob", "margin", "entropy", "hesitation_level", "group", "uncertainty",
)
"""Columns of ``data/relabel_queue.parquet``; ``rank`` 1 = label first. ``alternative_*`` is the runner-up path."""


def uncertainty_score(scored: pd.DataFrame, strategy: str) -> np.ndarray:
    """``(n,)`` uncertainty, higher = less sure: ``1 - margin``, ``entropy`` or ``1 - path_prob``."""
    if strategy == "margin":
        return 1.0 - scored["margin"].to_numpy(np.float64)
    if strategy == "entropy":
        return scored["entropy"].to_numpy(np.float64)
    if strategy == "least_confidence":
        return 1.0 - scored["path_prob"].to_numpy(np.float64)
    raise InputError(f"params.yaml: select_uncertain.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def hesitation_level(best: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """``(n,)`` the first level at which the best path (columns ``level_1..3`` of ``best``) and the
    runner-up (same columns of ``second``) differ; ``"none"`` where there is no runner-up."""
    out = np.full(len(best), "none", dtype=object)
    undecided = np.ones(len(best), dtype=bool)
    for level in LEVELS:
        a = best[level].to_numpy(dtype=object)
        b = second[level].to_numpy(dtype=object)
        differs = undecided & pd.notna(b) & (a != b)
        out[differs] = level
        undecided &= ~differs
    return out


def group_keys(scored: pd.DataFrame, group_by: str) -> np.ndarray:
    """``(n,)`` diversity group per row: predicted ``level_2``, the sorted top-2 leaf pair, or one group."""
    if group_by == "level_2":
        return scored["level_2"].astype(str).to_numpy(dtype=object)
    if group_by == "path_pair":
        pairs = zip(scored["level_3"].astype(str), scored["second_level_3"].fillna("").astype(str))
        return np.array([" | ".join(sorted(p for p in pair if p)) for pair in pairs], dtype=object)
    if group_by == "none":
        return np.full(len(scored), "all", dtype=object)
    raise InputError(f"params.yaml: select_uncertain.group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}")


def round_robin_order(score: np.ndarray, groups: np.ndarray, ids: Iterable[str] | None = None) -> np.ndarray:
    """Row positions in queue order: the k-th most uncertain row of each group comes in round k;
    within a round, rows by uncertainty (ties by ``ids``, then position)."""
    score = np.asarray(score, dtype=np.float64)
    positions = np.arange(len(score))
    frame = pd.DataFrame({"score": score, "group": groups, "id": positions if ids is None else list(ids),
                          "pos": positions})
    frame = frame.sort_values(["score", "id", "pos"], ascending=[False, True, True], kind="stable")
    frame["round"] = frame.groupby("group", sort=False).cumcount()
    frame = frame.sort_values(["round", "score", "id", "pos"], ascending=[True, False, True, True], kind="stable")
    return frame["pos"].to_numpy()


def select_uncertain(
    scored: pd.DataFrame, exclude_ids: Iterable[str], strategy: str = "margin", size: int = 500,
    group_by: str = "level_2",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The relabel queue (``QUEUE_COLUMNS``, at most ``size`` rows) and its counts."""
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
        raise InputError(f"params.yaml: select_uncertain.size must be a positive integer, got {size!r}")
    excluded = {str(x) for x in exclude_ids}
    pool = scored[~scored["call_id"].astype(str).isin(excluded)].reset_index(drop=True)
    score = uncertainty_score(pool, strategy)
    groups = group_keys(pool, group_by)
    order = round_robin_order(score, groups, pool["call_id"].astype(str))[: int(size)]
    picked = pool.iloc[order].reset_index(drop=True)
    second = picked.loc[:, [f"second_{lv}" for lv in LEVELS]].set_axis(list(LEVELS), axis=1)
    queue = pd.DataFrame({
        "rank": np.arange(1, len(picked) + 1),
        "call_id": picked["call_id"].astype(str),
        "summary": picked["summary"],
        **{f"predicted_{lv}": picked[lv] for lv in LEVELS},
        **{f"alternative_{lv}": picked[f"second_{lv}"] for lv in LEVELS},
        "path_prob": picked["path_prob"].to_numpy(np.float64),
        "margin": picked["margin"].to_numpy(np.float64),
        "entropy": picked["entropy"].to_numpy(np.float64),
        "hesitation_level": hesitation_level(picked, second),
        "group": groups[order],
        "uncertainty": score[order],
    })
    counts = {
        "strategy": strategy,
        "group_by": group_by,
        "size": int(len(queue)),
        "requested_size": int(size),
        "candidates": int(len(pool)),
        "excluded_pseudo_labeled": int(len(scored) - len(pool)),
        "groups": int(len(set(groups.tolist()))),
        "groups_in_queue": int(queue["group"].nunique()),
        "per_group": {str(k): int(v) for k, v in queue["group"].value_counts().head(MAX_GROUPS_REPORTED).items()},
        "hesitation_level": {str(k): int(v) for k, v in queue["hesitation_level"].value_counts().sort_index().items()},
        "mean_margin": round(float(queue["margin"].mean()), 4) if len(queue) else None,
        "mean_path_prob": round(float(queue["path_prob"].mean()), 4) if len(queue) else None,
    }
    return queue, counts
