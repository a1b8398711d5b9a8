"""Tests for evaluation metrics, DVC confusion data, the confusion heatmap and the error report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from callreason.error_report import error_report_markdown, suspect_labels_frame, suspected_label_errors
from callreason.metrics import classification_report_dict, confusion_rows, evaluation_metrics, level_scores
from callreason.plots import (
    confused_pairs,
    curves_figure,
    plot_confusion_png,
    plot_curves_png,
    taxonomy_order,
    top_confusion_rows,
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


def test_the_classification_report_and_level_scores_give_one_macro_f1(taxonomy):
    """Both average over the classes present in the test split: 'z' has no test row and counts nowhere."""
    labels = taxonomy.labels["level_3"]
    y_true, y_pred = np.array([0, 1, 1, 3]), np.array([0, 1, 0, 4])  # 4 = 'z' predicted, never actual
    report = classification_report_dict(y_true, y_pred, labels)
    assert set(report) - {"accuracy", "macro avg", "weighted avg", "micro avg"} == {labels[i] for i in (0, 1, 3)}
    assert report["macro avg"]["f1-score"] == round(level_scores(y_true, y_pred, len(labels))["macro_f1"], 4)
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


def test_confusion_png_is_in_taxonomy_order_with_a_block_per_level_1(tmp_path):
    nested = {f"area_{a}": {f"sub_{a}_{b}": [f"reason_{a}_{b}_{c}" for c in range(3)] for b in range(3)}
              for a in range(8)}
    taxonomy = Taxonomy.from_dict(nested)
    order, starts = taxonomy_order(taxonomy, "level_3")
    assert order[:4] == ["reason_0_0_0", "reason_0_0_1", "reason_0_0_2", "reason_0_1_0"]
    assert starts == [0, 9, 18, 27, 36, 45, 54, 63]
    assert taxonomy_order(taxonomy, "level_1") == (sorted(nested), [])
    rng = np.random.default_rng(0)
    actual = [order[i] for i in rng.integers(0, 72, size=1500)]
    predicted = [a if rng.random() < 0.7 else order[rng.integers(0, 72)] for a in actual]
    path = tmp_path / "plots" / "confusion_level_3.png"
    plot_confusion_png(actual, predicted, taxonomy, "level_3", path, "level_3 confusion")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_top_confusion_rows_are_the_bar_chart_data():
    rows = top_confusion_rows(["a", "a", "b", "c"], ["b", "b", "a", "c"], top=5)
    assert rows == [{"pair": "a → b", "count": 2}, {"pair": "b → a", "count": 1}]


def test_curves_figure_has_one_line_per_level_over_epochs_on_each_axes(tmp_path):
    curve = [{"epoch": 0, "train_loss": 2.0, "val_macro_f1": 0.5}, {"epoch": 1, "train_loss": 1.0, "val_macro_f1": 0.7},
             {"epoch": 2, "train_loss": 0.8, "val_macro_f1": 0.65}]
    refit = [{"epoch": 0, "train_loss": 1.5, "val_macro_f1": None}, {"epoch": 1, "train_loss": 0.9}]
    fig = curves_figure({"level_1": curve, "level_3": curve[:2], "level_2": refit}, "curves")
    f1_ax, loss_ax = fig.axes[:2]
    assert [line.get_label() for line in f1_ax.lines] == ["level_1", "level_3"]  # level_2 has no validation F1
    assert [line.get_label() for line in loss_ax.lines] == ["level_1", "level_3", "level_2"]
    assert list(f1_ax.lines[0].get_xdata()) == [0, 1, 2] and list(f1_ax.lines[0].get_ydata()) == [0.5, 0.7, 0.65]
    assert list(loss_ax.lines[2].get_ydata()) == [1.5, 0.9]
    assert [t.get_text() for t in f1_ax.get_legend().get_texts()] == ["level_1", "level_3"]
    plot_curves_png({"level_1": curve}, tmp_path / "c.png", "curves")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def error_case() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Six test rows; row 2 is a constructed label error: the LLM said late_fee (unsure, 0.55) for a
    summary about a double charge, and the models (out of sample) give that path 0.01."""
    rows = pd.DataFrame({
        "call_id": [f"T{i}" for i in range(6)],
        "summary": ["refund for my order", "charged twice this month", "I was charged twice for the same bill, "
                    "please reverse one of the two payments " * 3, "late fee on the bill", "reset my password",
                    "locked out of my account"],
        "level_1": ["billing", "billing", "billing", "billing", "access", "access"],
        "level_2": ["payments", "payments", "fees", "fees", "login", "login"],
        "level_3": ["refund", "double_charge", "late_fee", "late_fee", "password_reset", "locked_out"],
        "confidence": [0.95, 0.9, 0.55, 0.92, 0.9, 0.85],
    })
    predicted = rows.copy()
    predicted.loc[1, ["level_3"]] = "refund"  # a model error on a clean-looking row
    predicted.loc[2, ["level_2", "level_3"]] = ["payments", "double_charge"]
    prob_of_given = np.array([0.9, 0.3, 0.01, 0.8, 0.95, 0.7])
    return rows, predicted, prob_of_given


def test_the_error_report_marks_a_constructed_mislabeled_row_as_suspect_and_splits_the_advice():
    rows, predicted, given = error_case()
    suspect = suspected_label_errors(given, rows["confidence"].to_numpy(), float(rows["confidence"].median()))
    assert suspect.tolist() == [False, False, True, False, False, False]
    report = error_report_markdown("evaluate", rows, predicted, given, suspect,
                                   {lv: 0.9 for lv in LEVELS}, {lv: 3 for lv in LEVELS})
    assert "**1 (16.7%) look wrong**" in report
    noisy_section = report.split("## level_3")[1].split("### Errors on rows whose label looks wrong (re-prompt): 1")[1]
    assert "`T2` · LLM said `late_fee` at confidence 0.55" in noisy_section
    clean_section = report.split("## level_3")[1].split("### Errors on rows whose label looks wrong")[0]
    assert "| double_charge | refund | 1 | 1 |" in clean_section and "T2" not in clean_section
    assert "please reverse one of the two payments I was charged twice" in report.replace("\n  > ", " ")  # full text
    frame = suspect_labels_frame(rows, predicted, given, suspect)
    assert frame["call_id"].tolist() == ["T2"] and frame.loc[0, "model_level_3"] == "double_charge"


def test_with_one_confidence_for_every_row_the_models_alone_decide():
    given = np.array([0.01, 0.5])
    assert suspected_label_errors(given, np.array([1.0, 1.0]), 1.0).tolist() == [True, False]
