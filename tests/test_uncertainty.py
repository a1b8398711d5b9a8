"""The relabel queue: uncertainty orderings, round-robin diversity, hesitation level, exclusion of pseudo-labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from callreason.errors import InputError
from callreason.pseudo_labels import score_paths
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.uncertainty import (
    QUEUE_COLUMNS,
    group_keys,
    hesitation_level,
    round_robin_order,
    select_uncertain,
    uncertainty_score,
)

# labels: level_1 [a, b]; level_2 [a1, a2, b1]; level_3 [u, v, x, y, z]
NESTED = {"a": {"a1": ["x", "y"], "a2": ["z"]}, "b": {"b1": ["u", "v"]}}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(NESTED)


def scored_from_posteriors(taxonomy: Taxonomy, rows: list[dict[str, float]]) -> pd.DataFrame:
    """Scored frame whose path posterior is exactly ``rows`` (leaf -> mass): uniform levels 1-2, masses at level_3."""
    probs = [np.full((len(rows), len(taxonomy.labels[lv])), 1 / len(taxonomy.labels[lv])) for lv in LEVELS[:2]]
    p3 = np.full((len(rows), len(taxonomy.labels["level_3"])), 0.0)
    for i, masses in enumerate(rows):
        for leaf, mass in masses.items():
            p3[i, taxonomy.labels["level_3"].index(leaf)] = mass
    ids = [f"c{i}" for i in range(len(rows))]
    return score_paths(ids, [f"summary {i}" for i in ids], [*probs, p3], taxonomy)


def test_orderings_margin_entropy_least_confidence(taxonomy):
    # c0: close call between two leaves, low entropy; c1: flat over 5 leaves, wide margin over the runner-up
    # c2: confident
    rows = [{"x": 0.48, "y": 0.46, "z": 0.06}, {"x": 0.36, "y": 0.16, "z": 0.16, "u": 0.16, "v": 0.16},
            {"u": 0.97, "v": 0.03}]
    scored = scored_from_posteriors(taxonomy, rows)
    by = {s: np.argsort(-uncertainty_score(scored, s), kind="stable").tolist()
          for s in ("margin", "entropy", "least_confidence")}
    assert by["margin"] == [0, 1, 2]           # margins 0.02, 0.20, 0.94
    assert by["entropy"] == [1, 0, 2]          # the flat row has the largest entropy
    assert by["least_confidence"] == [1, 0, 2]  # path_prob 0.36 < 0.48 < 0.97
    with pytest.raises(InputError, match="strategy"):
        uncertainty_score(scored, "random")


def test_hesitation_level_is_first_level_where_top2_paths_differ(taxonomy):
    rows = [{"x": 0.5, "y": 0.4, "u": 0.1},   # x vs y: same a > a1, differ at level_3
            {"x": 0.5, "z": 0.4, "u": 0.1},   # x vs z: same a, differ at level_2
            {"x": 0.5, "u": 0.4, "z": 0.1}]   # x vs u: differ at level_1
    scored = scored_from_posteriors(taxonomy, rows)
    second = scored[[f"second_{lv}" for lv in LEVELS]].set_axis(list(LEVELS), axis=1)
    assert hesitation_level(scored, second).tolist() == ["level_3", "level_2", "level_1"]
    none = second.copy()
    none[:] = None
    assert hesitation_level(scored, none).tolist() == ["none"] * 3


def test_round_robin_keeps_one_group_from_dominating():
    score = np.array([0.99, 0.98, 0.97, 0.96, 0.50, 0.40, 0.30])
    groups = np.array(["A", "A", "A", "A", "B", "C", "B"])
    order = round_robin_order(score, groups)
    assert order.tolist() == [0, 4, 5, 1, 6, 2, 3]  # round 1: A, B, C by uncertainty; round 2: A, B; then A, A
    assert round_robin_order(score, np.array(["all"] * 7)).tolist() == list(range(7))  # one group = plain ranking


def test_select_uncertain_queue(taxonomy):
    rows = ([{"x": 0.5 + d, "y": 0.5 - d} for d in (0.01, 0.02, 0.03, 0.04)]  # four close x/y calls (group a1)
            + [{"u": 0.7, "v": 0.3}, {"u": 0.99, "v": 0.01}]                 # group b1
            + [{"z": 0.6, "x": 0.4}])                                        # group a2
    scored = scored_from_posteriors(taxonomy, rows)
    queue, counts = select_uncertain(scored, exclude_ids=["c0"], strategy="margin", size=4, group_by="level_2")
    assert list(queue.columns) == list(QUEUE_COLUMNS)
    assert queue["rank"].tolist() == [1, 2, 3, 4]
    assert "c0" not in set(queue["call_id"])  # taken as a pseudo-label
    # round 1: best of a1 (c1, margin .04), a2 (c6, .2), b1 (c4, .4); round 2: next of a1 (c2)
    assert queue["call_id"].tolist() == ["c1", "c6", "c4", "c2"]
    assert queue["group"].tolist() == ["a1", "a2", "b1", "a1"]
    assert queue["hesitation_level"].tolist() == ["level_3", "level_2", "level_3", "level_3"]
    assert queue.loc[0, ["predicted_level_3", "alternative_level_3"]].tolist() == ["x", "y"]
    assert counts["size"] == 4 and counts["candidates"] == 6 and counts["excluded_pseudo_labeled"] == 1
    assert counts["per_group"] == {"a1": 2, "a2": 1, "b1": 1}
    plain, _ = select_uncertain(scored, [], strategy="margin", size=3, group_by="none")
    assert plain["call_id"].tolist() == ["c0", "c1", "c2"]  # without diversity one confusion fills the queue


def test_path_pair_groups_and_bad_params(taxonomy):
    scored = scored_from_posteriors(taxonomy, [{"x": 0.6, "y": 0.4}, {"y": 0.6, "x": 0.4}, {"x": 0.6, "z": 0.4}])
    assert group_keys(scored, "path_pair").tolist() == ["x | y", "x | y", "x | z"]
    with pytest.raises(InputError, match="group_by"):
        group_keys(scored, "level_9")
    for bad in (0, -3, 2.5, "10"):
        with pytest.raises(InputError, match="size"):
            select_uncertain(scored, [], size=bad)


def test_empty_pool_gives_empty_queue(taxonomy):
    scored = scored_from_posteriors(taxonomy, [{"x": 0.6, "y": 0.4}])
    queue, counts = select_uncertain(scored, ["c0"], size=5)
    assert len(queue) == 0 and counts["size"] == 0 and counts["mean_margin"] is None
