"""A stage killed with SIGTERM or SIGINT mid-write leaves the previous output, never a mixed one."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys, time
from pathlib import Path
from callreason.errors import run_stage
from callreason.io import atomic_path

def main():
    with atomic_path(Path(sys.argv[1])) as tmp:
        tmp.mkdir()
        (tmp / "weights").write_text("new, half written")
        print("writing", flush=True)
        time.sleep(30)

run_stage("train", main)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killed_stage_keeps_the_previous_folder(tmp_path, sig):
    target = tmp_path / "level_3"
    target.mkdir()
    (target / "weights").write_text("previous")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[1],
                            # a shell starting pytest in the background ignores SIGINT for it; undo that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(sig)
    proc.wait(timeout=20)
    assert proc.returncode != 0
    assert (target / "weights").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level_3"]


def test_a_train_stage_killed_while_training_keeps_the_previous_model_and_runs_again(small_project, tmp_path):
    """The real ``train`` stage (tiny BERT), SIGTERM once it is training: the previous level folder is
    byte-identical, no temporary is left beside it, and the stage then completes."""
    import os
    import shutil
    import time

    import yaml

    from tests.conftest import tree_digest

    root = tmp_path / "project"
    shutil.copytree(small_project, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["epochs"] = 30  # long enough to be caught training
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = tree_digest(root / "models")
    command = [sys.executable, "-m", "stages.train", "--level", "level_1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    curve = root / "dvclive/level_1/plots/metrics/val_macro_f1.tsv"  # written from epoch 0 (the probe) on
    while not curve.exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the stage never started training"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in proc.stderr.read()
    assert tree_digest(root / "models") == before
    assert sorted(p.name for p in (root / "models" / "heldout").iterdir()) == sorted(
        ["level_1", "level_2", "level_3", "label_encoders", "calibration.json", "metadata.json"])
    params["epochs"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (root / "models/heldout/level_1/training.json").exists()
