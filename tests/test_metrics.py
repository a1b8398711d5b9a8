"""Tests for evaluation metrics, DVC confusion data, the confusion heatmap and the error report."""

from __future__ import annotations

import json
import time

import matplotlib.figure  # noqa: F401  (imported up front so the timing below measures plotting only)
import numpy as np
import pytest

from callreason.metrics import (
    classification_report_dict,
    confused_pairs,
    confusion_rows,
    error_analysis_markdown,
    evaluation_metrics,
    level_scores,
    plot_confusion_png,
)
from callreason.taxonomy import LEVELS, Taxonomy

NESTED = {"a": {"a1": ["x", "y"], "a2": ["z"]}, "b": {"b1": ["u", "v"]}}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(NESTED)


def _ids(taxonomy: Taxonomy, *names: str) -> list[int]:
    return [taxonomy.labels[lv].index(x) for lv, x in zip(LEVELS, names)]


def _confident(taxonomy: Taxonomy, *names: str) -> list[np.ndarray]:
    """One row of per-level probabilities with 0.9 on the named label of each level."""
    rows = []
    for level, name in zip(LEVELS, names):
        k = len(taxonomy.labels[level])
        p = np.full(k, 0.1 / (k - 1))
        p[taxonomy.labels[level].index(name)] = 0.9
        rows.append(p)
    return rows


@pytest.fixture()
def case(taxonomy):
    """4 rows. Row 0: joint right, greedy wrong, argmax invalid. Rows 1-2: all right. Row 3: level_3 wrong."""
    row0 = [np.array([0.55, 0.45]), np.array([0.15, 0.05, 0.80]), np.array([0.05, 0.75, 0.10, 0.05, 0.05])]
    rows = [row0, _confident(taxonomy, "a", "a2", "z"), _confident(taxonomy, "a", "a1", "x"),
            _confident(taxonomy, "a", "a1", "x")]
    level_probs = [np.stack([r[d] for r in rows]) for d in range(3)]
    true_ids = np.array([_ids(taxonomy, "b", "b1", "v"), _ids(taxonomy, "a", "a2", "z"),
                         _ids(taxonomy, "a", "a1", "x"), _ids(taxonomy, "a", "a1", "y")])
    return true_ids, level_probs


def test_level_scores_known_values():
    scores = level_scores(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), n_classes=3)
    assert set(scores) == {"macro_f1", "accuracy", "weighted_f1"}
    assert scores["accuracy"] == pytest.approx(0.75)
    # class 0: p 2/3 r 1 -> 0.8; class 1: p 1 r 0.5 -> 2/3; class 2 absent, not averaged
    assert scores["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert scores["weighted_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    with pytest.raises(ValueError):
        level_scores(np.array([0, 3]), np.array([0, 0]), n_classes=3)


def test_evaluation_metrics_known_answers(taxonomy, case):
    true_ids, level_probs = case
    metrics = evaluation_metrics(true_ids, level_probs, taxonomy)
    assert set(metrics) == {"level_1", "level_2", "level_3", "path", "argmax", "rows"}
    assert metrics["rows"] == 4
    for level in LEVELS:
        assert set(metrics[level]) == {"macro_f1", "accuracy", "weighted_f1"}
        assert set(metrics["argmax"][level]) == {"macro_f1"}
    assert set(metrics["path"]) == {"accuracy", "joint_vs_greedy_level_3_macro_f1_gain",
                                    "argmax_invalid_rate", "greedy_accuracy"}
    assert metrics["path"]["accuracy"] == 0.75
    assert metrics["path"]["greedy_accuracy"] == 0.5
    assert metrics["path"]["argmax_invalid_rate"] == 0.25
    assert metrics["level_1"] == {"macro_f1": 1.0, "accuracy": 1.0, "weighted_f1": 1.0}
    assert metrics["level_2"]["accuracy"] == 1.0
    assert metrics["level_3"]["accuracy"] == 0.75
    # level_3 true [v, z, x, y]; joint [v, z, x, x] -> F1 (1, 1, 2/3, 0); greedy [x, z, x, x] -> (0, 1, 1/2, 0)
    assert metrics["level_3"]["macro_f1"] == round((2 + 2 / 3) / 4, 4)
    assert metrics["path"]["joint_vs_greedy_level_3_macro_f1_gain"] == round((2 + 2 / 3) / 4 - 1.5 / 4, 4)
    # argmax level_1 says a for row 0: true [b, a, a, a], pred [a, a, a, a] -> F1 (6/7, 0)
    assert metrics["argmax"]["level_1"]["macro_f1"] == round(3 / 7, 4)

    flat = [metrics["rows"]] + [v for d in (metrics[lv] for lv in LEVELS) for v in d.values()]
    flat += list(metrics["path"].values()) + [metrics["argmax"][lv]["macro_f1"] for lv in LEVELS]
    assert all(type(v) in (int, float) for v in flat)
    assert all(0.0 <= v <= 1.0 for v in flat[1:])
    assert json.loads(json.dumps(metrics)) == metrics


def test_classification_report_dict_covers_all_labels(taxonomy):
    labels = taxonomy.labels["level_3"]
    report = classification_report_dict(np.array([0, 1, 1]), np.array([0, 1, 0]), labels)
    assert all(name in report for name in labels)
    assert report["z"]["support"] == 0
    assert report["u"]["recall"] == 1.0
    json.dumps(report)


def test_confusion_rows_shape():
    rows = confusion_rows(["a", "b", "a"], ["a", "a", "b"])
    assert rows == [{"actual": "a", "predicted": "a"}, {"actual": "b", "predicted": "a"},
                    {"actual": "a", "predicted": "b"}]
    with pytest.raises(ValueError):
        confusion_rows(["a"], [])


def test_confused_pairs_order():
    actual = ["a", "a", "a", "b", "b", "c", "c", "c", "d"]
    predicted = ["b", "b", "a", "a", "c", "a", "a", "d", "d"]
    assert confused_pairs(actual, predicted) == [("a", "b", 2), ("c", "a", 2), ("b", "a", 1), ("b", "c", 1),
                                                 ("c", "d", 1)]
    assert confused_pairs(actual, predicted, top=1) == [("a", "b", 2)]
    assert confused_pairs(["a"], ["a"]) == []


def test_plot_confusion_png_70_classes(tmp_path):
    rng = np.random.default_rng(0)
    labels = [f"class_with_long_name_{i:02d}" for i in range(70)]
    actual = [labels[i] for i in rng.integers(0, 70, size=2000)]
    predicted = [a if rng.random() < 0.7 else labels[rng.integers(0, 70)] for a in actual]
    path = tmp_path / "plots" / "level_3" / "confusion.png"
    start = time.perf_counter()
    plot_confusion_png(actual, predicted, labels, path, "level_3 confusion")
    assert time.perf_counter() - start < 3.0
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_confusion_png_small_annotated(tmp_path):
    path = tmp_path / "small.png"
    plot_confusion_png(["a", "b", "b"], ["a", "a", "b"], ["a", "b", "unused"], path, "small")
    assert path.stat().st_size > 0


def test_error_analysis_markdown():
    summaries = ["Customer wants a refund | card was charged twice\nsecond line", "Asked about delivery date",
                 "Refund for double charge", "x" * 500]
    actual = {"level_1": ["billing", "shipping", "billing", "billing"]}
    predicted = {"level_1": ["shipping", "shipping", "shipping", "billing"]}
    report = error_analysis_markdown(summaries, actual, predicted, examples=1, max_chars=200)
    assert report.startswith("# Error analysis")
    assert "## level_1" in report
    assert "| billing | shipping | 2 | 66.7% |" in report
    assert "Customer wants a refund \\| card was charged twice second line" in report
    assert "Refund for double charge" not in report  # only 1 example per pair
    assert "x" * 201 not in report
    table_rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == 3 for line in table_rows)


def test_error_analysis_markdown_no_errors_and_truncation():
    report = error_analysis_markdown(["s" * 300], {"level_2": ["a"]}, {"level_2": ["b"]}, max_chars=50)
    line = next(x for x in report.splitlines() if x.startswith("- "))
    assert len(line) == 2 + 50 and line.endswith("…")
    assert "No confusions" in error_analysis_markdown(["s"], {"level_3": ["a"]}, {"level_3": ["a"]})
