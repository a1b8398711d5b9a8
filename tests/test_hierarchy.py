"""Tests for calibration and decoding over the taxonomy's valid paths."""

from __future__ import annotations

import numpy as np
import pytest

from callreason.calibration import expected_calibration_error, fit_temperature
from callreason.hierarchy import (
    entropy,
    greedy_decode,
    independent_argmax,
    invalid_path_rate,
    joint_decode,
    path_log_scores,
    softmax,
    top2_margin,
)
from callreason.taxonomy import Taxonomy

# labels: level_1 [a, b]; level_2 [a1, a2, b1]; level_3 [u, v, x, y, z]
NESTED = {"a": {"a1": ["x", "y"], "a2": ["z"]}, "b": {"b1": ["u", "v"]}}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(NESTED)


def _ids(taxonomy: Taxonomy, l1: str, l2: str, l3: str) -> list[int]:
    return [taxonomy.labels[lv].index(x) for lv, x in zip(("level_1", "level_2", "level_3"), (l1, l2, l3))]


def _valid_set(taxonomy: Taxonomy) -> set[tuple[int, ...]]:
    return {tuple(p) for p in taxonomy.paths.tolist()}


@pytest.fixture()
def tricky_probs():
    """Row 0: level_1 slightly favours a, levels 2/3 strongly favour b > b1 > v.
    Row 1: everything agrees on a > a2 > z."""
    #                 a     b
    p1 = np.array([[0.55, 0.45], [0.9, 0.1]])
    #                 a1    a2    b1
    p2 = np.array([[0.15, 0.05, 0.80], [0.05, 0.9, 0.05]])
    #                 u     v     x     y     z
    p3 = np.array([[0.05, 0.75, 0.10, 0.05, 0.05], [0.02, 0.02, 0.02, 0.02, 0.92]])
    return [p1, p2, p3]


def test_softmax_rows_sum_to_one_and_stable():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), 0.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(p[1], [0.2, 0.6, 0.2])
    np.testing.assert_allclose(softmax(np.array([[0.0, 2.0]]), temperature=2.0), softmax(np.array([[0.0, 1.0]])))


def test_joint_beats_greedy_and_stays_valid(taxonomy, tricky_probs):
    path_index, posterior = joint_decode(tricky_probs, taxonomy.paths)
    assert posterior.shape == (2, len(taxonomy.paths))
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    joint = taxonomy.paths[path_index]
    assert joint[0].tolist() == _ids(taxonomy, "b", "b1", "v")
    assert joint[1].tolist() == _ids(taxonomy, "a", "a2", "z")

    greedy = greedy_decode(tricky_probs, taxonomy)
    assert greedy[0].tolist() == _ids(taxonomy, "a", "a1", "x")  # stuck in a's subtree
    assert greedy[1].tolist() == joint[1].tolist()
    assert path_log_scores(tricky_probs, taxonomy.paths)[0, path_index[0]] > np.log(0.55 * 0.15 * 0.10)

    argmax = independent_argmax(tricky_probs)
    assert argmax[0].tolist() == _ids(taxonomy, "a", "b1", "v")  # not a path
    assert invalid_path_rate(argmax, taxonomy) == pytest.approx(0.5)
    assert invalid_path_rate(joint, taxonomy) == 0.0
    assert invalid_path_rate(greedy, taxonomy) == 0.0


def test_decoded_paths_always_valid_on_random_probs(taxonomy):
    rng = np.random.default_rng(0)
    probs = [rng.dirichlet(np.ones(len(taxonomy.labels[lv])), size=200) for lv in ("level_1", "level_2", "level_3")]
    path_index, posterior = joint_decode(probs, taxonomy.paths)
    np.testing.assert_allclose(posterior.sum(axis=1), 1.0)
    valid = _valid_set(taxonomy)
    assert all(tuple(row) in valid for row in taxonomy.paths[path_index].tolist())
    assert all(tuple(row) in valid for row in greedy_decode(probs, taxonomy).tolist())
    # joint maximises the path score, so it is never below greedy's path
    scores = path_log_scores(probs, taxonomy.paths)
    lookup = {tuple(p): i for i, p in enumerate(taxonomy.paths.tolist())}
    greedy_index = np.array([lookup[tuple(r)] for r in greedy_decode(probs, taxonomy).tolist()])
    rows = np.arange(200)
    assert np.all(scores[rows, path_index] >= scores[rows, greedy_index] - 1e-12)


def test_greedy_picks_children_of_chosen_parent(taxonomy):
    # level_1 says b, but level_2/level_3 put most mass on a's children: greedy must stay under b
    p1 = np.array([[0.4, 0.6]])
    p2 = np.array([[0.5, 0.3, 0.2]])
    p3 = np.array([[0.1, 0.2, 0.3, 0.3, 0.1]])
    ids = greedy_decode([p1, p2, p3], taxonomy)[0]
    assert ids.tolist() == _ids(taxonomy, "b", "b1", "v")


def test_invalid_path_rate_values(taxonomy):
    valid = taxonomy.paths
    invalid = np.array([_ids(taxonomy, "a", "b1", "u"), _ids(taxonomy, "b", "b1", "x")])
    assert invalid_path_rate(valid, taxonomy) == 0.0
    assert invalid_path_rate(invalid, taxonomy) == 1.0
    assert invalid_path_rate(np.vstack([valid[:2], invalid[:1], valid[2:3]]), taxonomy) == pytest.approx(0.25)


def test_fit_temperature_recovers_overconfidence_and_lowers_ece():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=1.5, size=(4000, 6))
    labels = (rng.random((len(z), 1)) > softmax(z).cumsum(axis=1)).sum(axis=1).clip(max=5)
    logits = 3.0 * z
    temperature = fit_temperature(logits, labels)
    assert 2.5 < temperature < 3.5
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, temperature), labels)
    assert after < before / 2
    assert fit_temperature(logits[:1], labels[:1]) == 1.0


def test_expected_calibration_error_simple():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # bin 0.9: acc 0.5 vs conf 0.9 (2 rows); bin 0.6: acc 1.0 vs conf 0.6 (2 rows)
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx((2 * 0.4 + 2 * 0.4) / 4)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


def test_top2_margin_and_entropy():
    posterior = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(top2_margin(posterior), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(entropy(np.array([[0.5, 0.5], [1.0, 0.0]])), [np.log(2), 0.0])
    np.testing.assert_allclose(entropy(np.full((1, 4), 0.25)), [np.log(4)])
