"""Scale-out benchmark: ``callreason predict --engine local`` vs ``--engine ray`` on a generated pool.

    python -m benchmarks.scale_out --rows 100000 1000000             # tiny random models: the engines' overhead and memory
    python -m benchmarks.scale_out --models models/final --rows 2000  # a real run folder: its rows/s

Each run is the ``callreason predict`` command in its own process on a folder of parquet shards (50,000 rows
each, generated, deleted afterwards); the benchmark samples the proportional set size (PSS: shared pages
counted once) of that process and of every process it starts (Ray's raylet, object store and actors) once a
second, in total and per kind of process. Writes ``reports/scale_out.json``. Without ``--models`` the run
folder is three untrained one-layer BERTs (hidden size 32), so what is measured is the engines (reading,
checking, scheduling, writing), not a model's speed; with a real folder, throughput is the model's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from benchmarks.common import ROOT, tiny_run_folder

SHARD_ROWS = 50_000


def write_pool(folder: Path, rows: int, summaries: np.ndarray) -> None:
    """``rows`` unique call_ids over ``summaries`` (cycled), as parquet shards of ``SHARD_ROWS`` rows."""
    folder.mkdir(parents=True)
    for start in range(0, rows, SHARD_ROWS):
        index = np.arange(start, min(start + SHARD_ROWS, rows))
        pd.DataFrame({"call_id": [f"C{i:08d}" for i in index], "summary": summaries[index % len(summaries)]}
                     ).to_parquet(folder / f"part-{start // SHARD_ROWS:05d}.parquet", index=False)


def process_kind(member: psutil.Process, root: psutil.Process) -> str:
    """What a process of the tree is: ``predict`` (the command itself), a Ray worker by its title without the
    method it runs now (``ray::MapWorker(MapBatches(PredictActor))``, ``ray::IDLE``), or the program's name
    (``raylet``, ``gcs_server``)."""
    if member.pid == root.pid:
        return "predict"
    title = (member.cmdline()[:1] or [member.name()])[0].split()[0]
    if not title.startswith("ray::"):
        return Path(title).name
    return title[:title.rindex(").") + 1] if ")." in title else title.split(".")[0]


def tree_pss_mb(process: psutil.Process) -> dict[int, tuple[str, float]]:
    """PSS in MB of ``process`` and each of its descendants, by pid, with its :func:`process_kind` (a process
    that ended meanwhile is left out)."""
    members = {}
    for member in [process, *process.children(recursive=True)]:
        try:
            members[member.pid] = (process_kind(member, process), member.memory_full_info().pss / 2**20)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return members


def run_predict(models: Path, pool: Path, output: Path, engine: str, extra: list[str]) -> dict:
    """Run the predict command; its wall time, the peak PSS of its process tree (over the whole run, and over
    each half of it: a run whose memory grows with the rows it has done peaks later and higher), the sum of each
    process's own peak per kind of process (a kind is named by the last title its process had; peaks of different
    processes need not fall at the same moment) and the most processes of each kind alive at once."""
    command = [sys.executable, "-m", "callreason.cli", "predict", "--models", str(models), "--input", str(pool),
               "--output", str(output), "--engine", engine, *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, totals, per_pid, alive = psutil.Process(process.pid), [], {}, {}
    while process.poll() is None:
        members = tree_pss_mb(watched)
        totals.append(sum(mb for _, mb in members.values()))
        counts: dict[str, int] = {}
        for pid, (kind, mb) in members.items():
            per_pid[pid] = (kind, max(mb, per_pid.get(pid, ("", 0.0))[1]))
            counts[kind] = counts.get(kind, 0) + 1
        for kind, n in counts.items():
            alive[kind] = max(n, alive.get(kind, 0))
        time.sleep(1.0)
    by_kind: dict[str, float] = {}
    for kind, mb in per_pid.values():
        by_kind[kind] = by_kind.get(kind, 0.0) + mb
    seconds = time.perf_counter() - start
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    half = len(totals) // 2
    return {"seconds": round(seconds, 1), "peak_pss_mb": round(max(totals, default=0.0)),
            "peak_pss_mb_halves": [round(max(totals[:half], default=0.0)), round(max(totals[half:], default=0.0))],
            "peak_pss_mb_by_process": {k: round(v) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]) if v >= 1},
            "processes_by_kind": dict(sorted(alive.items(), key=lambda kv: (-kv[1], kv[0]))),
            "summary": out.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--models", type=Path, help="a run folder (default: tiny random models)")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--actors", type=int, default=2, help="--engine ray: predictor actors (1 thread each)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scale_out."))
    try:
        if args.models:
            from callreason.io import load_params, read_parquet

            models = args.models.resolve()
            summaries = read_parquet(ROOT / load_params(ROOT / "params.yaml")["data"]["unlabeled"])["summary"].to_numpy()
        else:
            models, summaries = tiny_run_folder(work)
            (models / "metadata.json").write_text(json.dumps({"inference": {"batch_size": 64,
                                                                            "max_summary_chars": 20_000}}))
        results = []
        for rows in args.rows:
            pool = work / f"pool_{rows}"
            write_pool(pool, rows, summaries)
            for engine in args.engines:
                extra = ["--actors", str(args.actors)] if engine == "ray" else []
                measured = run_predict(models, pool, work / f"out_{engine}.parquet", engine, extra)
                result = {"models": str(args.models or "tiny random (1 layer, hidden 32)"), "rows": rows,
                          "engine": engine + (f" ({args.actors} actors x 1 thread)" if engine == "ray" else " (2 threads)"),
                          **measured, "rows_per_second": round(rows / measured["seconds"], 1)}
                print(json.dumps(result), flush=True)
                results.append(result)
                if engine == "ray" and "local" in args.engines:
                    local = pd.read_parquet(work / "out_local.parquet")
                    distributed = pd.read_parquet(work / "out_ray.parquet")
                    text = ["call_id", "level_1", "level_2", "level_3"]
                    result["same_paths_as_local"] = bool(local[text].equals(distributed[text]))
                    result["max_probability_difference"] = float(np.abs(
                        local.drop(columns=text).to_numpy() - distributed.drop(columns=text).to_numpy()).max())
            shutil.rmtree(pool)
        report = ROOT / "reports" / "scale_out.json"
        previous = json.loads(report.read_text()) if report.exists() else []
        key = lambda r: (r["models"], r["rows"], r["engine"])  # noqa: E731
        kept = [r for r in previous if key(r) not in {key(n) for n in results}]
        report.write_text(json.dumps(kept + results, indent=2) + "\n")
        print(f"wrote {report.relative_to(ROOT)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
