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
