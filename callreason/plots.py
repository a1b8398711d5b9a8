"""Static plots (PNG, readable offline) and the data files behind the interactive ``dvc plots show`` charts.

* confusion heatmaps in the taxonomy's order: classes grouped by level_1 (then level_2) with block borders,
  cell counts, and each row's support in its label, so a sibling confusion shows as a dark cell inside a block;
* the most confused pairs as rows ``{"pair": "actual → predicted", "count": n}`` (a bar chart reads at 77
  classes, where a full matrix does not);
* training curves per level: validation macro-F1 and training loss per epoch (the linear probe is epoch 0),
  on two separate axes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from callreason.taxonomy import LEVELS, Taxonomy

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def taxonomy_order(taxonomy: Taxonomy, level: str) -> tuple[list[str], list[int]]:
    """``level``'s labels in taxonomy order (grouped under their level_1, then level_2), and the positions
    where a new level_1 block starts (block borders)."""
    order, starts = [], []
    seen: set[str] = set()
    depth = LEVELS.index(level)
    block = None
    for path in sorted(taxonomy.paths.tolist()):  # ids are sorted names: level_1 blocks, then level_2
        names = [taxonomy.labels[lv][i] for lv, i in zip(LEVELS, path)]
        if names[depth] in seen:
            continue
        if depth > 0 and names[0] != block:
            starts.append(len(order))
            block = names[0]
        seen.add(names[depth])
        order.append(names[depth])
    return order, starts


def confusion_counts(actual: Sequence[str], predicted: Sequence[str], labels: list[str]) -> np.ndarray:
    """``(k, k)`` counts, rows = actual, columns = predicted, in the order of ``labels``."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, ([index[a] for a in actual], [index[p] for p in predicted]), 1)
    return counts


def plot_confusion_png(actual: Sequence[str], predicted: Sequence[str], taxonomy: Taxonomy, level: str,
                       path: Path, title: str) -> None:
    """A confusion heatmap of counts in taxonomy order, the classes present in ``actual`` or ``predicted``.

    Colour is the share of the actual class's rows (so a big class does not set the scale) and every
    non-zero cell shows its count; each row label carries its support (``n=``); lines separate level_1
    blocks. Written as PNG to ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(actual) != len(predicted):
        raise ValueError(f"plot_confusion_png: {len(actual)} actual vs {len(predicted)} predicted labels")
    order, starts = taxonomy_order(taxonomy, level)
    present = set(actual) | set(predicted)
    shown = [x for x in order if x in present]
    borders = sorted({sum(1 for x in order[:s] if x in present) for s in starts} - {0})
    counts = confusion_counts(actual, predicted, shown)
    support = counts.sum(axis=1)
    share = np.divide(counts, support[:, None], out=np.zeros(counts.shape), where=support[:, None] > 0)
    k = len(shown)
    size = max(6.0, 0.24 * k)
    font = 5 if k > 50 else 6 if k > 30 else 8 if k > 15 else 10
    fig = Figure(figsize=(size + 2.0, size + 1.0), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label="share of the actual class's test rows")
    ax.set_xticks(range(k), labels=shown, rotation=90, fontsize=font)
    ax.set_yticks(range(k), labels=[f"{name} (n={n})" for name, n in zip(shown, support)], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual (test rows)")
    ax.set_title(title)
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=max(font - 1, 4),
                color="white" if share[i, j] > 0.5 else "black")
    for b in borders:
        ax.axhline(b - 0.5, color="0.35", linewidth=0.8)
        ax.axvline(b - 0.5, color="0.35", linewidth=0.8)
    fig.tight_layout()
    fig.set_layout_engine(None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)


def confused_pairs(actual: Sequence[str], predicted: Sequence[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The ``top`` most frequent ``(actual, predicted, count)`` mistakes, by count descending then names."""
    counts = Counter((a, p) for a, p in zip(actual, predicted) if a != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    return [(a, p, n) for (a, p), n in ranked[:top]]


def top_confusion_rows(actual: Sequence[str], predicted: Sequence[str], top: int = 15) -> list[dict]:
    """``[{"pair": "a → p", "count": n}, ...]``: the data of the top-confusions bar chart."""
    return [{"pair": f"{a} → {p}", "count": n} for a, p, n in confused_pairs(actual, predicted, top)]


def curves_figure(curves: dict[str, list[dict]], title: str) -> "Figure":
    """Training curves of each level: validation macro-F1 (left axes) and training loss (right axes) per epoch,
    one line per level on each (a level with no values of a kind has no line there).

    ``curves[level]``: rows ``{"epoch", "val_macro_f1", "train_loss"}``; epoch 0 is the linear probe.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=110)
    FigureCanvasAgg(fig)
    f1_ax, loss_ax = fig.subplots(1, 2)
    for level, rows in curves.items():
        epochs = [r["epoch"] for r in rows]
        f1 = [r.get("val_macro_f1") for r in rows]
        loss = [r.get("train_loss") for r in rows]
        if any(v is not None for v in f1):
            f1_ax.plot(epochs, [np.nan if v is None else v for v in f1], marker="o", label=level)
        if any(v is not None for v in loss):
            loss_ax.plot(epochs, [np.nan if v is None else v for v in loss], marker="o", label=level)
    f1_ax.set(xlabel="epoch (0 = linear probe)", ylabel="validation macro-F1", title="validation macro-F1")
    loss_ax.set(xlabel="epoch (0 = linear probe)", ylabel="training loss", title="training loss")
    for ax in (f1_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_curves_png(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    """:func:`curves_figure` written as PNG to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    curves_figure(curves, title).savefig(path, format="png", dpi=110)
