"""Quality benchmark: per-level macro-F1, path accuracy and wall time of four approaches on one split.

    python -m benchmarks.quality [--datasets demo banking77-1940 banking77] [--skip-seed] [--out reports/quality.json]

(a) TF-IDF + logistic regression, (b) frozen embeddings + logistic regression, (c) the seed
recipe, (d) the pipeline's train stages as configured in params.yaml. (a), (b), (d) decode jointly
over the taxonomy's valid paths; (c) is the seed's independent per-level argmax. BANKING77 comes from
``../shared/benchmarks`` and is skipped when that folder is absent.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import (
    SHARED,
    default_params,
    dump,
    frozen_embeddings_lr,
    load_benchmark,
    pipeline_levels,
    print_table,
    score,
    split_dataset,
    tfidf_lr,
    timed,
)
from benchmarks.seed_recipe import seed_recipe_probs
from callreason.hierarchy import independent_argmax
from callreason.metrics import level_scores
from callreason.run import training_rows
from callreason.taxonomy import LEVELS


def seed_metrics(test, probs, taxonomy) -> dict:
    """The seed's own decoding: each level's argmax, no hierarchy."""
    predicted = independent_argmax(probs)
    true = test[[f"{lv}_id" for lv in LEVELS]].to_numpy()
    metrics = {lv: level_scores(true[:, d], predicted[:, d], len(taxonomy.labels[lv])) for d, lv in enumerate(LEVELS)}
    metrics["path"] = {"accuracy": float((predicted == true).all(1).mean())}
    return metrics


def run_dataset(name: str, skip_seed: bool) -> list[dict]:
    params = default_params()
    frame, taxonomy = load_benchmark(name, params)
    data = split_dataset(frame, taxonomy, params)
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    train_and_val = data[data["split"] != "test"]
    base = params["model"]["base"]
    print(f"{name}: train {len(train)}, val {len(val)}, test {len(test)}, "
          f"classes {[len(taxonomy.labels[lv]) for lv in LEVELS]}", flush=True)
    rows = []
    probs, seconds = timed(lambda: tfidf_lr(train_and_val, test, taxonomy))
    rows.append({"approach": "(a) TF-IDF + LR", "metrics": score(test, probs, taxonomy), "seconds": seconds})
    probs, seconds = timed(lambda: frozen_embeddings_lr(train_and_val, test, taxonomy, base))
    rows.append({"approach": "(b) frozen embeddings + LR", "metrics": score(test, probs, taxonomy), "seconds": seconds})
    with tempfile.TemporaryDirectory() as work:
        if not skip_seed:
            def seed_all():
                return [seed_recipe_probs(train, val, test, lv, len(taxonomy.labels[lv]), base, Path(work) / "seed" / lv,
                                          epochs=6, learning_rate=1e-4)[0] for lv in LEVELS]
            probs, seconds = timed(seed_all)
            rows.append({"approach": "(c) seed recipe (fresh head, lr 1e-4, 6 epochs)",
                         "metrics": seed_metrics(test, probs, taxonomy), "seconds": seconds})
        (probs, summaries), seconds = timed(lambda: pipeline_levels(data, taxonomy, params, Path(work) / "pipeline"))
        rows.append({"approach": "(d) pipeline (params.yaml)", "metrics": score(test, probs, taxonomy),
                     "seconds": seconds, "train": summaries})
    print_table(rows, f"{name} ({len(train)} train / {len(val)} val / {len(test)} test rows)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["demo", "banking77-1940", "banking77"])
    parser.add_argument("--skip-seed", action="store_true", help="leave out (c), the slowest")
    parser.add_argument("--out", type=Path, default=Path("reports/quality.json"))
    args = parser.parse_args()
    results = {}
    for name in args.datasets:
        if name != "demo" and not (SHARED / "banking77").exists():
            print(f"{name}: skipped, {SHARED / 'banking77'} not found")
            continue
        results[name] = run_dataset(name, args.skip_seed)
        dump(results, args.out)


if __name__ == "__main__":
    main()
