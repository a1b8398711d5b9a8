"""Pseudo-labels for unlabeled summaries, and the training rows of the retrain stage.

Flow: the evaluated models (with the temperatures fitted on the val split) score every unlabeled
summary by joint decoding over the taxonomy's valid paths (:func:`score_unlabeled`); rows whose
calibrated path probability reaches ``pseudo_label.min_confidence`` are kept, most confident
first, at most ``max_per_class_ratio`` x the class's gold train rows per level_3 class
(:func:`select_pseudo_labels`), so classes the model is already good at do not flood the set.
``retrain`` then fits the three levels on gold train rows + down-weighted pseudo rows
(:func:`retrain_rows`), after :func:`assert_no_leakage` proved no val/test call is among them.

Which unlabeled rows are never pseudo-labeled: any call_id of the raw labeled file
(``data.labeled``) as well as of the prepared dataset. The raw file matters: a call whose LLM
label was dropped as low-confidence by ``filter`` is not in the prepared dataset, yet it is a
labeled call (and the user already has a doubtful label for it), so it must not come back
through the unlabeled door under a model-made label.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import pandas as pd

from callreason.distributed import sharded_apply
from callreason.errors import InputError
from callreason.hierarchy import entropy, joint_decode, top2_margin
from callreason.io import read_json
from callreason.predict import paths_frame
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import normalized_call_ids, validate_unlabeled

if TYPE_CHECKING:
    from callreason.params import Settings

PSEUDO_COLUMNS = ("call_id", "summary", *LEVELS, *(f"{lv}_prob" for lv in LEVELS), "path_prob", "model_version")
"""Columns of a set of pseudo rows to train on (``data/promoted_pseudo_labels.parquet``)."""
POOL_LABEL_COLUMNS = (*PSEUDO_COLUMNS, "used_for_training")
"""Columns of ``data/pseudo_labels.parquet``: every pool row whose calibrated path probability reaches the
threshold, labeled by the shipped models; ``used_for_training``: the row is among the pseudo rows the final
models were trained on (only when ``retrain`` was promoted)."""



def empty_pseudo_labels() -> pd.DataFrame:
    """A frame with ``PSEUDO_COLUMNS`` and no rows (fixed dtypes, so it is written the same every time)."""
    return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("prob") else "str") for c in PSEUDO_COLUMNS})


SECOND_COLUMNS = tuple(f"second_{lv}" for lv in LEVELS)
SCORED_COLUMNS = (
    "call_id", "summary", *LEVELS, *(f"{lv}_prob" for lv in LEVELS), "path_prob", "margin", "entropy",
    *(f"{lv}_max_prob" for lv in LEVELS), *SECOND_COLUMNS, "second_path_prob",
    *(f"third_{lv}" for lv in LEVELS), "third_path_prob", "model_version",
)
"""Columns of ``data/unlabeled_scored.parquet``: the decoded path with its marginals and path probability,
the top-2 path margin and the path-posterior entropy, each level classifier's own top probability, and the
second and third paths (for ``select_uncertain``'s hesitation level and grouping, and the labeler's export)."""

TRAINING_COLUMNS = ("call_id", "summary", *LEVELS, *(f"{lv}_id" for lv in LEVELS), "confidence",
                    "source", "sample_weight")


class DataLeakageError(InputError):
    """A held-out (val/test) call is among the training rows."""


# --------------------------------------------------------------------------- which rows to score

def labeled_call_ids(prepared: pd.DataFrame, raw_labeled: pd.DataFrame, raw_source: str,
                     answered: Iterable[str] = ()) -> set[str]:
    """call_ids never to pseudo-label: every row of the prepared dataset (all splits), of the raw labeled
    file (including rows ``filter`` dropped) and the ``answered`` ones (imported LLM answers), normalised
    as the validators do."""
    ids = set(prepared["call_id"].astype(str)) | {str(x) for x in answered}
    if "call_id" not in [str(c) for c in raw_labeled.columns]:
        raise InputError(f"{raw_source}: missing column 'call_id'")
    ids.update(normalized_call_ids(raw_labeled, raw_source))
    return ids


def unlabeled_pool(pool: pd.DataFrame, dataset: pd.DataFrame, labeled: pd.DataFrame, answered: Iterable[str],
                   settings: Settings, sources: tuple[str, str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The usable pool rows, less every call_id that is labeled: in the prepared dataset, in the raw labeled
    file (rows ``filter`` dropped too) or answered by the LLM. ``sources``: (labeled file, pool file)."""
    known = labeled_call_ids(dataset, labeled, sources[0], answered)
    return validate_unlabeled(pool, sources[1], known, settings.data.max_summary_chars)


# --------------------------------------------------------------------------- scoring

def score_paths(call_ids: list[str], texts: list[str], level_probs: list[np.ndarray],
                taxonomy: Taxonomy) -> pd.DataFrame:
    """``SCORED_COLUMNS`` (less ``model_version``) from calibrated per-level probabilities.

    ``level_probs`` ``[p1 (n, k1), p2 (n, k2), p3 (n, k3)]``. The path, its level marginals and
    ``path_prob`` are exactly those of :func:`callreason.predict.paths_frame` (what ``predict`` writes).
    """
    frame = paths_frame(call_ids, level_probs, taxonomy)
    frame.insert(1, "summary", list(texts))
    _, posterior = joint_decode(level_probs, taxonomy.paths)
    frame["margin"] = top2_margin(posterior)
    frame["entropy"] = entropy(posterior)
    for level, probs in zip(LEVELS, level_probs):
        frame[f"{level}_max_prob"] = np.asarray(probs, dtype=np.float64).max(axis=1)
    rows = np.arange(len(frame))
    ranked = np.argsort(-posterior, axis=1, kind="stable")  # [:, 0] is joint_decode's argmax
    for rank, prefix in ((1, "second"), (2, "third")):
        if posterior.shape[1] > rank:
            for depth, level in enumerate(LEVELS):
                labels = np.asarray(taxonomy.labels[level], dtype=object)
                frame[f"{prefix}_{level}"] = labels[taxonomy.paths[ranked[:, rank], depth]]
            frame[f"{prefix}_path_prob"] = posterior[rows, ranked[:, rank]]
        else:  # a taxonomy with fewer paths has no runner-up
            for level in LEVELS:
                frame[f"{prefix}_{level}"] = None
            frame[f"{prefix}_path_prob"] = 0.0
    return frame


def score_unlabeled(predictor: Any, rows: pd.DataFrame, chunk_rows: int, progress: bool = True) -> pd.DataFrame:
    """Score ``rows`` (``call_id``, ``summary``) with a ``HierarchicalPredictor`` ``chunk_rows`` at a time,
    so tokens and logits of one chunk only are in memory. Under ``accelerate launch`` each chunk is
    split across the processes and gathered in order. Returns ``SCORED_COLUMNS`` less ``model_version``."""
    from tqdm.auto import tqdm

    if int(chunk_rows) < 1:
        raise InputError(f"params.yaml: pseudo_label.chunk_rows must be a positive integer, got {chunk_rows!r}")
    parts = []
    with tqdm(total=len(rows), desc="score unlabeled", unit="row", disable=not progress) as bar:
        for start in range(0, len(rows), int(chunk_rows)):
            chunk = rows.iloc[start : start + int(chunk_rows)]
            texts = chunk["summary"].tolist()
            parts.append(score_paths(chunk["call_id"].tolist(), texts, sharded_apply(predictor.level_probs, texts),
                                     predictor.taxonomy))
            bar.update(len(chunk))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- selection

def _check_fraction(value: Any, name: str, low_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 < value <= 1 if low_open else 0 <= value <= 1):
        bound = "(0, 1]" if low_open else "[0, 1]"
        raise InputError(f"params.yaml: {name} must be a number in {bound}, got {value!r}")
    return float(value)


def class_caps(gold_train_counts: Mapping[str, int], ratio: float | None) -> dict[str, int] | None:
    """Max pseudo rows per level_3 class: ``floor(ratio x gold train rows)``; ``None`` = no cap.

    A class absent from ``gold_train_counts`` (no gold train rows) gets cap 0: the models never saw it.
    """
    if ratio is None:
        return None
    if not isinstance(ratio, numbers.Real) or isinstance(ratio, bool) or not math.isfinite(ratio) or ratio < 0:
        raise InputError(f"params.yaml: pseudo_label.max_per_class_ratio must be a number >= 0 or null (no cap), "
                         f"got {ratio!r}")
    return {str(k): int(math.floor(float(ratio) * int(v) + 1e-9)) for k, v in gold_train_counts.items()}


def select_pseudo_labels(
    scored: pd.DataFrame, gold_train_counts: Mapping[str, int], min_confidence: float,
    max_per_class_ratio: float | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows of ``scored`` with ``path_prob >= min_confidence``, most confident first, capped per level_3
    class by :func:`class_caps`. Returns (selected rows in that order, counts)."""
    threshold = _check_fraction(min_confidence, "pseudo_label.min_confidence", low_open=True)
    caps = class_caps(gold_train_counts, max_per_class_ratio)
    confident = scored[scored["path_prob"] >= threshold]
    ordered = confident.sort_values(["path_prob", "call_id"], ascending=[False, True], kind="stable")
    if caps is None:
        kept = ordered
    else:
        rank_in_class = ordered.groupby("level_3", sort=False).cumcount().to_numpy()
        cap = ordered["level_3"].map(caps).fillna(0).to_numpy()
        kept = ordered[rank_in_class < cap]
    kept = kept.reset_index(drop=True)
    over = confident["level_3"].value_counts()
    capped = [c for c, n in over.items() if caps is not None and n > caps.get(str(c), 0)]
    counts = {
        "rows_scored": int(len(scored)),
        "above_threshold": int(len(confident)),
        "kept": int(len(kept)),
        "dropped_by_cap": int(len(confident) - len(kept)),
        "classes_capped": len(capped),
        "classes_kept": int(kept["level_3"].nunique()),
        "kept_per_level_1": {str(k): int(v) for k, v in kept["level_1"].value_counts().sort_index().items()},
    }
    return kept, counts


def precision_at_threshold(level_probs: list[np.ndarray], true_ids: np.ndarray, taxonomy: Taxonomy,
                           threshold: float) -> dict[str, Any]:
    """How pseudo-labels at ``threshold`` would fare on labeled rows (use the val split).

    ``coverage``: share of rows with calibrated ``path_prob >= threshold``; ``precision``: share of
    those whose whole decoded path equals the label (``None`` when none reaches the threshold).
    The labels are the LLM's, and the temperatures were fitted on val, so read it as an optimistic,
    LLM-agreement estimate.
    """
    true_ids = np.asarray(true_ids, dtype=np.int64).reshape(-1, len(LEVELS))
    if len(true_ids) == 0:
        return {"rows": 0, "coverage": None, "precision": None, "path_accuracy": None}
    index, posterior = joint_decode(level_probs, taxonomy.paths)
    path_prob = posterior[np.arange(len(index)), index]
    correct = (taxonomy.paths[index] == true_ids).all(axis=1)
    covered = path_prob >= threshold
    return {
        "rows": int(len(true_ids)),
        "rows_above_threshold": int(covered.sum()),
        "coverage": round(float(covered.mean()), 4),
        "precision": round(float(correct[covered].mean()), 4) if covered.any() else None,
        "path_accuracy": round(float(correct.mean()), 4),
    }


def val_estimate(predictor: Any, val_rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """:func:`precision_at_threshold` of ``predictor`` (calibrated) on the labeled ``val_rows``."""
    if len(val_rows) == 0:
        return precision_at_threshold([], np.zeros((0, len(LEVELS))), predictor.taxonomy, threshold)
    return precision_at_threshold(predictor.level_probs(val_rows["summary"].tolist()),
                                  val_rows[[f"{lv}_id" for lv in LEVELS]].to_numpy(), predictor.taxonomy, threshold)


def calibration_errors(evaluate_metrics: str | Path) -> dict[str, Any]:
    """``test_ece_before`` / ``test_ece_after`` per level from ``metrics/evaluate.json`` ({} if absent)."""
    path = Path(evaluate_metrics)
    if not path.exists():
        return {}
    calibration = read_json(path).get("calibration", {})
    return {key: calibration[key] for key in ("test_ece_before", "test_ece_after") if key in calibration}


# --------------------------------------------------------------------------- retrain rows

def assert_no_leakage(train_rows: pd.DataFrame, held_out: Mapping[str, Iterable[str]]) -> None:
    """Raise :class:`DataLeakageError` if a call_id of ``train_rows`` is in any held-out set
    (``{"test": ids, "val": ids}``) or appears twice in ``train_rows`` (gold and pseudo)."""
    ids = train_rows["call_id"].astype(str)
    repeated = sorted(set(ids[ids.duplicated()]))
    if repeated:
        raise DataLeakageError(f"{len(repeated)} call_id(s) appear twice in the retrain training rows "
                               f"(gold and pseudo?): {', '.join(repeated[:5])}; re-run `dvc repro pseudo_label`")
    train_ids = set(ids)
    for name, held in held_out.items():
        overlap = sorted(train_ids & {str(x) for x in held})
        if overlap:
            more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
            raise DataLeakageError(f"{len(overlap)} call_id(s) of the {name} split are in the retrain training rows: "
                                   f"{', '.join(overlap[:5])}{more}; the {name} score would be inflated. "
                                   "Re-run `dvc repro pseudo_label` (it excludes every labeled call_id)")


def pseudo_training_rows(pseudo: pd.DataFrame, taxonomy: Taxonomy, weight: float) -> pd.DataFrame:
    """``TRAINING_COLUMNS`` for pseudo rows: label ids from the taxonomy, ``confidence`` = ``path_prob``."""
    bad = [(c, lv) for lv in LEVELS for c in set(pseudo[lv]) if c not in set(taxonomy.labels[lv])]
    if bad:
        raise InputError(f"data/pseudo_labels.parquet: labels not in the taxonomy ({bad[:3]}); "
                         "re-run `dvc repro pseudo_label` after changing the taxonomy")
    rows = pseudo.loc[:, ["call_id", "summary", *LEVELS]].copy()
    for level in LEVELS:
        rows[f"{level}_id"] = taxonomy.ids(level, rows[level].tolist())
    rows["confidence"] = pseudo["path_prob"].to_numpy(np.float64)
    rows["source"] = "pseudo"
    rows["sample_weight"] = float(weight)
    return rows.loc[:, list(TRAINING_COLUMNS)]


def retrain_rows(
    dataset: pd.DataFrame, pseudo: pd.DataFrame, taxonomy: Taxonomy, pseudo_weight: float,
    confidence_weighting: bool = False, gold_sides: tuple[str, ...] = ("train",),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Gold rows of ``gold_sides`` (weight 1, or their LLM confidence when ``train.confidence_weighting`` is
    on, as in ``train``) + pseudo rows (weight ``pseudo_weight``), checked by :func:`assert_no_leakage`
    against the other split sides (the held-out ones). Returns (rows in ``TRAINING_COLUMNS``, counts)."""
    ok = isinstance(pseudo_weight, numbers.Real) and not isinstance(pseudo_weight, bool)
    if not ok or not math.isfinite(pseudo_weight) or pseudo_weight <= 0:
        raise InputError(f"params.yaml: pseudo_label.weight must be a number > 0, got {pseudo_weight!r}")
    gold = dataset[dataset["split"].isin(gold_sides)].copy()
    gold["source"] = "gold"
    gold["sample_weight"] = gold["confidence"].to_numpy(np.float64) if confidence_weighting else 1.0
    rows = pd.concat([gold.loc[:, list(TRAINING_COLUMNS)], pseudo_training_rows(pseudo, taxonomy, pseudo_weight)],
                     ignore_index=True)
    assert_no_leakage(rows, {side: dataset.loc[dataset["split"] == side, "call_id"]
                             for side in ("test", "val") if side not in gold_sides})
    counts = {"gold_rows": int(len(gold)), "pseudo_rows": int(len(pseudo)), "pseudo_weight": float(pseudo_weight),
              "gold_weighting": "confidence" if confidence_weighting else "1",
              "pseudo_model_version": (str(pseudo["model_version"].iat[0])
                                       if len(pseudo) and "model_version" in pseudo else None)}
    return rows, counts


def retrain_set(data: pd.DataFrame, scored: pd.DataFrame, suspects: Iterable[str], taxonomy: Taxonomy,
                settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """What ``retrain`` trains on: the train split less ``suspects`` (the rows the held-out run trained on) +
    the confident pseudo-labels of ``scored``, capped per level_3 class by those gold rows
    (:func:`select_pseudo_labels`), weighted as :func:`retrain_rows` does. Returns (rows, pseudo rows, counts)."""
    cfg = settings.pseudo_label
    gold = data[~(data["call_id"].isin(set(suspects)) & data["split"].eq("train"))]
    train_counts = gold.loc[gold["split"].eq("train"), "level_3"].value_counts().to_dict()
    pseudo, _ = select_pseudo_labels(scored, train_counts, cfg.min_confidence, cfg.max_per_class_ratio)
    rows, counts = retrain_rows(gold, pseudo, taxonomy, cfg.weight, settings.train.confidence_weighting)
    return rows, pseudo, counts
