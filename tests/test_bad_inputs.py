"""Every entry point against the catalogue of malformed inputs (``tests/bad_inputs.py``), with the same checks
for all: exit 0 or 2 as the case says, no traceback, each stderr line one ``error [...]`` line, the expected
words, and on exit 2 every file of the project byte-identical afterwards (nothing the user gave modified,
the previous good outputs kept, no half-written output); on exit 0 only the declared outputs change."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.bad_inputs import CASES, NEW, OTHER_ROWS, Case, readme_table
from tests.conftest import run_entry_point, tree_digest

ROOT = Path(__file__).parents[1]
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")  # tqdm's bars (Hugging Face's "Loading weights"): not messages


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_malformed_input_is_one_clear_line_and_touches_nothing(case: Case, small_project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(small_project, root)
    case.setup(root)
    before = tree_digest(root)
    code, out, err = run_entry_point(case.command, root)
    after = tree_digest(root)
    assert code == case.exit_code, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err
    if case.exit_code == 2:
        lines = [line for line in re.split(r"[\r\n]+", err) if line.strip() and not PROGRESS_BAR.search(line)]
        assert lines and all(line.startswith("error [") for line in lines), err
        assert case.expect in err, err
        if case.lines is not None:
            assert len(lines) == case.lines, err
        assert after == before, "a failing command changed files: " + ", ".join(
            sorted(set(after.items()) ^ set(before.items()), key=str)[:6].__str__())
    else:
        assert case.expect in out, out
        changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
        assert all(any(path == w or path.startswith(w + "/") for w in case.writes) for path in changed), \
            sorted(changed)


def test_the_catalogue_covers_every_entry_point():
    stages = {path.stem for path in (ROOT / "stages").glob("*.py")} - {"__init__", "predict"}
    covered = {case.command[0].split(".")[-1] for case in CASES} | {"predict" for c in CASES if c.command[0] == "callreason"}
    assert stages | {"predict"} <= covered, sorted(stages | {"predict"} - covered)


def test_the_readme_troubleshooting_table_is_the_catalogues():
    readme = (ROOT / "README.md").read_text()
    assert readme_table() in readme, "regenerate it: python -m tests.bad_inputs"
    for _, _, test_file in OTHER_ROWS:
        assert (ROOT / test_file).exists(), test_file


def test_predict_run_as_a_process_refuses_a_folder_as_output_and_leaves_it_whole(small_project, tmp_path):
    """The console script itself, in a real process: ``--output data`` (a folder) used to delete it."""
    root = tmp_path / "project"
    shutil.copytree(small_project, root)
    before = tree_digest(root / "data")
    result = subprocess.run([sys.executable, "-m", "stages.predict", "--input", NEW, "--output", "data"], cwd=root,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and result.stderr.startswith("error [predict]: data: --output is an existing folder")
    assert "Traceback" not in result.stderr and tree_digest(root / "data") == before


def test_the_atomic_writer_never_replaces_a_folder_with_a_file(tmp_path):
    from callreason.errors import InputError
    from callreason.io import write_parquet

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labeled.parquet").write_bytes(b"user data")
    with pytest.raises(InputError, match="is an existing folder; refusing to replace it with a file"):
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "data")
    assert (tmp_path / "data" / "labeled.parquet").read_bytes() == b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
