"""Hierarchical prediction: three level models, temperature calibration and joint path decoding."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from callreason.distributed import device_name
from callreason.errors import InputError
from callreason.hierarchy import joint_decode, softmax
from callreason.io import atomic_path
from callreason.modeling import (
    TextClassifier, load_classifier, predict_logits, run_batched_shared, shared_bottom_depth,
)
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import validate_prediction_input

PREDICTION_COLUMNS = ("call_id", *LEVELS, *(f"{lv}_prob" for lv in LEVELS), "path_prob")
"""Columns written by ``stages.predict``: a valid path, each level's marginal probability, the path's."""


@dataclass
class HierarchicalPredictor:
    """The three level models of one training run, decoded jointly over the taxonomy's valid paths."""

    taxonomy: Taxonomy
    models: list[tuple[TextClassifier, object]]
    temperatures: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    batch_size: int = 64
    shared_depth: int = field(init=False)  # bottom layers the three models share, run once per batch

    def __post_init__(self):
        self.shared_depth = shared_bottom_depth([m for m, _ in self.models], [tok for _, tok in self.models])

    @classmethod
    def load(cls, models_dir: str | Path, batch_size: int = 64, calibrated: bool = True,
             taxonomy: Taxonomy | None = None) -> "HierarchicalPredictor":
        """Load ``models_dir/level_N``, the taxonomy (``models_dir/label_encoders/taxonomy.json`` unless
        given) and, if present and ``calibrated``, the temperatures in ``models_dir/calibration.json``."""
        models_dir = Path(models_dir)
        taxonomy = taxonomy or Taxonomy.load(models_dir / "label_encoders" / "taxonomy.json")
        models = [load_classifier(models_dir / level, device_name()) for level in LEVELS]
        for level, (model, _) in zip(LEVELS, models):
            if model.classifier_config.labels != taxonomy.labels[level]:
                raise InputError(f"{models_dir / level}: its labels differ from the taxonomy in "
                                 f"{models_dir / 'label_encoders'}; retrain with `dvc repro`")
        temperatures = [1.0, 1.0, 1.0]
        calibration = models_dir / "calibration.json"
        if calibrated and calibration.exists():
            fitted = json.loads(calibration.read_text())["temperature"]
            temperatures = [float(fitted[level]) for level in LEVELS]
        return cls(taxonomy, models, temperatures, batch_size)

    def level_logits(self, texts: list[str]) -> list[np.ndarray]:
        """Raw logits per level, ``[(n, k1), (n, k2), (n, k3)]``."""
        if self.shared_depth == 0:
            return [predict_logits(m, tok, texts, self.batch_size) for m, tok in self.models]
        transformer = run_batched_shared([m for m, _ in self.models], self.models[0][1], texts, self.shared_depth,
                                         self.batch_size)
        return [predict_logits(m, tok, texts, transformer_logits=z) for (m, tok), z in zip(self.models, transformer)]

    def level_probs(self, texts: list[str], logits: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Temperature-scaled softmax probabilities per level."""
        logits = self.level_logits(texts) if logits is None else logits
        return [softmax(z, t) for z, t in zip(logits, self.temperatures)]

    def predict_frame(self, call_ids: list[str], texts: list[str]) -> pd.DataFrame:
        """One row per text with the decoded path and its probabilities (``PREDICTION_COLUMNS``)."""
        return paths_frame(call_ids, self.level_probs(texts), self.taxonomy)


def paths_frame(call_ids: list[str], level_probs: list[np.ndarray], taxonomy: Taxonomy) -> pd.DataFrame:
    """Jointly decoded paths with each level's marginal probability and the path probability."""
    path_index, posterior = joint_decode(level_probs, taxonomy.paths)
    chosen = taxonomy.paths[path_index]
    frame = pd.DataFrame({"call_id": list(call_ids)})
    rows = np.arange(len(path_index))
    for depth, level in enumerate(LEVELS):
        frame[level] = np.asarray(taxonomy.labels[level], dtype=object)[chosen[:, depth]]
    for depth, level in enumerate(LEVELS):
        same_node = taxonomy.paths[None, :, depth] == chosen[:, depth, None]  # (n, n_paths)
        frame[f"{level}_prob"] = (posterior * same_node).sum(1)
    frame["path_prob"] = posterior[rows, path_index]
    return frame


def predict_parquet(
    predictor: HierarchicalPredictor, input_path: str | Path, output_path: str | Path,
    chunk_rows: int = 20_000, max_chars: int = 20_000,
) -> dict[str, int]:
    """Stream ``input_path`` (``call_id, summary``) in chunks into ``output_path``; returns counts.

    Memory stays flat in the input size: one chunk is in memory at a time, and the output is
    written chunk by chunk to a temporary file that replaces ``output_path`` only when complete.
    """
    input_path = Path(input_path)
    try:
        source = pq.ParquetFile(input_path)
    except FileNotFoundError as exc:
        raise InputError(f"{input_path}: file not found") from exc
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{input_path}: not a readable parquet file; write it with `df.to_parquet(path)`") from exc
    missing = {"call_id", "summary"} - set(source.schema_arrow.names)
    if missing:
        raise InputError(f"{input_path}: missing column(s) {sorted(missing)}; expected call_id, summary")
    if source.metadata.num_rows == 0:
        raise InputError(f"{input_path}: no rows, nothing to predict")
    totals = {"rows_read": 0, "rows_predicted": 0}
    with atomic_path(output_path) as tmp, tqdm(total=source.metadata.num_rows, desc="predict", unit="row") as bar:
        writer = None
        for batch in source.iter_batches(batch_size=chunk_rows, columns=["call_id", "summary"]):
            chunk, counts = validate_prediction_input(batch.to_pandas(), str(input_path), max_chars)
            for key, value in counts.items():
                if key not in ("rows_read", "rows_out"):
                    totals[key] = totals.get(key, 0) + int(value)
            totals["rows_read"] += batch.num_rows
            if len(chunk):
                table = pa.Table.from_pandas(
                    predictor.predict_frame(chunk["call_id"].tolist(), chunk["summary"].tolist()), preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                totals["rows_predicted"] += len(chunk)
            bar.update(batch.num_rows)
        if writer is None:
            raise InputError(f"{input_path}: no row with a usable summary, nothing to predict")
        writer.close()
    return totals
