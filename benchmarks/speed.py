"""Speed benchmark: the repo's level_3 training and inference against the seed recipe, same data and epochs.

    python -m benchmarks.speed [--dataset demo|banking77-1940] [--epochs 4] [--predict-rows 20000 200000]

Each measurement runs in its own subprocess so peak RSS is its own. Prints, per approach, training
samples/s (rows x epochs run / training seconds), wall time, peak RSS and level_3 macro-F1, and the
ratio; then inference throughput of one model against a bare forward loop over the same length-sorted
batches, of the three-level predictor with its shared frozen bottom layers run once vs once per
level, and peak RSS of ``predict_parquet`` at two input sizes (a tiny random
model, so the memory of the streaming code is what is measured, not the time of a big model).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from benchmarks.common import ROOT, default_params, load_benchmark, split_dataset


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_one(approach: str, dataset: str, epochs: int) -> dict:
    """Train level_3 with ``approach`` (``seed`` or ``pipeline``); returns the measurements."""
    from benchmarks.seed_recipe import seed_recipe_probs
    from callreason.modeling import load_classifier, predict_logits
    from callreason.params import settings_from_params
    from callreason.run import training_rows
    from callreason.training import fit_level

    params = default_params()
    params["epochs"] = epochs
    frame, taxonomy = load_benchmark(dataset, params)
    data = split_dataset(frame, taxonomy, params)
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    labels = taxonomy.labels["level_3"]
    work = Path(tempfile.mkdtemp())
    start = time.perf_counter()
    if approach == "seed":
        probs, metrics = seed_recipe_probs(train, val, test, "level_3", len(labels), params["model"]["base"], work,
                                           epochs=epochs, learning_rate=1e-4)
        train_seconds, epochs_run = metrics["train_runtime"], metrics["epoch"]
    else:
        summary = fit_level("level_3", train, val, labels, settings_from_params(params), work / "m", work / "live",
                            work / "scratch")
        model, tokenizer = load_classifier(work / "m")
        probs = predict_logits(model, tokenizer, test["summary"].tolist())
        train_seconds, epochs_run = summary["train_seconds"], summary["epochs_run"]
    wall = time.perf_counter() - start
    return {"approach": approach, "dataset": dataset, "train_rows": len(train), "epochs_run": float(epochs_run),
            "train_seconds": float(train_seconds), "wall_seconds": wall,
            "samples_per_second": len(train) * float(epochs_run) / float(train_seconds),
            "peak_rss_mb": peak_rss_mb(),
            "level_3_macro_f1": float(f1_score(test["level_3_id"], np.asarray(probs).argmax(1), average="macro"))}


def inference_one(dataset: str) -> dict:
    """Predictor throughput vs a bare forward loop (same batches) on the dataset's texts, with the base model."""
    import torch

    from callreason.modeling import build_classifier, length_sorted_batches, pad_batch, run_batched, tokenize

    params = default_params()
    frame, taxonomy = load_benchmark(dataset, params)
    texts = frame["summary"].tolist()
    model, tokenizer = build_classifier(params["model"]["base"], taxonomy.labels["level_3"], max_length=256)
    start = time.perf_counter()
    run_batched(model, tokenizer, texts, batch_size=64)
    ours = time.perf_counter() - start
    ids = tokenize(tokenizer, texts, 256)
    batches = [pad_batch([ids[i] for i in index], tokenizer.pad_token_id)
               for index in length_sorted_batches(np.array([len(t) for t in ids]), 64)]
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model.head(model.pool(**batch))
    bare = time.perf_counter() - start
    return {"rows": len(texts), "predictor_rows_per_second": len(texts) / ours, "bare_loop_rows_per_second": len(texts) / bare,
            "ratio": bare / ours}


def hierarchy_inference_one(dataset: str) -> dict:
    """Three-level predictor throughput with the shared frozen bottom layers run once per batch vs per level.

    The three level models are built from the base with ``train.frozen_layers`` left as they are and the
    layers above perturbed (as fine-tuning would), so only the bottom is shared, as in a trained run.
    """
    import torch

    from callreason.modeling import build_classifier, save_classifier, transformer_layers
    from callreason.predict import HierarchicalPredictor
    from callreason.run_folder import RunFolder
    from callreason.taxonomy import LEVELS

    params = default_params()
    frame, taxonomy = load_benchmark(dataset, params)
    texts = frame["summary"].tolist()
    frozen = params["train"]["frozen_layers"]
    work = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    for level in LEVELS:
        model, tokenizer = build_classifier(params["model"]["base"], taxonomy.labels[level], max_length=256)
        with torch.no_grad():
            for parameter in transformer_layers(model.encoder)[frozen:].parameters():
                parameter.add_(1e-3 * torch.randn_like(parameter))
        save_classifier(model, tokenizer, work / level)
    RunFolder(work).write_label_encoders(taxonomy)
    predictor = HierarchicalPredictor.load(work)
    shared_depth = predictor.shared_depth
    start = time.perf_counter()
    shared = predictor.level_logits(texts)
    shared_seconds = time.perf_counter() - start
    predictor.shared_depth = 0
    start = time.perf_counter()
    separate = predictor.level_logits(texts)
    separate_seconds = time.perf_counter() - start
    return {"rows": len(texts), "shared_depth": shared_depth, "shared_rows_per_second": len(texts) / shared_seconds,
            "per_level_rows_per_second": len(texts) / separate_seconds, "speedup": separate_seconds / shared_seconds,
            "max_abs_logit_difference": float(max(np.abs(a - b).max() for a, b in zip(shared, separate)))}


def predict_memory_one(rows: int) -> dict:
    """Peak RSS of ``predict_parquet`` over ``rows`` synthesized summaries with a tiny random model."""
    import pandas as pd

    from benchmarks.common import tiny_run_folder
    from callreason.predict import HierarchicalPredictor, predict_parquet

    work = Path(tempfile.mkdtemp())
    models, summaries = tiny_run_folder(work)
    frame = pd.DataFrame({"call_id": [f"S{i}" for i in range(rows)], "summary": summaries[np.arange(rows) % len(summaries)]})
    frame.to_parquet(work / "in.parquet", index=False, row_group_size=20_000)
    del frame, summaries
    baseline = peak_rss_mb()
    predictor = HierarchicalPredictor.load(models)
    start = time.perf_counter()
    predict_parquet(predictor, work / "in.parquet", work / "out.parquet", chunk_rows=20_000)
    return {"rows": rows, "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "rss_before_predict_mb": baseline}


def in_subprocess(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--one", *args], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--predict-rows", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, *rest = args.one
        result = {"train": lambda: train_one(rest[0], rest[1], int(rest[2])), "infer": lambda: inference_one(rest[0]),
                  "hierarchy": lambda: hierarchy_inference_one(rest[0]),
                  "memory": lambda: predict_memory_one(int(rest[0]))}[kind]()
        print(json.dumps(result))
        return
    results = {}
    if not args.skip_train:
        for approach in ("seed", "pipeline"):
            results[approach] = in_subprocess("train", approach, args.dataset, str(args.epochs))
            print(json.dumps(results[approach]), flush=True)
        ratio = results["pipeline"]["samples_per_second"] / results["seed"]["samples_per_second"]
        print(f"training throughput pipeline/seed: {ratio:.2f}x, "
              f"wall {results['seed']['wall_seconds'] / results['pipeline']['wall_seconds']:.2f}x faster", flush=True)
    results["inference"] = in_subprocess("infer", args.dataset)
    print(json.dumps(results["inference"]), flush=True)
    results["hierarchy_inference"] = in_subprocess("hierarchy", args.dataset)
    print(json.dumps(results["hierarchy_inference"]), flush=True)
    results["predict_memory"] = [in_subprocess("memory", str(rows)) for rows in args.predict_rows]
    for row in results["predict_memory"]:
        print(json.dumps(row), flush=True)
    Path("reports").mkdir(exist_ok=True)
    Path(f"reports/speed_{args.dataset}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
