"""CPU inference: PyTorch vs ONNX Runtime vs ONNX Runtime int8, on the demo's held-out run.

    python -m benchmarks.onnx_speed [--models models/heldout] [--rows 2000] [--out reports/onnx_speed.json]

Exports ``--models`` (the held-out run: its test split is rows it never saw, so its macro-F1 is honest) to
float32 and int8 ONNX folders in a temporary directory, then, each backend in its own subprocess (so peak RSS
is its own): macro-F1 per level of the predicted paths on the test split of ``data/prepared/dataset.parquet``,
rows/s of ``predict_frame`` over ``--rows`` summaries of the unlabeled pool (after one warm-up batch), peak
RSS, and, against PyTorch, the share of identical level_3 predictions and the largest logit difference.
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


def measure(backend: str, folder: str, rows: int, logits_out: str) -> dict:
    """One backend's numbers (run in a subprocess by :func:`main`)."""
    import pandas as pd
    from sklearn.metrics import f1_score

    from callreason.onnx_backend import load_predictor
    from callreason.taxonomy import LEVELS

    predictor = load_predictor(folder, batch_size=64)
    test = pd.read_parquet("data/prepared/dataset.parquet").query("split == 'test'")
    predicted = predictor.predict_frame(test["call_id"].tolist(), test["summary"].tolist())
    scores = {level: round(float(f1_score(test[level], predicted[level], average="macro")), 4) for level in LEVELS}
    pool = pd.read_parquet("data/unlabeled_summaries.parquet")["summary"].head(rows).tolist()
    predictor.level_logits(pool[:64])  # warm-up
    start = time.perf_counter()
    predictor.predict_frame([str(i) for i in range(len(pool))], pool)
    seconds = time.perf_counter() - start
    np.save(logits_out, np.concatenate(predictor.level_logits(test["summary"].tolist()), axis=1))
    np.save(logits_out.replace(".npy", "_l3.npy"), predicted["level_3"].to_numpy(dtype=str))
    return {"backend": backend, "macro_f1": scores, "rows": len(pool), "rows_per_second": round(len(pool) / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="models/heldout")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("reports/onnx_speed.json"))
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "FOLDER", "LOGITS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one[:2], args.rows, args.one[2])))
        return
    from callreason.onnx_backend import export_run

    work = Path(tempfile.mkdtemp())
    folders = {"torch": args.models}
    for name, int8 in (("onnx", False), ("onnx int8", True)):
        start = time.perf_counter()
        export_run(Path(args.models), work / name.replace(" ", "_"), int8=int8)
        print(f"exported {name} in {time.perf_counter() - start:.0f} s", flush=True)
        folders[name] = str(work / name.replace(" ", "_"))
    results = []
    for backend, folder in folders.items():
        logits = str(work / f"{backend.replace(' ', '_')}_logits.npy")
        done = subprocess.run([sys.executable, "-m", "benchmarks.onnx_speed", "--rows", str(args.rows), "--one", backend,
                               folder, logits], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        reference, mine = np.load(str(work / "torch_logits.npy")), np.load(logits)
        result["max_logit_difference_vs_torch"] = float(np.abs(reference - mine).max())
        result["level_3_same_as_torch"] = float((np.load(str(work / "torch_logits_l3.npy"))
                                                 == np.load(logits.replace(".npy", "_l3.npy"))).mean())
        results.append(result)
        print(json.dumps(result), flush=True)
    torch_speed = results[0]["rows_per_second"]
    lines = ["| backend | level_1 macro-F1 | level_2 macro-F1 | level_3 macro-F1 | level_3 same as torch | "
             "max logit diff | rows/s | speed-up | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        f1 = r["macro_f1"]
        lines.append(f"| {r['backend']} | {f1['level_1']:.4f} | {f1['level_2']:.4f} | {f1['level_3']:.4f} | "
                     f"{r['level_3_same_as_torch']:.1%} | {r['max_logit_difference_vs_torch']:.2g} | "
                     f"{r['rows_per_second']:.1f} | {r['rows_per_second'] / torch_speed:.2f}x | {r['peak_rss_mb']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"models": args.models, "rows": args.rows, "results": results}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
