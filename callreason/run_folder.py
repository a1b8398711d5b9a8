"""The layout of a run folder (``models/heldout``, ``models/retrained``, ``models/final``), and the one place
that reads and writes its files.

A run folder holds:

* ``level_1/``, ``level_2/``, ``level_3/``: one model each (:func:`callreason.modeling.save_classifier`:
  encoder, tokenizer, head, ``classifier.json``, the companions) and its ``training.json``
  (:func:`write_training_record`: how it was trained, the choices a refit replays);
* ``label_encoders/``: ``level_N_classes.csv`` (column ``label``, row number = class id) and ``taxonomy.json``;
* ``calibration.json``: ``{"temperature": {level_N: T}}``;
* ``metadata.json``: base model and revision, classes, what ``predict`` needs besides the models
  (``inference``: batch size, summary length limit) and what the run was trained on;
* ``README.md``: the model card (:mod:`callreason.model_card`), for people.

Everything ``predict`` needs is here, so a run folder can be copied and used without params.yaml.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from callreason.errors import InputError
from callreason.io import atomic_path, read_json, write_json
from callreason.taxonomy import LEVELS, Taxonomy

TRAINING_RECORD = "training.json"
DAMAGED = "the model folder is incomplete or damaged: write it again with `dvc repro` (or copy it again)"
INFERENCE_DEFAULTS = {"batch_size": 64, "max_summary_chars": 20_000}
"""What ``predict`` uses when a run folder's ``metadata.json`` has no ``inference`` section."""


def write_training_record(level_dir: Path, record: dict[str, Any]) -> None:
    """``level_dir/training.json``: how the level model was trained (written beside the model)."""
    (Path(level_dir) / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")


def read_training_record(level_dir: Path) -> dict[str, Any]:
    """The ``training.json`` of a level model folder."""
    path = Path(level_dir) / TRAINING_RECORD
    if not path.exists():
        raise InputError(f"{level_dir}: no {TRAINING_RECORD}; retrain it with `dvc repro`")
    record = read_json(path, "training record", "the model folder is incomplete or damaged: retrain it with `dvc repro`")
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a JSON object; the model folder is damaged: retrain it with `dvc repro`")
    return record


def _is_positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class RunFolder:
    """A run folder at ``root`` (it may not exist yet)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def level(self, level: str) -> Path:
        """The folder of one level's model."""
        return self.root / level

    @property
    def label_encoders(self) -> Path:
        return self.root / "label_encoders"

    @property
    def taxonomy_path(self) -> Path:
        return self.label_encoders / "taxonomy.json"

    @property
    def calibration_path(self) -> Path:
        return self.root / "calibration.json"

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.json"

    @property
    def model_card_path(self) -> Path:
        return self.root / "README.md"

    # ------------------------------------------------------------------ writing

    def write_label_encoders(self, taxonomy: Taxonomy) -> None:
        """``label_encoders/``: ``level_N_classes.csv`` and ``taxonomy.json``, replaced as a whole."""
        with atomic_path(self.label_encoders) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            for level in LEVELS:
                pd.DataFrame({"label": taxonomy.labels[level]}).to_csv(tmp / f"{level}_classes.csv", index=False)
            (tmp / "taxonomy.json").write_text(json.dumps(taxonomy.to_dict(), indent=2) + "\n")

    def write_calibration(self, temperature: dict[str, float]) -> None:
        """``calibration.json``: one temperature per level, rounded to 4 decimals."""
        write_json({"temperature": {level: round(float(temperature[level]), 4) for level in LEVELS}},
                   self.calibration_path)

    def write_metadata(self, metadata: dict[str, Any]) -> None:
        write_json(metadata, self.metadata_path)

    def write_model_card(self, text: str) -> None:
        """``README.md``: the model card (:func:`callreason.model_card.model_card`)."""
        with atomic_path(self.model_card_path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    # ------------------------------------------------------------------ reading

    def check_exists(self) -> None:
        """A missing path, a file, or a folder without ``metadata.json`` is an ``InputError``."""
        if not self.root.exists():
            raise InputError(f"{self.root}: --models not found; give a run folder, e.g. models/final (written by "
                             "`dvc repro`)")
        if not self.root.is_dir():
            raise InputError(f"{self.root}: --models is not a folder; give a run folder, e.g. models/final "
                             "(written by `dvc repro`)")
        if not self.metadata_path.exists():
            raise InputError(f"{self.root}: not a model folder (no metadata.json); give --models, e.g. the "
                             "models/final folder that `dvc repro` writes")

    def read_metadata(self) -> dict[str, Any]:
        """``metadata.json`` (a JSON object, else an ``InputError``)."""
        metadata = read_json(self.metadata_path, "model metadata", DAMAGED)
        if not isinstance(metadata, dict):
            raise InputError(f"{self.metadata_path}: expected a JSON object; {DAMAGED}")
        return metadata

    def read_taxonomy(self) -> Taxonomy:
        if not self.taxonomy_path.is_file():
            raise InputError(f"{self.root}: no label_encoders/taxonomy.json; {DAMAGED}")
        return Taxonomy.load(self.taxonomy_path)

    def has_calibration(self) -> bool:
        return self.calibration_path.exists()

    def read_temperatures(self) -> dict[str, float]:
        """The per-level temperatures of ``calibration.json`` (positive numbers, else an ``InputError``)."""
        stored = read_json(self.calibration_path, "calibration", DAMAGED)
        fitted = stored.get("temperature") if isinstance(stored, dict) else None
        if not isinstance(fitted, dict) or not all(_is_positive(fitted.get(level)) for level in LEVELS):
            raise InputError(f"{self.calibration_path}: expected {{\"temperature\": {{level_1: t, level_2: t, "
                             f"level_3: t}}}} with positive numbers; {DAMAGED}")
        return {level: float(fitted[level]) for level in LEVELS}

    def inference_settings(self) -> dict[str, int]:
        """What ``predict`` needs besides the models (``metadata.json`` ``inference``: the batch size and the
        summary length limit); a missing, damaged or incomplete folder is an ``InputError``."""
        self.check_exists()
        metadata = read_json(self.metadata_path, "model metadata", DAMAGED)
        inference = metadata.get("inference") if isinstance(metadata, dict) else None
        if inference is None:
            return dict(INFERENCE_DEFAULTS)
        if not isinstance(inference, dict) or not all(
                isinstance(inference.get(k, 1), int) and inference.get(k, 1) >= 1 for k in INFERENCE_DEFAULTS):
            raise InputError(f"{self.metadata_path}: 'inference' must map batch_size and max_summary_chars to "
                             f"positive integers; {DAMAGED}")
        return {key: int(inference.get(key, value)) for key, value in INFERENCE_DEFAULTS.items()}

    def training_records(self, levels: tuple[str, ...] = LEVELS) -> dict[str, dict[str, Any]]:
        """``training.json`` of each level model."""
        return {level: read_training_record(self.level(level)) for level in levels}

    def version(self, length: int = 12) -> str:
        """Short sha256 over the files that decide the predictions: each level's weights (``*.safetensors``)
        and ``classifier.json``, and ``calibration.json`` (temperatures)."""
        digest = hashlib.sha256()
        files = [f for level in LEVELS for f in sorted(self.level(level).glob("*.safetensors"))]
        files += [self.level(level) / "classifier.json" for level in LEVELS] + [self.calibration_path]
        for path in files:
            if not path.exists():
                continue
            digest.update(str(path.relative_to(self.root)).encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()[:length]
