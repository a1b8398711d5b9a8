"""Data safety: values are normalised before they are compared, every problem of a file is reported in one
run, every input is checked before training, a failing stage keeps the last good outputs, and predict
keeps one row per call_id across chunks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callreason.errors import InputError
from callreason.taxonomy import Taxonomy
from callreason.validation import INVISIBLE, validate_labeled, validate_unlabeled

ROOT = Path(__file__).parents[1]
TAXONOMY = {"billing": {"payments": ["refund", "double_charge"], "fees": ["late_fee"]},
            "access": {"login": ["password_reset", "locked_out", "caf\u00e9_wifi"]}}


def rows(*items: tuple) -> pd.DataFrame:
    """Labeled rows from ``(call_id, summary, level_3, confidence)``; the path is completed from the taxonomy."""
    taxonomy = Taxonomy.from_dict(TAXONOMY)
    out = []
    for call_id, summary, leaf, confidence in items:
        l1, l2, _ = taxonomy.path_of_leaf(unicodedata.normalize("NFC", leaf))
        out.append({"call_id": call_id, "summary": summary, "level_1": l1, "level_2": l2, "level_3": leaf,
                    "confidence": confidence})
    return pd.DataFrame(out)


def errors(frame: pd.DataFrame) -> list[str]:
    with pytest.raises(InputError) as info:
        validate_labeled(frame, Taxonomy.from_dict(TAXONOMY), "data/labeled.parquet")
    assert all(line.startswith("data/labeled.parquet: ") for line in info.value.lines)
    return info.value.lines


def test_the_same_call_with_a_trailing_space_and_other_labels_is_a_conflict_naming_both_spellings():
    lines = errors(rows(("CALL-1", "refund please", "refund", 0.9), ("CALL-1 ", "refund please", "late_fee", 0.9)))
    assert len(lines) == 1
    assert "'CALL-1' (spelled 'CALL-1', 'CALL-1 ')" in lines[0] and "different labels" in lines[0]


def test_the_same_call_with_a_trailing_space_and_the_same_labels_is_kept_once():
    out, counts = validate_labeled(rows(("CALL-1", "refund", "refund", 0.9), (" CALL-1", "refund", "refund", 0.9)),
                                   Taxonomy.from_dict(TAXONOMY), "data/labeled.parquet")
    assert out["call_id"].tolist() == ["CALL-1"] and counts["dropped_duplicate_same_labels"] == 1


def test_zero_width_and_bidi_characters_are_removed_and_invisible_only_summaries_dropped():
    frame = rows(("C1", "\u200b\u200c\u200d\ufeff", "refund", 0.9),
                 ("C2", "refund \u202eplease\u202c now\u2066", "refund", 0.9),
                 ("C3", "late fee", "late_fee", 0.9))
    out, counts = validate_labeled(frame, Taxonomy.from_dict(TAXONOMY), "data/labeled.parquet")
    assert out["call_id"].tolist() == ["C2", "C3"] and counts["dropped_empty_summary"] == 1
    assert out.loc[0, "summary"] == "refund please now" and counts["control_characters_removed"] == 2


def test_invisible_characters_are_exactly_control_and_format_characters():
    for name in ("ZERO WIDTH SPACE", "ZERO WIDTH JOINER", "RIGHT-TO-LEFT OVERRIDE", "LEFT-TO-RIGHT ISOLATE",
                 "ZERO WIDTH NO-BREAK SPACE", "SOFT HYPHEN"):
        assert INVISIBLE.fullmatch(unicodedata.lookup(name)), name
    for code in range(0x110000):
        char = chr(code)
        invisible = unicodedata.category(char) in ("Cc", "Cf") and not char.isspace()
        if INVISIBLE.fullmatch(char):  # Cn: format characters of a newer Unicode than this Python's tables
            assert invisible or unicodedata.category(char) == "Cn", hex(code)
        else:
            assert not invisible, hex(code)


def test_a_label_in_another_unicode_form_matches_the_taxonomy():
    nfd = unicodedata.normalize("NFD", "caf\u00e9_wifi")
    out, _ = validate_labeled(rows(("C1", "wifi at the cafe", nfd, 0.9)), Taxonomy.from_dict(TAXONOMY),
                              "data/labeled.parquet")
    assert out.loc[0, "level_3"] == "caf\u00e9_wifi"


def test_a_label_that_differs_only_in_case_or_spacing_says_exactly_that():
    frame = rows(("C1", "refund", "refund", 0.9)).assign(level_3="Refund ")
    (line,) = errors(frame)
    assert "differs from the taxonomy's 'refund' only in letter case or spacing: write it as 'refund'" in line


def test_three_problems_in_one_file_are_reported_in_one_run():
    frame = rows(("C1", "refund", "refund", 0.9), ("C2", "late", "late_fee", 1.5), ("C3", "x", "refund", 0.9))
    frame.loc[0, "call_id"] = None
    frame.loc[2, "level_3"] = "router_reboot"
    lines = errors(frame)
    assert len(lines) == 3
    assert any("'call_id' is empty" in line and "row 0" in line for line in lines)
    assert any("'confidence' must be in [0, 1]" in line and "'C2' (1.5)" in line for line in lines)
    assert any("'router_reboot'" in line and "not in the taxonomy" in line for line in lines)


def test_a_taxonomy_reports_all_its_problems_and_normalises_labels():
    with pytest.raises(InputError) as info:
        Taxonomy.from_dict({"a": {"b": ["x", "y"], "c": []}, "d": {"b": ["z"]}, "e": "not nested"})
    assert len(info.value.lines) == 3
    taxonomy = Taxonomy.from_dict({" billing ": {"fees\u200b": ["late_fee "]}})
    assert taxonomy.labels["level_1"] == ["billing"] and taxonomy.labels["level_3"] == ["late_fee"]


def test_unlabeled_ids_are_compared_normalised():
    frame = pd.DataFrame({"call_id": ["C1 ", "U1"], "summary": ["a", "b"]})
    out, counts = validate_unlabeled(frame, "data/u.parquet", labeled_ids={"C1"})
    assert out["call_id"].tolist() == ["U1"] and counts["dropped_call_id_in_labeled"] == 1


# --------------------------------------------------------------------------- stages, DVC and predict

def filter_repo(tmp_path: Path, labeled_rows: int = 120) -> Path:
    """A repository with the filter stage's code, params and small demo inputs."""
    from callreason.demo import write_demo_data

    repo = tmp_path / "repo"
    for name in ("callreason", "stages"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    write_demo_data(repo, seed=5, n_labeled=labeled_rows, n_unlabeled=30)
    return repo


def stage(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", *args], cwd=repo, capture_output=True, text=True, env=env)


def test_a_broken_unlabeled_file_fails_filter_and_a_changed_valid_one_leaves_its_output(tmp_path):
    repo = filter_repo(tmp_path)
    assert stage(repo, "stages.filter").returncode == 0
    filtered = (repo / "data/filtered.parquet").read_bytes()
    pool = pd.read_parquet(repo / "data/unlabeled_summaries.parquet")
    pool.head(10).to_parquet(repo / "data/unlabeled_summaries.parquet")  # a valid but different pool
    assert stage(repo, "stages.filter").returncode == 0
    assert (repo / "data/filtered.parquet").read_bytes() == filtered  # so encode and training do not re-run
    (repo / "data/unlabeled_summaries.parquet").write_text("not parquet")
    result = stage(repo, "stages.filter")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines()
                                                  if line.startswith("error [filter]: data/unlabeled_summaries")]


def test_filter_reports_the_problems_of_every_input_file_at_once(tmp_path):
    repo = filter_repo(tmp_path)
    labeled = pd.read_parquet(repo / "data/phase2_labeled.parquet")
    labeled.loc[0, "confidence"] = 7.0
    labeled.loc[1, "level_3"] = "no_such_reason"
    labeled.to_parquet(repo / "data/phase2_labeled.parquet")
    pd.DataFrame({"call_id": ["U1"], "text": ["x"]}).to_parquet(repo / "data/unlabeled_summaries.parquet")
    result = stage(repo, "stages.filter")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 3 and all(line.startswith("error [filter]: ") for line in lines)
    assert sum("phase2_labeled" in line for line in lines) == 2 and "unlabeled_summaries" in lines[2]


def test_a_failing_filter_under_dvc_keeps_the_last_good_outputs(tmp_path):
    """DVC removes a stage's outputs before running it unless they persist: filter's do, so bad input leaves
    the last good reports/filter.json and data/filtered.parquet. `dvc repro` exits 255, the stage itself 2."""
    repo = filter_repo(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    assert subprocess.run(["dvc", "repro", "filter"], cwd=repo, capture_output=True, env=env).returncode == 0
    metrics = (repo / "reports/filter.json").read_text()
    labeled = pd.read_parquet(repo / "data/phase2_labeled.parquet")
    labeled.loc[0, "confidence"] = 7.0
    labeled.to_parquet(repo / "data/phase2_labeled.parquet")
    result = subprocess.run(["dvc", "repro", "filter"], cwd=repo, capture_output=True, text=True, env=env)
    assert result.returncode == 255 and "error [filter]: data/phase2_labeled.parquet" in result.stderr
    assert (repo / "reports/filter.json").read_text() == metrics and (repo / "data/filtered.parquet").exists()


class EchoPredictor:
    """Stands in for HierarchicalPredictor: predicts the first word of each summary as level_1."""

    def predict_frame(self, call_ids, texts):
        return pd.DataFrame({"call_id": call_ids, "level_1": [t.split()[0] for t in texts]})


def test_predict_keeps_one_row_per_call_id_across_chunks_and_refuses_an_ambiguous_one(tmp_path):
    from callreason.predict import predict_parquet

    frame = pd.DataFrame({"call_id": ["A", "B", "C", "A ", "D"], "summary": ["a x", "b", "c", "a x", "d"]})
    frame.to_parquet(tmp_path / "in.parquet")
    counts = predict_parquet(EchoPredictor(), tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=2)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["call_id"].tolist() == ["A", "B", "C", "D"] and counts["dropped_duplicate_call_id"] == 1
    frame.loc[3, "summary"] = "something else"
    frame.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(InputError, match="different summaries.*'A'"):
        predict_parquet(EchoPredictor(), tmp_path / "in.parquet", tmp_path / "out2.parquet", chunk_rows=2)
    assert not (tmp_path / "out2.parquet").exists()


def test_predict_compares_call_ids_exactly_when_their_hashes_collide(tmp_path, monkeypatch):
    """The cross-chunk check compares 64-bit hashes first; distinct call_ids that share one are not repeats."""
    import callreason.predict as predict

    monkeypatch.setattr(predict, "call_id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))  # all collide
    frame = pd.DataFrame({"call_id": ["A", "B", "C", "A", "D", "B"], "summary": ["a", "b", "c", "a", "d", "b"]})
    frame.to_parquet(tmp_path / "in.parquet")
    counts = predict.predict_parquet(EchoPredictor(), tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=3)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["call_id"].tolist() == ["A", "B", "C", "D"]
    assert counts["dropped_duplicate_call_id"] == 2 and counts["rows_predicted"] == 4


def test_predict_reads_a_folder_of_parquet_files_and_reports_problems_of_every_chunk(tmp_path):
    from callreason.predict import predict_parquet

    (tmp_path / "calls").mkdir()
    pd.DataFrame({"call_id": ["A", "B"], "summary": ["a", "b"]}).to_parquet(tmp_path / "calls" / "part-0.parquet")
    pd.DataFrame({"call_id": ["C", "D"], "summary": ["c", "d"]}).to_parquet(tmp_path / "calls" / "part-1.parquet")
    predict_parquet(EchoPredictor(), tmp_path / "calls", tmp_path / "out.parquet", chunk_rows=1)
    assert sorted(pd.read_parquet(tmp_path / "out.parquet")["call_id"]) == ["A", "B", "C", "D"]
    pd.DataFrame({"call_id": [None, " "], "summary": ["e", "f"]}).to_parquet(tmp_path / "calls" / "part-2.parquet")
    with pytest.raises(InputError) as info:
        predict_parquet(EchoPredictor(), tmp_path / "calls", tmp_path / "out.parquet", chunk_rows=1)
    assert [line.split(": ")[1] for line in info.value.lines] == ["rows 4-4", "rows 5-5"]
    assert all("'call_id' is empty" in line for line in info.value.lines)


@pytest.mark.parametrize("args, message", [
    (["--chunk-rows", "0"], "--chunk-rows: invalid positive integer value: '0'"),
    (["--batch-size", "-3"], "--batch-size: invalid positive integer value: '-3'"),
    ([], "the following arguments are required: --input, --output"),
])
def test_predict_argument_errors_are_one_line_with_exit_2(args, message):
    result = subprocess.run([sys.executable, "-m", "stages.predict", *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr


def test_predict_help_answers_without_importing_torch():
    code = ("import sys, runpy; sys.argv = ['predict', '--help']\n"
            "try:\n    runpy.run_module('stages.predict', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'pandas'))))")
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT, capture_output=True, text=True)
    assert "--models" in result.stdout and json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_library_error_spread_over_lines_is_reported_as_one_line_naming_the_file():
    """Library messages (Hugging Face, pyarrow) often span lines; each error stays one line that names the file."""
    from callreason.errors import InputError
    from callreason.modeling import loading

    with pytest.raises(InputError) as caught:
        with loading("models/final/level_1", "run `dvc repro refit`"):
            raise OSError("Error no file named model.safetensors found in directory x.\n\n  Check the path\tand retry")
    assert caught.value.lines == ["models/final/level_1: cannot be loaded (OSError: Error no file named "
                                  "model.safetensors found in directory x. Check the path and retry); "
                                  "run `dvc repro refit`"]
