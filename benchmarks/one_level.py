"""One level's classifier on a benchmark split, with params.yaml overrides: the quick way to measure a lever.

    python -m benchmarks.one_level --dataset banking77-1940 --level level_3 --set train.frozen_layers=4 --set epochs=3
    python -m benchmarks.one_level --dataset banking77-1940 --subset-seed 1     # another 1,940-row draw

Trains ``--level`` with ``fit_level`` exactly as the train stage does (params.yaml plus the ``--set``
overrides, parsed as YAML values like ``dvc exp run -S``), on the pipeline's own split, then prints one
JSON line: test macro-F1 of the blended model (``f1``) and of the transformer alone (``f1_transformer``),
accuracy, seconds, the best epoch and validation scores. ``--out`` appends that line to a file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from benchmarks.common import append_jsonl, default_params, load_benchmark, split_dataset
from callreason.io import parse_yaml
from callreason.modeling import load_classifier, predict_logits, run_batched
from callreason.params import settings_from_params
from callreason.run import training_rows
from callreason.taxonomy import LEVELS
from callreason.training import fit_level


def apply_override(params: dict, assignment: str) -> None:
    """``a.b=value`` -> ``params["a"]["b"] = parse_yaml(value)``."""
    key, _, value = assignment.partition("=")
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"--set {assignment}: params.yaml has no {key}")
    node[leaf] = parse_yaml(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="banking77-1940", choices=["demo", "banking77-1940", "banking77"])
    parser.add_argument("--level", default="level_3", choices=LEVELS)
    parser.add_argument("--subset-seed", type=int, default=0, help="which stratified 1,940-row draw")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params.yaml override")
    parser.add_argument("--out", type=Path, help="append the result line to this file")
    args = parser.parse_args()
    params = default_params()
    for assignment in args.set:
        apply_override(params, assignment)
    frame, taxonomy = load_benchmark(args.dataset, params, args.subset_seed)
    data = split_dataset(frame, taxonomy, params)
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    labels = test[f"{args.level}_id"].to_numpy()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        start = time.perf_counter()
        summary = fit_level(args.level, train, val, taxonomy.labels[args.level], settings_from_params(params), work / "model",
                            work / "live", work / "scratch")
        seconds = time.perf_counter() - start
        model, tokenizer = load_classifier(work / "model")
        texts = test["summary"].tolist()
        blended, transformer = predict_logits(model, tokenizer, texts), run_batched(model, tokenizer, texts)
    result = {
        "dataset": args.dataset, "subset_seed": args.subset_seed, "level": args.level, "set": args.set,
        "f1": round(float(f1_score(labels, blended.argmax(1), average="macro")), 4),
        "f1_transformer": round(float(f1_score(labels, transformer.argmax(1), average="macro")), 4),
        "accuracy": round(float(accuracy_score(labels, blended.argmax(1))), 4),
        "seconds": round(seconds, 1), "train_seconds": round(summary["train_seconds"], 1),
        "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
        "probe_val_f1": round(summary["linear_probe_val_macro_f1"], 4),
        "best_val_f1": round(summary["best_val_macro_f1"], 4), "lexical_weight": summary.get("lexical_weight"),
    }
    print(json.dumps(result), flush=True)
    if args.out:
        append_jsonl(args.out, result)


if __name__ == "__main__":
    main()
