"""Semi-supervised benchmark: pseudo-labels, retraining, the relabel queue and suspect labels, all scored
against hidden gold labels.

    python -m benchmarks.semi_supervised [--dataset banking77-1940|banking77|demo] [--pool-rows 2000]
                                         [--out reports/semi_supervised.json]

One run on one data set (BANKING77 pool: ``../shared/benchmarks/banking77/unlabeled.parquet`` with its
hidden gold ``unlabeled_gold.parquet``; demo pool: ``data.unlabeled`` with ``data/demo_unlabeled_gold.parquet``):

1. train the three levels as configured in params.yaml (``pipeline_levels``), calibrate on val, score test;
2. score a seeded sample of the pool and select pseudo-labels exactly as the ``pseudo_label`` stage does;
   report coverage, precision vs the hidden gold (whole path), per-level accuracy, the stage's val-slice
   estimate, and precision/coverage at other thresholds from the same calibrated path probabilities;
3. retrain as the ``retrain`` stage does (gold train + down-weighted pseudo rows) and score the same test rows;
4. rank the pool rows not taken as pseudo-labels with each uncertainty ordering (``select_uncertain``) and
   count the model errors in the top 10% against a random 10% of the same rows;
5. corrupt 5% of the train+val labels on purpose and check how many ``find_label_issues`` ranks on top.
   The original labels may hold real noise too, so the precision of the top-k is a lower bound.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import (
    ROOT,
    SHARED,
    default_params,
    dump,
    load_benchmark,
    pipeline_levels,
    print_table,
    score,
    split_dataset,
    timed,
)
from callreason.label_issues import find_label_issues
from callreason.params import settings_from_params
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import (
    labeled_call_ids,
    precision_at_threshold,
    retrain_rows,
    score_unlabeled,
    select_pseudo_labels,
    val_estimate,
)
from callreason.run import training_rows
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.training import fit_level
from callreason.uncertainty import STRATEGIES, select_uncertain
from callreason.validation import validate_unlabeled

THRESHOLDS = (0.5, 0.7, 0.85, 0.9, 0.95)
QUEUE_SHARE = 0.10    # share of the non-pseudo-labeled pool rows in the relabel queue under test
CORRUPT_SHARE = 0.05  # share of train+val labels corrupted for the suspect-label check
GOLD = [f"gold_{lv}" for lv in LEVELS]


# --------------------------------------------------------------------------- data

def pool_sources(dataset: str, params: dict[str, Any]) -> tuple[Path, Path, Path]:
    """(raw labeled file, unlabeled pool, hidden gold of the pool) for ``dataset``."""
    if dataset == "demo":
        data = params["data"]
        return ROOT / data["labeled"], ROOT / data["unlabeled"], ROOT / "data" / "demo_unlabeled_gold.parquet"
    folder = SHARED / "banking77"
    return folder / "labeled.parquet", folder / "unlabeled.parquet", folder / "unlabeled_gold.parquet"


def load_pool(data: pd.DataFrame, dataset: str, params: dict[str, Any],
              pool_rows: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A seeded sample of ``pool_rows`` pool rows, validated like the pipeline (labeled call_ids dropped),
    and the hidden gold paths of the pool as ``call_id, gold_level_1..3``."""
    labeled_path, pool_path, gold_path = pool_sources(dataset, params)
    pool = pd.read_parquet(pool_path)
    if pool_rows and len(pool) > pool_rows:
        pool = pool.sample(n=pool_rows, random_state=int(params["seed"])).reset_index(drop=True)
    labeled = labeled_call_ids(data, pd.read_parquet(labeled_path), str(labeled_path))
    rows, counts = validate_unlabeled(pool, str(pool_path), labeled, params["data"]["max_summary_chars"])
    gold = pd.read_parquet(gold_path).astype({"call_id": str}).rename(columns=dict(zip(LEVELS, GOLD)))
    return rows, gold.loc[:, ["call_id", *GOLD]], counts


def with_gold(scored: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """``scored`` plus ``gold_level_*`` and ``correct`` (the whole decoded path equals the gold path)."""
    out = scored.merge(gold, on="call_id", how="left", validate="one_to_one")
    missing = int(out["gold_level_3"].isna().sum())
    if missing:
        raise ValueError(f"{missing} pool row(s) have no hidden gold label")
    out["correct"] = np.logical_and.reduce([out[lv] == out[g] for lv, g in zip(LEVELS, GOLD)])
    return out


# --------------------------------------------------------------------------- pseudo-labels

def gold_quality(rows: pd.DataFrame, pool_size: int) -> dict[str, Any]:
    """Coverage of ``rows`` in the pool, path precision and per-level accuracy against the hidden gold."""
    quality: dict[str, Any] = {"rows": int(len(rows)), "coverage": round(len(rows) / max(pool_size, 1), 4),
                               "precision": round(float(rows["correct"].mean()), 4) if len(rows) else None}
    for level, gold in zip(LEVELS, GOLD):
        quality[f"{level}_accuracy"] = round(float((rows[level] == rows[gold]).mean()), 4) if len(rows) else None
    return quality


def threshold_sweep(scored: pd.DataFrame, train_counts: dict, ratio: float | None, val_probs: list[np.ndarray],
                    val: pd.DataFrame, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Per threshold: all rows above it (no cap), the capped selection, and the val-slice estimate."""
    val_ids = val[[f"{lv}_id" for lv in LEVELS]].to_numpy()
    sweep = []
    for threshold in THRESHOLDS:
        kept, _ = select_pseudo_labels(scored, train_counts, threshold, ratio)
        sweep.append({
            "threshold": threshold,
            "uncapped": gold_quality(scored[scored["path_prob"] >= threshold], len(scored)),
            "capped": gold_quality(kept, len(scored)),
            "val_estimate": precision_at_threshold(val_probs, val_ids, taxonomy, threshold),
        })
    return sweep


# --------------------------------------------------------------------------- retrain

def retrain_levels(data: pd.DataFrame, kept: pd.DataFrame, taxonomy: Taxonomy, params: dict[str, Any],
                   work: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The retrain stage: gold train + pseudo rows, three levels, calibrated on val; test probabilities."""
    rows, counts = retrain_rows(data, kept, taxonomy, params["pseudo_label"]["weight"],
                                bool(params["train"].get("confidence_weighting")))
    val, test = training_rows(data, ("val",)), training_rows(data, ("test",))
    weights = rows["sample_weight"].to_numpy(np.float32)
    fits = {level: fit_level(level, rows, val, taxonomy.labels[level], settings_from_params(params), work / level,
                             work / "dvclive" / level, work / "scratch" / level, sample_weight=weights)
            for level in LEVELS}
    RunFolder(work).write_label_encoders(taxonomy)
    predictor = HierarchicalPredictor.load(work, batch_size=int(params["evaluate"]["batch_size"]), calibrated=False)
    predictor.fit_temperatures(val)
    return predictor.level_probs(test["summary"].tolist()), {**counts, "levels": fits}


# --------------------------------------------------------------------------- relabel queue

def queue_catch(scored: pd.DataFrame, kept: pd.DataFrame, group_by: str) -> list[dict[str, Any]]:
    """Model errors in the top ``QUEUE_SHARE`` of each ordering vs a random draw of the same size."""
    candidates = scored[~scored["call_id"].isin(set(kept["call_id"]))]
    if candidates.empty:
        return []
    k = max(1, math.ceil(QUEUE_SHARE * len(candidates)))
    error_rate = float((~candidates["correct"]).mean())
    is_error = dict(zip(candidates["call_id"], ~candidates["correct"]))
    rows = []
    for grouping in dict.fromkeys([group_by, "none"]):
        for strategy in STRATEGIES:
            queue, _ = select_uncertain(scored, kept["call_id"], strategy, k, grouping)
            caught = int(sum(is_error[c] for c in queue["call_id"]))
            expected = error_rate * len(queue)
            rows.append({"strategy": strategy, "group_by": grouping, "candidates": int(len(candidates)),
                         "k": int(len(queue)), "candidate_error_rate": round(error_rate, 4), "errors_caught": caught,
                         "random_expected": round(expected, 2),
                         "ratio": round(caught / expected, 3) if expected else None})
    return rows


# --------------------------------------------------------------------------- suspect labels

def corrupt_labels(data: pd.DataFrame, taxonomy: Taxonomy, share: float, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """Copy of ``data`` with ``share`` of the train+val rows moved to a random other level_3 leaf (one that
    has labeled rows, so no single-row class appears), level_1/level_2 set from the taxonomy."""
    rng = np.random.default_rng(seed)
    frame = data.reset_index(drop=True).copy()
    candidates = np.flatnonzero((frame["split"] != "test").to_numpy())
    picked = rng.choice(candidates, size=max(1, round(share * len(candidates))), replace=False)
    leaves = np.array(sorted(frame["level_3"].astype(str).unique()), dtype=object)
    for i in picked:
        new_leaf = str(rng.choice(leaves[leaves != frame.at[i, "level_3"]]))
        for level, value in zip(LEVELS, taxonomy.path_of_leaf(new_leaf)):
            frame.at[i, level] = value
    for level in LEVELS:
        frame[f"{level}_id"] = taxonomy.ids(level, frame[level].tolist())
    return frame, set(frame.loc[picked, "call_id"].astype(str))


def suspect_check(data: pd.DataFrame, taxonomy: Taxonomy, params: dict[str, Any]) -> dict[str, Any]:
    """``find_label_issues`` on deliberately corrupted labels: precision@k (k = corrupted) and recall@2k."""
    corrupted, bad_ids = corrupt_labels(data, taxonomy, CORRUPT_SHARE, int(params["seed"]))
    cfg = params["label_issues"]
    (issues, counts), seconds = timed(
        lambda: find_label_issues(corrupted, taxonomy, folds=cfg["folds"], c=cfg["c"], seed=int(params["seed"])))
    hit = issues["call_id"].astype(str).isin(bad_ids).to_numpy()  # issues are most suspect first
    k = len(bad_ids)
    return {"rows": int(len(corrupted)), "corrupted": k, "precision_at_k": round(float(hit[:k].mean()), 4),
            "recall_at_2k": round(float(hit[: 2 * k].sum() / k), 4),
            "flagged": int(issues["flagged"].sum()),
            "corrupted_flagged_recall": round(float(issues.loc[hit, "flagged"].mean()), 4),
            "seconds": seconds, "label_issues": counts}


# --------------------------------------------------------------------------- report

def fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    """The pseudo-label, threshold, queue and suspect tables (test metrics are printed by ``print_table``)."""
    p = result["pseudo_labels"]
    g, v = p["gold"], p["val_estimate"]
    cells = [p["selection"]["rows_scored"], p["pool_path_accuracy"], g["rows"], g["coverage"], g["precision"],
             *(g[f"{lv}_accuracy"] for lv in LEVELS), v["precision"], v["coverage"]]
    lines = [f"### pseudo-labels (min_confidence {p['min_confidence']}, cap ratio {p['max_per_class_ratio']})", "",
             "| pool rows | pool path acc | kept | coverage | precision (gold path) | L1 acc | L2 acc | L3 acc "
             "| val precision | val coverage |",
             "|---|---|---|---|---|---|---|---|---|---|",
             "| " + " | ".join(fmt(c) for c in cells) + " |", "",
             "### thresholds (same calibrated path probabilities)", "",
             "| threshold | coverage | precision | capped coverage | capped precision | val coverage | val precision |",
             "|---|---|---|---|---|---|---|"]
    for row in result["thresholds"]:
        u, c, e = row["uncapped"], row["capped"], row["val_estimate"]
        lines.append(f"| {row['threshold']} | {fmt(u['coverage'])} | {fmt(u['precision'])} | {fmt(c['coverage'])} | "
                     f"{fmt(c['precision'])} | {fmt(e['coverage'])} | {fmt(e['precision'])} |")
    lines += ["", f"### relabel queue: model errors in the top {QUEUE_SHARE:.0%} of the non-pseudo-labeled pool", "",
              "| strategy | group_by | k | errors caught | random expected | ratio |", "|---|---|---|---|---|---|"]
    for row in result["relabel_queue"]:
        lines.append(f"| {row['strategy']} | {row['group_by']} | {row['k']} | {row['errors_caught']} | "
                     f"{row['random_expected']:.1f} | {fmt(row['ratio'], 2)} |")
    s = result["suspects"]
    lines += ["", f"### suspect labels ({CORRUPT_SHARE:.0%} of train+val corrupted on purpose)", "",
              "| rows | corrupted (k) | precision@k | recall@2k | flagged | corrupted rows flagged |",
              "|---|---|---|---|---|---|",
              f"| {s['rows']} | {s['corrupted']} | {fmt(s['precision_at_k'])} | {fmt(s['recall_at_2k'])} | "
              f"{s['flagged']} | {fmt(s['corrupted_flagged_recall'])} |"]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


# --------------------------------------------------------------------------- run

def run(dataset: str, pool_rows: int) -> dict[str, Any]:
    params = default_params()
    cfg = params["pseudo_label"]
    frame, taxonomy = load_benchmark(dataset, params)
    data = split_dataset(frame, taxonomy, params)
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    rows, gold, input_counts = load_pool(data, dataset, params, pool_rows)
    print(f"{dataset}: train {len(train)}, val {len(val)}, test {len(test)}, pool {len(rows)}", flush=True)
    result: dict[str, Any] = {"dataset": dataset, "pool_input": input_counts}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (probs, summaries), seconds = timed(lambda: pipeline_levels(data, taxonomy, params, work / "evaluate"))
        table = [{"approach": "evaluate (gold train)", "metrics": score(test, probs, taxonomy), "seconds": seconds,
                  "train": summaries}]
        predictor = HierarchicalPredictor.load(work / "evaluate", batch_size=int(cfg["batch_size"]), calibrated=False)
        calibration = predictor.fit_temperatures(val)
        scored, seconds = timed(lambda: score_unlabeled(predictor, rows, cfg["chunk_rows"], progress=False))
        scored = with_gold(scored, gold)
        train_counts = train["level_3"].value_counts().to_dict()
        kept, selection = select_pseudo_labels(scored, train_counts, cfg["min_confidence"], cfg["max_per_class_ratio"])
        result["pseudo_labels"] = {
            "min_confidence": cfg["min_confidence"], "max_per_class_ratio": cfg["max_per_class_ratio"],
            "selection": selection, "gold": gold_quality(kept, len(scored)), "score_seconds": seconds,
            "val_estimate": val_estimate(predictor, val, float(cfg["min_confidence"])),
            "pool_path_accuracy": round(float(scored["correct"].mean()), 4), "calibration": calibration,
        }
        val_probs = predictor.level_probs(val["summary"].tolist())
        result["thresholds"] = threshold_sweep(scored, train_counts, cfg["max_per_class_ratio"], val_probs, val,
                                               taxonomy)
        if len(kept):
            (probs, fit), seconds = timed(lambda: retrain_levels(data, kept, taxonomy, params, work / "retrain"))
            table.append({"approach": f"retrain (+{len(kept)} pseudo)", "metrics": score(test, probs, taxonomy),
                          "seconds": seconds, "train": fit})
        else:
            print("retrain: skipped, no pseudo-label reached min_confidence", flush=True)
    result["test"] = table
    result["relabel_queue"] = queue_catch(scored, kept, params["select_uncertain"]["group_by"])
    result["suspects"] = suspect_check(data, taxonomy, params)
    print_table(table, f"{dataset}: same {len(test)} gold test rows")
    result["markdown"] = markdown(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77-1940", choices=["banking77-1940", "banking77", "demo"])
    parser.add_argument("--pool-rows", type=int, default=2000, help="seeded sample of the unlabeled pool (0 = all)")
    parser.add_argument("--out", type=Path, default=Path("reports/semi_supervised.json"))
    args = parser.parse_args()
    if args.dataset != "demo" and not (SHARED / "banking77").exists():
        print(f"{args.dataset}: skipped, {SHARED / 'banking77'} not found")
        return
    dump(run(args.dataset, args.pool_rows), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
