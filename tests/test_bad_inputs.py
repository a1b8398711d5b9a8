"""Every entry point against the catalogue of malformed inputs (``tests/bad_inputs.py``), with the same checks
for all: exit 0 or 2 as the case says, no traceback, each stderr line one ``error [...]`` line, the expected
words, and on exit 2 every file of the project byte-identical afterwards (nothing the user gave modified,
the previous good outputs kept, no half-written output); on exit 0 only the declared outputs change."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.bad_inputs import CASES, NEW, OTHER_ROWS, UNLABELED, Case, readme_table
from tests.conftest import SMALL_TAXONOMY, make_labeled_rows, run_entry_point, tree_digest

ROOT = Path(__file__).parents[1]
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")  # tqdm's bars (Hugging Face's "Loading weights"): not messages


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir) -> Path:
    """A small working project: inputs, the outputs of filter and encode, a held-out and a final run folder
    (tiny untrained models), and new summaries to predict."""
    from callreason.io import write_json
    from callreason.modeling import build_classifier, save_classifier
    from callreason.params import settings_from_params
    from callreason.pseudo_labels import empty_pseudo_labels
    from callreason.run import write_run_files
    from callreason.taxonomy import LEVELS, Taxonomy

    root = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update({"base": str(tiny_model_dir), "max_length": 32, "pooling": "mean"})
    params["train"].update({"frozen_layers": 0, "batch_size": 8})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "taxonomy").mkdir()
    (root / "taxonomy/taxonomy.json").write_text(json.dumps(SMALL_TAXONOMY, indent=2))
    (root / "data").mkdir()
    make_labeled_rows(60).to_parquet(root / "data/phase2_labeled.parquet", index=False)
    pool = make_labeled_rows(30, seed=3)
    pool.assign(call_id=[f"U{i:04d}" for i in range(30)])[["call_id", "summary"]].to_parquet(root / UNLABELED)
    pool.head(10).assign(call_id=[f"N{i:04d}" for i in range(10)])[["call_id", "summary"]].to_parquet(root / NEW)
    for module in ("stages.filter", "stages.encode"):
        code, _, err = run_entry_point((module,), root)
        assert code == 0, err
    settings = settings_from_params(params)
    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    for run in ("heldout", "final"):
        for level in LEVELS:
            model, tokenizer = build_classifier(str(tiny_model_dir), taxonomy.labels[level], pooling="mean",
                                                max_length=32, level=level)
            save_classifier(model, tokenizer, root / "models" / run / level)
        write_run_files(root / "models" / run, taxonomy, settings, {level: 1.0 for level in LEVELS}, run=run)
    write_json({"promoted": False}, root / "models/promotion.json")
    empty_pseudo_labels().to_parquet(root / "data/promoted_pseudo_labels.parquet", index=False)
    return root


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_malformed_input_is_one_clear_line_and_touches_nothing(case: Case, project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(project, root)
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


def test_predict_run_as_a_process_refuses_a_folder_as_output_and_leaves_it_whole(project, tmp_path):
    """The console script itself, in a real process: ``--output data`` (a folder) used to delete it."""
    root = tmp_path / "project"
    shutil.copytree(project, root)
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
