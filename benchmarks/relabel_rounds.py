"""Is the relabel queue worth its labels? Simulated Phase 3 rounds: queue vs random rows, scored as the user's gain.

    python -m benchmarks.relabel_rounds                      # BANKING77-noisy and the demo, draw 0
    python -m benchmarks.relabel_rounds --datasets demo --sizes 100 200 --answers noisy

Per data set (the same draws as ``benchmarks.noisy``: the user's labeled file, an unlabeled pool whose gold
labels are hidden from the pipeline, and gold rows outside both to score on):

1. the pipeline (held-out run + refit, one level by default for speed: ``--levels``) trains on the labeled
   file; its final models score the external rows (round 0) and the pool;
2. for each strategy (``random`` with two seeds; the queue's ``margin`` / ``entropy`` / ``least_confidence``,
   with its ``level_2`` round-robin, and ``margin`` without it) and each size N, the N rows it picks from the
   pool are answered with their gold labels (``--answers noisy``: LLM-style noise, 15 % wrong), merged
   exactly as ``stages.import_labels`` and ``filter`` do (``merge_answers``, ``apply_relabels``), and the
   pipeline trains again and scores the same external rows;
3. the gain over round 0 per label, and the queue's gain divided by random's; and the errors caught: how many
   of the models' mistakes on the pool sit in the queue's top 10 % vs a random 10 %.

Writes one JSON line per run to ``--out`` and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import softmax

from benchmarks.common import ROOT, SHARED, append_jsonl
from benchmarks.label_noise import llm_label_noise
from benchmarks.noisy import make_case
from callreason.calibration import fit_temperature
from callreason.hierarchy import entropy
from callreason.io import load_params
from callreason.modeling import load_classifier, predict_logits
from callreason.params import settings_from_params
from callreason.pipeline.encode import encode
from callreason.pipeline.filter import select_confident
from callreason.pipeline.refit import refit
from callreason.pipeline.train import train_heldout
from callreason.pseudo_labels import empty_pseudo_labels
from callreason.relabel import apply_relabels, empty_relabeled, merge_answers
from callreason.run import training_rows, write_run_files
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.uncertainty import select_uncertain
from callreason.validation import validate_labeled

STRATEGIES = {"random-1": ("random", None), "random-2": ("random", None), "margin": ("margin", "level_2"),
              "margin-no-groups": ("margin", "none"), "entropy": ("entropy", "level_2"),
              "least_confidence": ("least_confidence", "level_2")}


def train_and_score(labeled: pd.DataFrame, taxonomy: Taxonomy, settings, level: str, external: pd.DataFrame,
                    pool: pd.DataFrame, work: Path) -> tuple[float, np.ndarray]:
    """filter -> encode -> held-out run -> refit (``level`` only); returns the final model's macro-F1 on
    ``external`` and its calibrated probabilities on ``pool`` (temperature from the held-out run's val)."""
    from sklearn.metrics import f1_score

    checked, _ = validate_labeled(labeled, taxonomy, "labeled", settings.data.max_summary_chars)
    kept, _ = select_confident(checked, checked.iloc[:0], settings, "labeled")
    data, _ = encode(kept, taxonomy, settings, "labeled")
    val = training_rows(data, ("val",))
    heldout_run, final = RunFolder(work / "heldout"), RunFolder(work / "final")
    train_heldout(data, taxonomy, settings, heldout_run, work / "scratch", levels=(level,))
    heldout, heldout_tok = load_classifier(heldout_run.level(level))
    temperature = fit_temperature(predict_logits(heldout, heldout_tok, val["summary"].tolist()), val[f"{level}_id"].to_numpy())
    write_run_files(heldout_run.root, taxonomy, settings, {lv: 1.0 for lv in LEVELS})  # one level: its own temperature
    refit(data, taxonomy, settings, {"promoted": False}, empty_pseudo_labels(), heldout_run, final, work / "scratch",
          levels=(level,))
    model, tokenizer = load_classifier(final.level(level))
    truth = taxonomy.ids(level, external[level].tolist())
    f1 = f1_score(truth, predict_logits(model, tokenizer, external["summary"].tolist()).argmax(1), average="macro")
    probs = softmax(predict_logits(model, tokenizer, pool["summary"].tolist()) / temperature, axis=1)
    return round(float(f1), 4), probs


def scored_pool(pool: pd.DataFrame, probs: np.ndarray, taxonomy: Taxonomy) -> pd.DataFrame:
    """``select_uncertain``'s input from level_3 probabilities (each leaf has one path, so p3 is the path posterior)."""
    leaves = np.asarray(taxonomy.labels["level_3"], dtype=object)
    order = np.argsort(-probs, axis=1)
    frame = pool[["call_id", "summary"]].copy()
    for rank, prefix in ((0, ""), (1, "second_")):
        paths = [taxonomy.path_of_leaf(leaf) for leaf in leaves[order[:, rank]]]
        for depth, level in enumerate(LEVELS):
            frame[f"{prefix}{level}"] = [p[depth] for p in paths]
    top = np.take_along_axis(probs, order[:, :2], axis=1)
    frame["path_prob"], frame["margin"], frame["entropy"] = top[:, 0], top[:, 0] - top[:, 1], entropy(probs)
    return frame


def pick(strategy: str, scored: pd.DataFrame, size: int, seed: int) -> list[str]:
    kind, group_by = STRATEGIES[strategy]
    if kind == "random":
        return scored["call_id"].sample(n=size, random_state=seed).tolist()
    queue, _ = select_uncertain(scored, [], kind, size, group_by)
    return queue["call_id"].tolist()


def errors_caught(scored: pd.DataFrame, gold: pd.DataFrame) -> dict[str, float]:
    """Share of the models' pool mistakes in each strategy's top 10 % vs a random 10 % (as a ratio)."""
    truth = scored[["call_id"]].merge(gold, on="call_id")["level_3"].to_numpy()
    wrong = scored["level_3"].to_numpy() != truth
    n = max(1, len(scored) // 10)
    base = wrong.mean()
    out = {}
    for strategy in STRATEGIES:
        if strategy.startswith("random"):
            continue
        picked = set(pick(strategy, scored, n, 0))
        out[strategy] = round(float(wrong[scored["call_id"].isin(picked).to_numpy()].mean() / max(base, 1e-9)), 2)
    return {"pool_error_rate": round(float(base), 4), **out}


def answers_for(ids: list[str], pool: pd.DataFrame, gold: pd.DataFrame, taxonomy: Taxonomy, noisy: bool,
                seed: int) -> pd.DataFrame:
    rows = pool[pool["call_id"].isin(ids)].merge(gold, on="call_id")
    rows = rows.assign(confidence=0.95)
    if noisy:
        rows, _ = llm_label_noise(rows, taxonomy, 0.15, seed)
    return rows.loc[:, ["call_id", "summary", *LEVELS, "confidence"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["banking77-noisy", "demo"])
    parser.add_argument("--draw", type=int, default=0)
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 200, 400])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--answers", choices=["gold", "noisy"], default="gold")
    parser.add_argument("--level", default="level_3", choices=LEVELS)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "relabel_rounds.jsonl")
    args = parser.parse_args()
    settings = settings_from_params(load_params(ROOT / "params.yaml"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for name in args.datasets:
        if name != "demo" and not (SHARED / "banking77").exists():
            print(f"{name}: skipped, {SHARED / 'banking77'} not found", flush=True)
            continue
        case = make_case(name, args.draw)
        pool, gold = case.pool[["call_id", "summary"]], case.pool[["call_id", *LEVELS]]
        with tempfile.TemporaryDirectory() as work:
            start_f1, probs = train_and_score(case.labeled, case.taxonomy, settings, args.level, case.external, pool,
                                              Path(work))
        scored = scored_pool(pool, probs, case.taxonomy)
        caught = errors_caught(scored, gold)
        print(f"{name}: round 0 macro-F1 {start_f1}; errors in the top 10 % vs a random 10 %: {caught}", flush=True)
        labeled_checked, _ = validate_labeled(case.labeled, case.taxonomy, "labeled")
        for strategy in args.strategies:
            for size in args.sizes:
                seed = 2 if strategy == "random-2" else 1
                ids = pick(strategy, scored, size, seed)
                merged, _ = merge_answers(empty_relabeled(), answers_for(ids, pool, gold, case.taxonomy,
                                                                         args.answers == "noisy", seed),
                                          labeled_checked, f"{strategy} round")
                relabeled, _ = validate_labeled(merged, case.taxonomy, "relabeled")
                labeled, _ = apply_relabels(labeled_checked, relabeled)
                with tempfile.TemporaryDirectory() as work:
                    f1, _ = train_and_score(labeled, case.taxonomy, settings, args.level, case.external,
                                            pool.iloc[:1], Path(work))
                result = {"dataset": name, "draw": args.draw, "answers": args.answers, "strategy": strategy,
                          "labels_added": size, "macro_f1": f1, "round0_macro_f1": start_f1,
                          "gain": round(f1 - start_f1, 4), "errors_caught": caught, "level": args.level}
                results.append(result)
                append_jsonl(args.out, result)
                print(json.dumps(result), flush=True)
    table = ["| data set | strategy | " + " | ".join(f"+{n} labels" for n in args.sizes) + " |",
             "|---|---|" + "---|" * len(args.sizes)]
    for name in dict.fromkeys(r["dataset"] for r in results):
        for strategy in args.strategies:
            cells = [next((f"{r['macro_f1']:.3f} ({r['gain']:+.3f})" for r in results if r["dataset"] == name
                           and r["strategy"] == strategy and r["labels_added"] == n), "") for n in args.sizes]
            table.append(f"| {name} | {strategy} | " + " | ".join(cells) + " |")
    text = "\n".join(table) + "\n"
    print(text)
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
