"""Phase 3 loop: the LLM's answers come back through `stages.import_labels` and `filter`, with provenance,
without touching the user's labeled file or moving any row of the split; the exports carry the top paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from callreason.relabel import RELABELED_COLUMNS, export_for_labeler, queue_export
from tests.test_data_safety import filter_repo

ROOT = Path(__file__).parents[1]


def run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)})


def prepared(repo: Path) -> pd.DataFrame:
    for stage in ("stages.filter", "stages.encode"):
        result = run(repo, stage)
        assert result.returncode == 0, result.stderr
    return pd.read_parquet(repo / "data/prepared/dataset.parquet").set_index("call_id")


def other_leaf(taxonomy: dict, leaf: str, sizes: pd.Series) -> tuple[str, str, str]:
    """A path of another leaf with plenty of rows (so the relabel leaves every class measurable)."""
    paths = [(l1, l2, l3) for l1, subs in taxonomy.items() for l2, leaves in subs.items() for l3 in leaves]
    return next(p for p in paths if p[2] != leaf and sizes.get(p[2], 0) >= 12)


def test_imported_answers_relabel_rows_keep_their_split_side_and_never_touch_the_labeled_file(tmp_path):
    repo = filter_repo(tmp_path, labeled_rows=900)
    labeled_bytes = (repo / "data/phase2_labeled.parquet").read_bytes()
    before = prepared(repo)
    sizes = before["level_3"].value_counts()
    taxonomy = json.loads((repo / "taxonomy/taxonomy.json").read_text())
    roomy = before["level_3"].map(sizes) >= 12
    train_id = before.index[(before["split"] == "train") & roomy][0]
    test_id = before.index[(before["split"] == "test") & roomy][0]
    pool = pd.read_parquet(repo / "data/unlabeled_summaries.parquet")
    answers = []
    for call_id in (train_id, test_id):
        l1, l2, l3 = other_leaf(taxonomy, before.loc[call_id, "level_3"], sizes)
        answers.append({"call_id": call_id, "summary": before.loc[call_id, "summary"], "level_1": l1, "level_2": l2,
                        "level_3": l3, "confidence": 0.97})
    new_path = other_leaf(taxonomy, "", sizes)
    answers.append({"call_id": pool.loc[0, "call_id"], "summary": pool.loc[0, "summary"], "level_1": new_path[0],
                    "level_2": new_path[1], "level_3": new_path[2], "confidence": 0.9})
    pd.DataFrame(answers).assign(source=["gpt-relabel", "gpt-relabel", "queue"]).to_csv(tmp_path / "answers.csv",
                                                                                           index=False)
    result = run(repo, "stages.import_labels", "--input", str(tmp_path / "answers.csv"))
    assert result.returncode == 0, result.stderr
    assert "3 answers" in result.stdout and "2 relabel rows" in result.stdout and "1 new labeled rows" in result.stdout

    relabeled = pd.read_parquet(repo / "data/relabeled.parquet").set_index("call_id")
    assert list(relabeled.reset_index().columns) == list(RELABELED_COLUMNS)
    assert relabeled.loc[train_id, "replaced_level_3"] == before.loc[train_id, "level_3"]
    assert relabeled.loc[test_id, "source"] == "gpt-relabel" and (relabeled["round"] == 1).all()
    assert pd.isna(relabeled.loc[pool.loc[0, "call_id"], "replaced_level_3"])  # a new call had no label
    assert relabeled["imported_at"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert (repo / "data/phase2_labeled.parquet").read_bytes() == labeled_bytes

    after = prepared(repo)
    for call_id in (train_id, test_id):
        assert after.loc[call_id, "level_3"] == relabeled.loc[call_id, "level_3"]
        assert after.loc[call_id, "summary"] == before.loc[call_id, "summary"]
    assert after.loc[pool.loc[0, "call_id"], "level_3"] == new_path[2]
    assert after.index.intersection(before.index).equals(before.index)
    moved = after.loc[before.index, "split"] != before["split"]
    # no row moves between train, val and test; a class a relabel leaves too small to measure has its test
    # rows reserved (never trained on by the held-out run), which is the only change allowed
    assert set(zip(before.loc[moved, "split"], after.loc[before.index[moved], "split"])) <= {("test", "reserved")}
    assert after.loc[test_id, "split"] == "test" and after.loc[train_id, "split"] == "train"

    later = pd.DataFrame([{**answers[0], "level_1": before.loc[train_id, "level_1"],
                           "level_2": before.loc[train_id, "level_2"], "level_3": before.loc[train_id, "level_3"],
                           "confidence": 0.99}])
    later.to_json(tmp_path / "round2.jsonl", orient="records", lines=True)
    assert run(repo, "stages.import_labels", "--input", str(tmp_path / "round2.jsonl")).returncode == 0
    relabeled = pd.read_parquet(repo / "data/relabeled.parquet").set_index("call_id")
    assert len(relabeled) == 3 and relabeled.loc[train_id, "round"] == 2  # the later answer wins
    assert relabeled.loc[train_id, "replaced_level_3"] == answers[0]["level_3"]  # it replaced the first answer
    assert relabeled.loc[train_id, "source"] == "round2.jsonl"


def test_bad_answers_are_all_reported_and_nothing_is_written(tmp_path):
    repo = filter_repo(tmp_path)
    shipped = (repo / "data/relabeled.parquet").read_bytes()  # the demo ships an empty answers file
    pd.DataFrame([{"call_id": "X1", "summary": "a", "level_1": "nope", "level_2": "nope", "level_3": "nope",
                   "confidence": 2.0}]).to_parquet(tmp_path / "bad.parquet")
    result = run(repo, "stages.import_labels", "--input", str(tmp_path / "bad.parquet"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 4 and all(line.startswith("error [import_labels]: ") for line in lines)
    assert (repo / "data/relabeled.parquet").read_bytes() == shipped
    result = run(repo, "stages.import_labels", "--input", str(tmp_path / "answers.txt"))
    assert result.returncode == 2 and "not found" in result.stderr


def test_the_exports_give_the_labeler_the_top_paths_and_the_taxonomy(tmp_path):
    scored = pd.DataFrame({"call_id": ["U1"], "summary": ["card never arrived"], "level_1": ["a"], "level_2": ["b"],
                           "level_3": ["c"], "path_prob": [0.5], "second_level_1": ["a"], "second_level_2": ["b"],
                           "second_level_3": ["d"], "second_path_prob": [0.3], "third_level_1": ["e"],
                           "third_level_2": ["f"], "third_level_3": ["g"], "third_path_prob": [0.1]})
    queue = pd.DataFrame({"rank": [1], "call_id": ["U1"], "summary": ["card never arrived"],
                          "hesitation_level": ["level_3"]})
    (tmp_path / "taxonomy.json").write_text('{"a": {"b": ["c", "d"]}, "e": {"f": ["g"]}}')
    export_for_labeler(queue_export(queue, scored), tmp_path / "out", "queue", tmp_path / "taxonomy.json",
                       ["rank", "call_id", "summary", "hesitation_level"])
    row = json.loads((tmp_path / "out/queue.jsonl").read_text())
    assert row["call_id"] == "U1" and [p["level_3"] for p in row["top_paths"]] == ["c", "d", "g"]
    assert row["top_paths"][1] == {"level_1": "a", "level_2": "b", "level_3": "d", "probability": 0.3}
    csv = pd.read_csv(tmp_path / "out/queue.csv")
    assert csv.loc[0, "path_1"] == "a > b > c" and csv.loc[0, "probability_3"] == pytest.approx(0.1)
    assert (tmp_path / "out/taxonomy.json").read_text() == (tmp_path / "taxonomy.json").read_text()
