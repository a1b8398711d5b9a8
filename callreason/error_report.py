"""The error report: which mistakes are the labels' (re-prompt the LLM) and which are the model's or the
taxonomy's (sharpen definitions), with the rows to look at.

Test labels are an LLM's. A test row's label is *suspected wrong* when the held-out models, which never saw
it, give the LLM's path a calibrated probability below ``SUSPECT_PROBABILITY`` and the LLM itself was less
sure than usual (confidence below the median of the file; when every confidence is the same it carries no
information and the first condition decides). Measured on the demo, whose true labels are known: this rule
caught 9 of the 11 wrong test labels at a precision of 0.45; out-of-fold TF-IDF flags alone had 0.20.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict

import numpy as np
import pandas as pd

from callreason.plots import confused_pairs
from callreason.taxonomy import LEVELS

SUSPECT_PROBABILITY = 0.05
SUSPECT_COLUMNS = ("call_id", "summary", *(f"llm_{lv}" for lv in LEVELS), "llm_confidence",
                   *(f"model_{lv}" for lv in LEVELS), "model_prob_of_llm_path")
"""Columns of ``reports/<name>_suspect_labels.csv``: test rows whose LLM label looks wrong."""


def suspected_label_errors(prob_of_given_path: np.ndarray, confidence: np.ndarray,
                           file_median_confidence: float) -> np.ndarray:
    """``(n,)`` bool: the out-of-sample models find the given path unlikely and the LLM was unsure."""
    unsure = confidence < file_median_confidence if np.ptp(confidence) > 0 else np.ones(len(confidence), bool)
    return (np.asarray(prob_of_given_path) < SUSPECT_PROBABILITY) & unsure


def _quote(text: str, width: int = 100) -> list[str]:
    return ["  > " + line for line in textwrap.wrap(" ".join(str(text).split()), width)] or ["  > (empty)"]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def suspect_labels_frame(rows: pd.DataFrame, predicted: pd.DataFrame, prob_of_given_path: np.ndarray,
                         suspect: np.ndarray) -> pd.DataFrame:
    """The suspected rows with the LLM's label and confidence and the models' path (``SUSPECT_COLUMNS``)."""
    frame = pd.DataFrame({
        "call_id": rows["call_id"].to_numpy(), "summary": rows["summary"].to_numpy(),
        **{f"llm_{lv}": rows[lv].to_numpy() for lv in LEVELS},
        "llm_confidence": rows["confidence"].to_numpy(),
        **{f"model_{lv}": predicted[lv].to_numpy() for lv in LEVELS},
        "model_prob_of_llm_path": np.round(prob_of_given_path, 4),
    })
    return frame[suspect].sort_values("model_prob_of_llm_path", kind="stable").reset_index(drop=True)


def error_report_markdown(name: str, rows: pd.DataFrame, predicted: pd.DataFrame, prob_of_given_path: np.ndarray,
                          suspect: np.ndarray, macro_f1: dict[str, float], classes_scored: dict[str, int],
                          top_pairs: int = 10, examples: int = 3) -> str:
    """Markdown: per level, macro-F1 next to the suspected share of wrong labels, the most confused pairs
    split into rows whose label looks wrong and clean-looking rows, with call_id, LLM confidence and the
    full summary of a few examples, and what to do about each kind."""
    n = len(rows)
    lines = [
        f"# Errors on the test split ({name})", "",
        f"{n} test rows. Their labels are the LLM's: **{int(suspect.sum())} ({suspect.mean():.1%}) look wrong** "
        f"(the held-out models, which never saw them, give the LLM's path a probability below {SUSPECT_PROBABILITY}, "
        "and the LLM was less sure than usual). Part of every error count below is the labels', not the model's.",
        "", "| level | macro-F1 (classes in the test split) | errors | on rows whose label looks wrong | on clean-looking rows |",
        "|---|---|---:|---:|---:|",
    ]
    for level in LEVELS:
        wrong = rows[level].to_numpy() != predicted[level].to_numpy()
        lines.append(f"| {level} | {macro_f1[level]:.3f} ({classes_scored[level]} classes) | {int(wrong.sum())} | "
                     f"{int((wrong & suspect).sum())} | {int((wrong & ~suspect).sum())} |")
    lines += [
        "", "## What to do", "",
        f"1. **Labels that look wrong: re-prompt the LLM.** The {int(suspect.sum())} test rows are in "
        f"`reports/{name}_suspect_labels.csv` (all labeled rows, ranked, in `data/label_issues.parquet`). "
        "Send them back to the labeler and import its answers; a better test label makes the score more honest.",
        "2. **Pairs confused on clean-looking rows: look at the taxonomy and the labeling prompt.** The two labels "
        "overlap, or their definitions do not say what tells them apart: sharpen the definitions (in the taxonomy "
        "and the LLM prompt), merge the labels, or label more examples of the pair.",
    ]
    for level in LEVELS:
        actual, guessed = rows[level].tolist(), predicted[level].tolist()
        lines += ["", f"## {level}", ""]
        pairs = confused_pairs(actual, guessed, top=10 ** 6)
        if not pairs:
            lines.append("No confusions at this level.")
            continue
        members: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, (a, p) in enumerate(zip(actual, guessed)):
            if a != p:
                members[(a, p)].append(i)
        clean = sorted(((a, p, sum(not suspect[i] for i in members[(a, p)])) for a, p, _ in pairs),
                       key=lambda t: (-t[2], t[0], t[1]))
        clean = [t for t in clean if t[2] > 0][:top_pairs]
        lines += ["### Confused on clean-looking rows (taxonomy / prompt definitions)", ""]
        if clean:
            lines += ["| actual (LLM label) | predicted | clean-looking rows | all rows of the pair |",
                      "|---|---|---:|---:|"]
            lines += [f"| {_cell(a)} | {_cell(p)} | {k} | {len(members[(a, p)])} |" for a, p, k in clean]
            for a, p, _ in clean:
                lines += ["", f"#### {_cell(a)} → {_cell(p)}", ""]
                for i in [i for i in members[(a, p)] if not suspect[i]][:examples]:
                    row = rows.iloc[i]
                    lines += [f"- `{row['call_id']}` · LLM confidence {row['confidence']:.2f} · models' probability "
                              f"of the LLM path {prob_of_given_path[i]:.2f}", *_quote(row["summary"])]
        else:
            lines.append("None: every error at this level is on a row whose label looks wrong.")
        noisy = [i for a, p, _ in pairs for i in members[(a, p)] if suspect[i]]
        lines += ["", f"### Errors on rows whose label looks wrong (re-prompt): {len(noisy)}", ""]
        for i in sorted(noisy, key=lambda i: prob_of_given_path[i])[:examples]:
            row = rows.iloc[i]
            lines += [f"- `{row['call_id']}` · LLM said `{row[level]}` at confidence {row['confidence']:.2f}; the "
                      f"models say `{guessed[i]}` (probability of the LLM path {prob_of_given_path[i]:.3f})",
                      *_quote(row["summary"])]
    return "\n".join(lines) + "\n"
