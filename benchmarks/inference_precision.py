"""Inference in float32 vs bf16 autocast: what the passes without gradients gain on a CPU with native bf16.

    python -m benchmarks.inference_precision [--models models/final] [--rows 1000] [--repeats 2]

On a CPU with AVX512-BF16/AMX, ``train.bf16: auto`` trains in bf16, and a model trained so runs its passes
without gradients (frozen bottom, probe features, neighbour index, evaluation, pool scoring, predict) in bf16
too (``callreason.modeling.encoder_precision``). This measures, for the level_3 encoder of ``--models`` over
``--rows`` pool summaries: seconds per precision (best of ``--repeats``, length-sorted batches of 64, as the
pipeline runs them) and how far the bf16 pooled vectors are from the float32 ones (smallest cosine, largest
absolute difference). On a CPU without native bf16 it says so and stops (bf16 is ~20x slower there).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch

from benchmarks.common import ROOT
from callreason.io import load_params
from callreason.modeling import run_batched
from callreason.predict import HierarchicalPredictor
from callreason.training import bf16_enabled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(ROOT / "models" / "final"))
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not bf16_enabled("auto"):
        raise SystemExit("this CPU has no native bf16 (AVX512-BF16/AMX): nothing to measure")
    pool = pd.read_parquet(ROOT / load_params(ROOT / "params.yaml")["data"]["unlabeled"])["summary"]
    texts = pool.head(args.rows).tolist()
    model, tokenizer = HierarchicalPredictor.load(args.models, calibrated=False).models[-1]
    model.classifier_config.bf16 = False  # float32 unless asked: a folder trained in bf16 would otherwise run in it
    seconds, pooled = {}, {}
    for name, dtype in (("float32", None), ("bf16", torch.bfloat16)):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            pooled[name] = run_batched(model, tokenizer, texts, 64, output="pooled", autocast_dtype=dtype)
            best = min(best, time.perf_counter() - start)
        seconds[name] = round(best, 2)
    a, b = pooled["float32"], pooled["bf16"]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(json.dumps({"models": args.models, "rows": len(texts), "seconds": seconds,
                      "bf16_speedup": round(seconds["float32"] / seconds["bf16"], 2),
                      "min_cosine": round(float(cosine.min()), 6),
                      "max_abs_difference": round(float(np.abs(a - b).max()), 5)}))


if __name__ == "__main__":
    main()
