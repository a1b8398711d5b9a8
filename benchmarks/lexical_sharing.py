"""Scoring with the TF-IDF features computed once for the three levels (as shipped) or once per level (before).

    python -m benchmarks.lexical_sharing shared [--models models/final] [--rows 2000]
    farm-bench -n 5 --timeout 600 --vs "python -m benchmarks.lexical_sharing per-level" -- \\
        python -m benchmarks.lexical_sharing shared        # paired whole-process timings, the ratio shared/per-level

Scores the first ``--rows`` summaries of the project's unlabeled pool with a run folder, the way pool scoring
and ``predict`` do (:meth:`callreason.predict.HierarchicalPredictor.level_probs`), and prints the seconds.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import callreason.modeling as modeling
from callreason.io import load_params
from callreason.predict import HierarchicalPredictor


def per_level_log_probas(models, texts):
    """What scoring did before: each level's companion transforms the texts itself."""
    return [None if model is None else model.log_proba(texts) for model in models]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("shared", "per-level"))
    parser.add_argument("--models", default="models/final")
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    if args.mode == "per-level":
        modeling.shared_log_probas = per_level_log_probas
    pool = pd.read_parquet(load_params("params.yaml")["data"]["unlabeled"])["summary"].tolist()[: args.rows]
    predictor = HierarchicalPredictor.load(args.models)
    start = time.perf_counter()
    predictor.level_probs(pool)
    print(f"{args.mode}: {len(pool)} rows scored in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
