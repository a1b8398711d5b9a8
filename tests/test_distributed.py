"""The train stage under `accelerate launch --multi_gpu --num_processes 2` (on this GPU-less machine:
2 CPU processes, DDP over gloo, tiny model): outputs and DVCLive logs are written once, by rank 0;
sharded inference returns rows in input order. (`accelerate launch --cpu` starts several CPU
processes only through MPI, which is not installed here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from callreason.dataset import encode_dataset
from callreason.distributed import sharded_apply
from tests.conftest import SMALL_TAXONOMY, make_labeled_rows

ROOT = Path(__file__).parents[1]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def launch(args: list[str], cwd: Path, audit_log: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'audit'}",
           "OPEN_AUDIT_LOG": str(audit_log), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*LAUNCH, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def written_by_rank(audit_log: Path, repo: Path) -> dict[str, set[str]]:
    """Repo files each rank opened for writing, from the audit hook's records."""
    written: dict[str, set[str]] = {}
    for record in map(json.loads, audit_log.read_text().splitlines()):
        if record.get("rank") is None:
            continue
        paths = {os.path.relpath(p, repo) for p, mode in record["opened"]
                 if ("w" in mode or "a" in mode or "flags=" in mode and int(mode[6:] or 0) & (os.O_WRONLY | os.O_RDWR))
                 and not os.path.relpath(p, repo).startswith("..")}
        written.setdefault(record["rank"], set()).update(paths)
    return written


def test_train_stage_under_ddp_writes_once_from_rank_0(tmp_path, tiny_params, small_taxonomy):
    data, _ = encode_dataset(make_labeled_rows(80), small_taxonomy, 0.2, 0.15, 0, 1)
    (tmp_path / "data/prepared").mkdir(parents=True)
    data.to_parquet(tmp_path / "data/prepared/dataset.parquet", index=False)
    (tmp_path / "taxonomy").mkdir()
    (tmp_path / "taxonomy/taxonomy.json").write_text(json.dumps(SMALL_TAXONOMY))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    audit_log = tmp_path.parent / f"{tmp_path.name}-opened.jsonl"
    result = launch(["-m", "stages.train", "--level", "level_3"], tmp_path, audit_log)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "models/heldout/level_3/model.safetensors").exists()
    assert json.loads((tmp_path / "reports/train/level_3.json").read_text())["train_rows"] == (data["split"] == "train").sum()
    assert (tmp_path / "dvclive/level_3/metrics.json").exists()
    written = written_by_rank(audit_log, tmp_path)
    assert set(written) == {"0", "1"}
    assert any(p.startswith("models/") for p in written["0"]) and any(p.startswith("dvclive/") for p in written["0"])
    assert not {p for p in written["1"] if p.split("/")[0] in ("models", "dvclive", "metrics", "reports", "plots")}, written["1"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["heldout"]  # no temporaries left
    assert sorted(p.name for p in (tmp_path / "models/heldout").iterdir()) == ["level_3"]


SHARD_SCRIPT = """
import json, os, sys
import numpy as np
from callreason.distributed import sharded_apply
texts = [f"text {i}" for i in range(11)]
seen = []
def function(batch):
    seen.extend(batch)
    return [np.array([[float(t.split()[1])] for t in batch]), np.array([[len(t), 1.0] for t in batch])]
out = sharded_apply(function, texts)
report = {"rank": os.environ["RANK"], "seen": seen, "out0": out[0][:, 0].tolist(), "out1": out[1].tolist()}
with open(f"report_{os.environ['RANK']}.json", "w") as file:  # one file per rank: stdout lines interleave
    json.dump(report, file)
"""


def test_sharded_inference_splits_rows_across_processes_and_gathers_them_in_order(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    result = launch([str(script)], tmp_path, tmp_path / "opened.jsonl")
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"report_{rank}.json").read_text()) for rank in (0, 1)]
    seen = [set(r["seen"]) for r in reports]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 11  # each row computed once
    for report in reports:
        assert report["out0"] == list(range(11))  # every process holds all rows, in input order
        assert report["out1"] == [[len(f"text {i}"), 1.0] for i in range(11)]


def test_sharded_inference_in_one_process_is_the_function_itself():
    out = sharded_apply(lambda batch: [np.arange(len(batch))[:, None]], ["a", "b", "c"])
    assert out[0][:, 0].tolist() == [0, 1, 2]
