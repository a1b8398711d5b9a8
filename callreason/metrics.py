"""Evaluation: per-level and path scores, DVC confusion data, confusion heatmaps and an error report."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score

from callreason.hierarchy import greedy_decode, independent_argmax, invalid_path_rate, joint_decode
from callreason.taxonomy import LEVELS, Taxonomy

DECIMALS = 4


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars / arrays turned into plain Python, floats rounded to 4 decimals."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), DECIMALS)
    return value


def level_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Macro-F1, accuracy and weighted-F1 of ``y_pred (n,)`` against ``y_true (n,)`` (label ids < ``n_classes``).

    Macro-F1 averages over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's default);
    undefined precision/recall count as 0.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"level_scores: y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    if len(y_true) == 0:
        raise ValueError("level_scores: no rows to score")
    for name, ids in (("y_true", y_true), ("y_pred", y_pred)):
        if ids.min() < 0 or ids.max() >= n_classes:
            raise ValueError(f"level_scores: {name} has ids outside [0, {n_classes})")
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def evaluation_metrics(true_ids: np.ndarray, level_probs: list[np.ndarray], taxonomy: Taxonomy) -> dict:
    """Scores of the joint (valid-path) decoding, with greedy and per-level argmax for comparison.

    ``true_ids (n, 3)`` label ids; ``level_probs`` ``[p1 (n, k1), p2 (n, k2), p3 (n, k3)]``.
    Returns a JSON-ready dict with keys ``level_1..level_3`` (joint decoding), ``path``, ``argmax``
    and ``rows``; floats rounded to 4 decimals.
    """
    true_ids = np.asarray(true_ids, dtype=np.int64)
    if true_ids.ndim != 2 or true_ids.shape[1] != len(LEVELS) or len(true_ids) == 0:
        raise ValueError(f"evaluation_metrics: true_ids must be (n > 0, 3), got {true_ids.shape}")
    path_index, _ = joint_decode(level_probs, taxonomy.paths)
    joint_ids = taxonomy.paths[path_index]
    greedy_ids = greedy_decode(level_probs, taxonomy)
    argmax_ids = independent_argmax(level_probs)
    n_classes = {level: len(taxonomy.labels[level]) for level in LEVELS}

    metrics: dict[str, Any] = {
        level: level_scores(true_ids[:, d], joint_ids[:, d], n_classes[level]) for d, level in enumerate(LEVELS)
    }
    greedy_level_3 = level_scores(true_ids[:, -1], greedy_ids[:, -1], n_classes[LEVELS[-1]])
    metrics["path"] = {
        "accuracy": float((joint_ids == true_ids).all(axis=1).mean()),
        "joint_vs_greedy_level_3_macro_f1_gain": metrics[LEVELS[-1]]["macro_f1"] - greedy_level_3["macro_f1"],
        "argmax_invalid_rate": invalid_path_rate(argmax_ids, taxonomy),
        "greedy_accuracy": float((greedy_ids == true_ids).all(axis=1).mean()),
    }
    metrics["argmax"] = {
        level: {"macro_f1": level_scores(true_ids[:, d], argmax_ids[:, d], n_classes[level])["macro_f1"]}
        for d, level in enumerate(LEVELS)
    }
    metrics["rows"] = int(len(true_ids))
    return _plain(metrics)


def classification_report_dict(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """scikit-learn's per-class report over every label of the level (ids ``0..len(labels)-1``), JSON-ready."""
    report = classification_report(y_true, y_pred, labels=list(range(len(labels))), target_names=labels,
                                   output_dict=True, zero_division=0)
    return _plain(report)


def confusion_rows(actual: list[str], predicted: list[str]) -> list[dict[str, str]]:
    """``[{"actual": a, "predicted": p}, ...]``, one per row, for DVC's ``confusion`` plot template."""
    if len(actual) != len(predicted):
        raise ValueError(f"confusion_rows: {len(actual)} actual vs {len(predicted)} predicted labels")
    return [{"actual": str(a), "predicted": str(p)} for a, p in zip(actual, predicted)]


def plot_confusion_png(actual: list[str], predicted: list[str], labels: list[str], path: Path, title: str) -> None:
    """Write a row-normalised confusion heatmap (recall per true class) to ``path`` as PNG.

    Only classes present in ``actual`` or ``predicted`` are shown, in ``labels`` order (unknown names
    last, sorted). The figure grows with the class count so 64+ classes stay readable; counts are
    annotated for up to 20 classes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(actual) != len(predicted):
        raise ValueError(f"plot_confusion_png: {len(actual)} actual vs {len(predicted)} predicted labels")
    present = set(actual) | set(predicted)
    shown = [x for x in labels if x in present] + sorted(present - set(labels))
    index = {label: i for i, label in enumerate(shown)}
    k = len(shown)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, ([index[a] for a in actual], [index[p] for p in predicted]), 1)
    row_sums = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, row_sums, out=np.zeros((k, k)), where=row_sums > 0)

    size = max(6.0, 0.22 * k)
    tick_size = 6 if k > 30 else 8 if k > 15 else 10
    fig = Figure(figsize=(size + 1.5, size), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="share of true class")
    ax.set_xticks(range(k), labels=shown, rotation=90, fontsize=tick_size)
    ax.set_yticks(range(k), labels=shown, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    if k <= 20:
        for i, j in zip(*np.nonzero(counts)):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=tick_size,
                    color="white" if recall[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.set_layout_engine(None)  # layout is done; stops savefig from drawing everything twice
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)


def confused_pairs(actual: list[str], predicted: list[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The ``top`` most frequent ``(actual, predicted, count)`` mistakes, by count descending then names."""
    counts = Counter((a, p) for a, p in zip(actual, predicted) if a != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [(a, p, n) for (a, p), n in ranked[:top]]


def _markdown_cell(text: str, max_chars: int | None = None) -> str:
    """``text`` on one line, pipes escaped, truncated to ``max_chars`` with an ellipsis."""
    text = " ".join(str(text).split())
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(max_chars - 1, 0)].rstrip() + "…"
    return text.replace("|", "\\|")


def error_analysis_markdown(summaries: list[str], actual: dict[str, list[str]], predicted: dict[str, list[str]],
                            top_pairs: int = 10, examples: int = 3, max_chars: int = 200) -> str:
    """A markdown report of the most confused label pairs per level, with example summaries.

    ``summaries (n,)`` and, per level key ``level_1..level_3``, ``actual[level] (n,)`` and
    ``predicted[level] (n,)`` label names, all aligned by row.
    """
    lines = [
        "# Error analysis",
        "",
        "For each level, the table lists the most frequent mistakes of the model as (actual, predicted) "
        "label pairs, with how many rows they cover and what share of the actual class's rows that is. "
        "Under each pair are a few call summaries that were misclassified that way. A pair that recurs "
        "with summaries that read alike usually means two labels overlap: merge them, rename them or "
        "sharpen their definitions in the taxonomy, or tell the summarising LLM prompt to mention the "
        "detail that tells them apart. Summaries that clearly belong to the actual label point instead "
        "to too little or noisy training data for that class.",
    ]
    for level in (lv for lv in LEVELS if lv in actual):
        true_labels, pred_labels = list(actual[level]), list(predicted[level])
        if not (len(true_labels) == len(pred_labels) == len(summaries)):
            raise ValueError(f"error_analysis_markdown: {level} has {len(true_labels)} actual, "
                             f"{len(pred_labels)} predicted labels for {len(summaries)} summaries")
        class_rows = Counter(true_labels)
        errors = sum(a != p for a, p in zip(true_labels, pred_labels))
        lines += ["", f"## {level}", "",
                  f"{errors} of {len(true_labels)} rows misclassified"
                  + (f" ({errors / len(true_labels):.1%})." if true_labels else ".")]
        pairs = confused_pairs(true_labels, pred_labels, top=top_pairs)
        if not pairs:
            lines += ["", "No confusions at this level."]
            continue
        rows_of_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (a, p) in enumerate(zip(true_labels, pred_labels)):
            if a != p and len(rows_of_pair[(a, p)]) < examples:
                rows_of_pair[(a, p)].append(i)
        lines += ["", "| actual | predicted | count | share of actual |", "|---|---|---:|---:|"]
        lines += [f"| {_markdown_cell(a)} | {_markdown_cell(p)} | {n} | {n / class_rows[a]:.1%} |"
                  for a, p, n in pairs]
        for a, p, n in pairs:
            lines += ["", f"### {_markdown_cell(a)} → {_markdown_cell(p)} ({n})", ""]
            lines += [f"- {_markdown_cell(summaries[i], max_chars)}" for i in rows_of_pair[(a, p)]]
    return "\n".join(lines) + "\n"
