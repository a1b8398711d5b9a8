"""Pseudo-labels: path scoring, threshold and per-class cap, precision estimate, retrain rows and the leakage guard.

The pure functions are tested on constructed probabilities; ``test_pseudo_label_and_retrain_stages_smoke`` runs
both stage scripts end to end on a tiny randomly initialised BERT (a few seconds on a CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callreason.errors import InputError
from callreason.hierarchy import joint_decode
from callreason.pseudo_labels import (
    POOL_LABEL_COLUMNS,
    SCORED_COLUMNS,
    TRAINING_COLUMNS,
    DataLeakageError,
    assert_no_leakage,
    class_caps,
    labeled_call_ids,
    precision_at_threshold,
    pseudo_training_rows,
    retrain_rows,
    score_paths,
    select_pseudo_labels,
)
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

# labels: level_1 [a, b]; level_2 [a1, a2, b1]; level_3 [u, v, x, y, z]
NESTED = {"a": {"a1": ["x", "y"], "a2": ["z"]}, "b": {"b1": ["u", "v"]}}


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(NESTED)


def leaf_probs(taxonomy: Taxonomy, rows: list[dict[str, float]]) -> list[np.ndarray]:
    """Per-level probabilities whose joint path posterior is exactly ``rows`` (leaf -> mass): uniform
    level_1 and level_2, the masses at level_3 (each leaf is one path, so the posterior is ``p3``)."""
    out = [np.full((len(rows), len(taxonomy.labels[level])), 1 / len(taxonomy.labels[level])) for level in LEVELS[:2]]
    p3 = np.zeros((len(rows), len(taxonomy.labels["level_3"])))
    for i, masses in enumerate(rows):
        for leaf, mass in masses.items():
            p3[i, taxonomy.labels["level_3"].index(leaf)] = mass
    return [*out, p3]


def scored_frame(rows: list[tuple[str, str, float]], taxonomy: Taxonomy) -> pd.DataFrame:
    """A minimal scored frame: (call_id, leaf, path_prob) rows."""
    return pd.DataFrame({
        "call_id": [r[0] for r in rows],
        "summary": [f"text {r[0]}" for r in rows],
        **{lv: [taxonomy.path_of_leaf(r[1])[d] for r in rows] for d, lv in enumerate(LEVELS)},
        **{f"{lv}_prob": [r[2] for r in rows] for lv in LEVELS},
        "path_prob": [r[2] for r in rows],
        "model_version": "test",
    })


# --------------------------------------------------------------------------- scoring

def test_score_paths_uses_joint_posterior(taxonomy):
    # row 0: level_1 slightly favours a, but levels 2/3 strongly favour b > b1 > v: the joint path is b/b1/v
    p1 = np.array([[0.55, 0.45], [0.9, 0.1]])
    p2 = np.array([[0.15, 0.05, 0.80], [0.05, 0.9, 0.05]])
    p3 = np.array([[0.05, 0.75, 0.10, 0.05, 0.05], [0.02, 0.02, 0.02, 0.02, 0.92]])
    frame = score_paths(["c0", "c1"], ["t0", "t1"], [p1, p2, p3], taxonomy)
    assert set(SCORED_COLUMNS) - {"model_version"} <= set(frame.columns)
    assert frame[list(LEVELS)].values.tolist() == [["b", "b1", "v"], ["a", "a2", "z"]]
    _, posterior = joint_decode([p1, p2, p3], taxonomy.paths)
    top = np.sort(posterior, axis=1)[:, ::-1]
    np.testing.assert_allclose(frame["path_prob"], top[:, 0])
    np.testing.assert_allclose(frame["second_path_prob"], top[:, 1])
    np.testing.assert_allclose(frame["margin"], top[:, 0] - top[:, 1])
    np.testing.assert_allclose(frame["level_1_max_prob"], [0.55, 0.9])
    assert (frame["entropy"] > 0).all()
    # every runner-up is a valid path different from the best
    for _, row in frame.iterrows():
        second = [row[f"second_{lv}"] for lv in LEVELS]
        assert taxonomy.is_valid_path(*second) and second != [row[lv] for lv in LEVELS]


def test_threshold_selection_on_constructed_probabilities(taxonomy):
    rows = [{"x": 0.95, "y": 0.05}, {"x": 0.6, "y": 0.4}, {"u": 0.9, "v": 0.1}, {"z": 0.84, "u": 0.16},
            {"v": 0.86, "u": 0.14}]
    frame = score_paths([f"c{i}" for i in range(5)], [""] * 5, leaf_probs(taxonomy, rows), taxonomy)
    kept, counts = select_pseudo_labels(frame, {"x": 10, "u": 10, "v": 10, "z": 10}, 0.85, None)
    assert sorted(kept["call_id"]) == ["c0", "c2", "c4"]  # path_prob ~0.95, ~0.9, ~0.86; not 0.84 nor 0.6
    assert (kept["path_prob"] >= 0.85).all()
    assert kept["path_prob"].is_monotonic_decreasing
    assert counts["rows_scored"] == 5 and counts["above_threshold"] == 3 and counts["dropped_by_cap"] == 0


def test_threshold_is_inclusive(taxonomy):
    frame = scored_frame([("c0", "x", 0.85), ("c1", "x", 0.8499)], taxonomy)
    kept, _ = select_pseudo_labels(frame, {"x": 5}, 0.85, 1.0)
    assert kept["call_id"].tolist() == ["c0"]


def test_class_cap_keeps_most_confident_per_class(taxonomy):
    rows = [(f"x{i}", "x", 0.90 + i / 100) for i in range(5)]  # 5 confident x rows
    rows += [(f"y{i}", "y", 0.95 - i / 100) for i in range(3)]
    rows += [(f"z{i}", "z", 0.99) for i in range(2)]           # z has no gold train rows: cap 0
    rows += [("low", "u", 0.5)]
    frame = scored_frame(rows, taxonomy)
    kept, counts = select_pseudo_labels(frame, {"x": 2, "y": 3, "u": 10}, 0.85, 1.0)
    per_class = kept["level_3"].value_counts().to_dict()
    assert per_class == {"x": 2, "y": 3}
    assert sorted(kept.loc[kept["level_3"] == "x", "call_id"]) == ["x3", "x4"]  # the two most confident
    assert counts["above_threshold"] == 10 and counts["kept"] == 5 and counts["dropped_by_cap"] == 5
    assert counts["classes_capped"] == 2  # x and z
    assert counts["kept_per_level_1"] == {"a": 5}
    half, _ = select_pseudo_labels(frame, {"x": 3, "y": 3}, 0.85, 0.5)  # floor(1.5) = 1 each
    assert half["level_3"].value_counts().to_dict() == {"x": 1, "y": 1}


def test_class_caps_and_bad_params():
    assert class_caps({"x": 3, "y": 7}, 1.0) == {"x": 3, "y": 7}
    assert class_caps({"x": 3}, 0.7) == {"x": 2}
    assert class_caps({"x": 3}, None) is None
    for bad in (-1, "1", float("nan"), True):
        with pytest.raises(InputError, match="max_per_class_ratio"):
            class_caps({"x": 3}, bad)
    frame = pd.DataFrame({"call_id": [], "path_prob": [], "level_1": [], "level_3": []})
    for bad in (0, 1.5, "0.9"):
        with pytest.raises(InputError, match="min_confidence"):
            select_pseudo_labels(frame, {}, bad, 1.0)


def test_precision_at_threshold(taxonomy):
    rows = [{"x": 0.95, "y": 0.05}, {"u": 0.9, "v": 0.1}, {"x": 0.6, "y": 0.4}, {"z": 0.99, "x": 0.01}]
    true_paths = [("a", "a1", "x"), ("b", "b1", "v"), ("a", "a1", "x"), ("a", "a2", "z")]  # row 1 wrong
    true_ids = np.array([[taxonomy.labels[lv].index(p[d]) for d, lv in enumerate(LEVELS)] for p in true_paths])
    report = precision_at_threshold(leaf_probs(taxonomy, rows), true_ids, taxonomy, 0.85)
    assert report["rows_above_threshold"] == 3
    assert report["coverage"] == 0.75
    assert report["precision"] == round(2 / 3, 4)
    assert report["path_accuracy"] == 0.75
    assert precision_at_threshold(leaf_probs(taxonomy, rows), true_ids, taxonomy, 0.999)["precision"] is None


# --------------------------------------------------------------------------- which rows, which models

def test_labeled_call_ids_include_filtered_out_rows():
    prepared = pd.DataFrame({"call_id": ["A", "B"]})
    raw = pd.DataFrame({"call_id": ["A", "B", "LOWCONF", 12.0], "summary": ["s"] * 4})
    assert labeled_call_ids(prepared, raw, "raw.parquet") == {"A", "B", "LOWCONF", "12"}


def test_model_version_changes_with_weights(tmp_path):
    for level in LEVELS:
        (tmp_path / level).mkdir()
        (tmp_path / level / "head.safetensors").write_bytes(b"head " + level.encode())
        (tmp_path / level / "classifier.json").write_text("{}")
    (tmp_path / "calibration.json").write_text('{"temperature": {}}')
    first = RunFolder(tmp_path).version()
    assert len(first) == 12 and first == RunFolder(tmp_path).version()
    (tmp_path / "level_2" / "head.safetensors").write_bytes(b"retrained")
    second = RunFolder(tmp_path).version()
    (tmp_path / "calibration.json").write_text('{"temperature": {"level_1": 2}}')
    assert len({first, second, RunFolder(tmp_path).version()}) == 3


# --------------------------------------------------------------------------- retrain rows and leakage

def gold_dataset(taxonomy: Taxonomy) -> pd.DataFrame:
    rows = [("g1", "x", "train"), ("g2", "y", "train"), ("g3", "u", "train"), ("v1", "x", "val"),
            ("t1", "z", "test"), ("t2", "v", "test")]
    frame = pd.DataFrame({
        "call_id": [r[0] for r in rows], "summary": [f"gold {r[0]}" for r in rows],
        **{lv: [taxonomy.path_of_leaf(r[1])[d] for r in rows] for d, lv in enumerate(LEVELS)},
        "confidence": [0.9, 0.8, 1.0, 0.9, 0.9, 0.9], "split": [r[2] for r in rows],
    })
    for level in LEVELS:
        frame[f"{level}_id"] = taxonomy.ids(level, frame[level].tolist())
    return frame


def test_leakage_guard_raises_on_test_and_val_ids(taxonomy):
    train = pd.DataFrame({"call_id": ["g1", "p1", "t2"]})
    with pytest.raises(DataLeakageError, match="test split.*t2"):
        assert_no_leakage(train, {"test": ["t1", "t2"], "val": ["v1"]})
    with pytest.raises(DataLeakageError, match="val split.*v1"):
        assert_no_leakage(pd.DataFrame({"call_id": ["g1", "v1"]}), {"test": ["t1"], "val": ["v1"]})
    with pytest.raises(DataLeakageError, match="twice"):
        assert_no_leakage(pd.DataFrame({"call_id": ["g1", "g1"]}), {"test": []})
    assert issubclass(DataLeakageError, InputError)  # a one-line stage error, not a traceback
    assert_no_leakage(pd.DataFrame({"call_id": ["g1", "p1"]}), {"test": ["t1"], "val": ["v1"]})


def test_retrain_rows_refuses_a_pseudo_row_from_the_test_split(taxonomy):
    data = gold_dataset(taxonomy)
    leaked = scored_frame([("p1", "x", 0.9), ("t1", "z", 0.95)], taxonomy)
    with pytest.raises(DataLeakageError, match="test split.*t1"):
        retrain_rows(data, leaked, taxonomy, 0.5)


def test_retrain_rows_weights_and_ids(taxonomy):
    data = gold_dataset(taxonomy)
    pseudo = scored_frame([("p1", "v", 0.9), ("p2", "z", 0.95)], taxonomy)
    rows, counts = retrain_rows(data, pseudo, taxonomy, 0.5)
    assert list(rows.columns) == list(TRAINING_COLUMNS)
    assert rows["call_id"].tolist() == ["g1", "g2", "g3", "p1", "p2"]
    assert rows["sample_weight"].tolist() == [1.0, 1.0, 1.0, 0.5, 0.5]
    p1 = rows[rows["call_id"] == "p1"].iloc[0]
    assert (p1["level_1_id"], p1["level_2_id"], p1["level_3_id"]) == (1, 2, 1)  # b, b1, v
    assert counts["gold_rows"] == 3 and counts["pseudo_rows"] == 2 and counts["pseudo_model_version"] == "test"
    weighted, _ = retrain_rows(data, pseudo, taxonomy, 0.5, confidence_weighting=True)
    assert weighted["sample_weight"].tolist()[:3] == [0.9, 0.8, 1.0]
    for bad in (0, -1, "0.5", float("inf")):
        with pytest.raises(InputError, match="pseudo_label.weight"):
            retrain_rows(data, pseudo, taxonomy, bad)


def test_pseudo_rows_with_labels_outside_the_taxonomy_are_refused(taxonomy):
    pseudo = scored_frame([("p1", "x", 0.9)], taxonomy).assign(level_3="gone")
    with pytest.raises(InputError, match="not in the taxonomy"):
        pseudo_training_rows(pseudo, taxonomy, 0.5)


# --------------------------------------------------------------------------- end-to-end smoke (tiny BERT)

def smoke_repo(root: Path, params: dict) -> Taxonomy:
    """A repository layout (inputs, the prepared dataset, params.yaml on the tiny BERT) under ``root``."""
    import yaml

    from callreason.dataset import encode_dataset
    from tests.conftest import SMALL_TAXONOMY, make_labeled_rows

    taxonomy = Taxonomy.from_dict(SMALL_TAXONOMY)
    raw = make_labeled_rows(70)
    labeled = raw.iloc[:40]
    data, _ = encode_dataset(labeled, taxonomy, 0.2, 0.15, 0, 1)
    (root / "data" / "prepared").mkdir(parents=True)
    data.to_parquet(root / "data" / "prepared" / "dataset.parquet")
    # the raw file also holds a row `filter` dropped (low confidence): it must not be pseudo-labeled either
    pd.concat([labeled, raw.iloc[:1].assign(call_id="LOWCONF", confidence=0.1)]).to_parquet(
        root / "data" / "phase2_labeled.parquet")
    unlabeled = raw.iloc[40:].loc[:, ["call_id", "summary"]].assign(call_id=lambda f: "U" + f["call_id"])
    extra = pd.DataFrame({"call_id": [labeled["call_id"].iat[0], "LOWCONF"], "summary": ["labeled", "filtered"]})
    pd.concat([unlabeled, extra]).to_parquet(root / "data" / "unlabeled_summaries.parquet")
    (root / "taxonomy").mkdir()
    (root / "taxonomy" / "taxonomy.json").write_text(json.dumps(SMALL_TAXONOMY))
    params = {**params, "epochs": 2, "evaluate": {"batch_size": 32},
              "train": {**params["train"], "batch_size": 32, "patience": 1},
              "data": {**params["data"], "labeled": "data/phase2_labeled.parquet",
                       "unlabeled": "data/unlabeled_summaries.parquet", "taxonomy": "taxonomy/taxonomy.json"},
              "pseudo_label": {**params["pseudo_label"], "min_confidence": 0.05, "max_per_class_ratio": 0.5,
                               "weight": 0.5, "batch_size": 16, "chunk_rows": 7},
              "select_uncertain": {"strategy": "margin", "size": 5, "group_by": "level_2"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return taxonomy


def run_stage_main(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr("sys.argv", [module.__name__, *argv])
    module.main()


def test_retrain_chooses_its_own_epochs_on_the_validation_slice_when_told_to(tmp_path, monkeypatch, tiny_params):
    """``pseudo_label.retrain_epochs: early_stopping``: the retrained levels stop early on the validation slice
    (as the held-out run does) instead of replaying the held-out run's epochs."""
    from stages import evaluate, retrain, train

    params = {**tiny_params, "epochs": 3,
              "pseudo_label": {**tiny_params["pseudo_label"], "retrain_epochs": "early_stopping"}}
    smoke_repo(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    for level in LEVELS:
        run_stage_main(train, monkeypatch, "--level", level)
    run_stage_main(evaluate, monkeypatch)
    run_stage_main(retrain, monkeypatch)
    for level in LEVELS:
        record = json.loads((Path("models/retrained") / level / "training.json").read_text())
        assert not record["replayed"] and record["epochs_run"] >= 1


def test_the_stages_after_training_make_a_promoted_or_kept_retrain_and_a_final_refit(tmp_path, monkeypatch,
                                                                                     tiny_params):
    from stages import evaluate, pseudo_label, refit, retrain, select_uncertain, train

    taxonomy = smoke_repo(tmp_path, tiny_params)
    monkeypatch.chdir(tmp_path)
    data = pd.read_parquet("data/prepared/dataset.parquet")
    for level in LEVELS:
        run_stage_main(train, monkeypatch, "--level", level)
    run_stage_main(evaluate, monkeypatch)
    assert set(json.loads(Path("models/heldout/calibration.json").read_text())["temperature"]) == set(LEVELS)

    run_stage_main(retrain, monkeypatch)
    for level in LEVELS:
        assert (Path("models/retrained") / level / "head.safetensors").exists()
    assert Path("models/retrained/label_encoders/taxonomy.json").exists()
    evaluated = json.loads(Path("metrics/retrain.json").read_text())
    heldout = json.loads(Path("metrics/evaluate.json").read_text())
    details = json.loads(Path("reports/retrain.json").read_text())
    assert {"level_1", "level_2", "level_3", "path", "rows", "calibration"} <= set(details)
    assert details["rows"] == heldout["rows"]["test"]  # the same gold test rows
    fit = json.loads(Path("reports/retrain_fit.json").read_text())
    gold = int((data["split"] == "train").sum())
    assert fit["gold_rows"] == gold and fit["levels"]["level_3"]["train_rows"] == gold + fit["pseudo_rows"]
    for level in LEVELS:  # pseudo_label.retrain_epochs: heldout: the held-out run's epochs, a blend weight of its own
        record = json.loads((Path("models/retrained") / level / "training.json").read_text())
        chosen = json.loads((Path("models/heldout") / level / "training.json").read_text())
        assert record["replayed"] and record["val_rows"] == int((data["split"] == "val").sum())
        assert record["epochs_run"] == round(chosen["best_epoch"]) and record["max_length"] == chosen["max_length"]
    promotion = json.loads(Path("models/promotion.json").read_text())
    promoted_rows = pd.read_parquet("data/promoted_pseudo_labels.parquet")
    better = evaluated["retrained"]["level_3"]["macro_f1"] > heldout["level_3"]["macro_f1"]
    assert promotion["promoted"] == evaluated["promoted"]
    assert promotion["promoted"] <= better  # never promoted when not better on the test rows
    assert len(promoted_rows) == (fit["pseudo_rows"] if promotion["promoted"] else 0)

    run_stage_main(refit, monkeypatch)
    final = json.loads(Path("models/final/metadata.json").read_text())
    assert final["gold_rows"] == len(data)  # every usable gold row, test rows included
    assert final["pseudo_rows"] == len(promoted_rows)
    for level in LEVELS:
        record = json.loads((Path("models/final") / level / "training.json").read_text())
        replayed = json.loads(((Path("models/retrained") if promotion["promoted"] else Path("models/heldout"))
                               / level / "training.json").read_text())
        assert record["val_rows"] == 0 and record["train_rows"] == len(data) + len(promoted_rows)
        assert record["epochs_run"] == round(replayed["best_epoch"])
        assert record["max_length"] == replayed["max_length"]

    run_stage_main(pseudo_label, monkeypatch)
    scored = pd.read_parquet("data/unlabeled_scored.parquet")
    pseudo = pd.read_parquet("data/pseudo_labels.parquet")
    metrics = json.loads(Path("reports/pseudo_label.json").read_text())
    assert list(scored.columns) == list(SCORED_COLUMNS) and list(pseudo.columns) == list(POOL_LABEL_COLUMNS)
    assert set(pseudo.loc[pseudo["used_for_training"], "call_id"]) == set(promoted_rows["call_id"]) & set(pseudo["call_id"])
    assert len(scored) == 30 and not set(scored["call_id"]) & ({"LOWCONF"} | set(data["call_id"]))
    assert metrics["input"]["dropped_call_id_in_labeled"] == 2 and metrics["rows_scored"] == 30
    assert metrics["kept"] == len(pseudo) > 0
    assert (pseudo["path_prob"] >= 0.05).all()
    assert all(taxonomy.is_valid_path(*row) for row in pseudo[list(LEVELS)].itertuples(index=False))
    assert metrics["heldout_test_estimate"]["rows"] == (data["split"] == "test").sum()

    run_stage_main(select_uncertain, monkeypatch)
    queue = pd.read_parquet("data/relabel_queue.parquet")
    assert len(queue) == 5 and not set(queue["call_id"]) & set(promoted_rows["call_id"])
