"""Hierarchical prediction: three level models, temperature calibration and joint path decoding."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from callreason.calibration import calibrate, uncalibrated_report
from callreason.distributed import device_name
from callreason.errors import InputError, cause
from callreason.hierarchy import joint_decode, softmax
from callreason.io import atomic_path, check_input_file, check_outputs, parquet_files
from callreason.modeling import (
    TextClassifier,
    blended_logits,
    load_classifier,
    run_batched,
    run_batched_shared,
    shared_bottom_depth,
)
from callreason.run_folder import RunFolder
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

    LABELS_FIX = "retrain with `dvc repro`"  # what to do when a level's labels are not the taxonomy's

    @classmethod
    def load(cls, models_dir: str | Path, batch_size: int = 64, calibrated: bool = True,
             taxonomy: Taxonomy | None = None) -> "HierarchicalPredictor":
        """Load a run folder (:class:`callreason.run_folder.RunFolder`): its level models (:meth:`load_level`),
        its taxonomy (unless given) and, if present and ``calibrated``, its temperatures."""
        run = RunFolder(models_dir)
        taxonomy = taxonomy or run.read_taxonomy()
        models = [cls.load_level(run.level(level)) for level in LEVELS]
        for level, (model, _) in zip(LEVELS, models):
            if model.classifier_config.labels != taxonomy.labels[level]:
                raise InputError(f"{run.level(level)}: its labels differ from the taxonomy in "
                                 f"{run.label_encoders}; {cls.LABELS_FIX}")
        temperatures = [1.0, 1.0, 1.0]
        if calibrated and run.has_calibration():
            fitted = run.read_temperatures()
            temperatures = [fitted[level] for level in LEVELS]
        return cls(taxonomy, models, temperatures, batch_size)

    @classmethod
    def load_level(cls, folder: Path) -> tuple[TextClassifier, object]:
        """One level's model and tokenizer, from its folder."""
        return load_classifier(folder, device_name())

    def level_logits(self, texts: list[str]) -> list[np.ndarray]:
        """Raw logits per level, ``[(n, k1), (n, k2), (n, k3)]``."""
        if self.shared_depth == 0:
            transformer = [run_batched(m, tok, texts, self.batch_size) for m, tok in self.models]
        else:
            transformer = run_batched_shared([m for m, _ in self.models], self.models[0][1], texts, self.shared_depth,
                                             self.batch_size)
        return blended_logits(self.models, texts, transformer)

    def level_probs(self, texts: list[str], logits: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Temperature-scaled softmax probabilities per level."""
        logits = self.level_logits(texts) if logits is None else logits
        return [softmax(z, t) for z, t in zip(logits, self.temperatures)]

    def fit_temperatures(self, val_rows: pd.DataFrame) -> dict:
        """Fit one temperature per level on ``val_rows`` (``summary``, ``level_N_id``) and use them; with
        fewer than 2 rows the current ones stay. Returns :func:`callreason.calibration.calibrate`'s report."""
        if len(val_rows) < 2:
            return uncalibrated_report()
        logits = self.level_logits(val_rows["summary"].tolist())
        self.temperatures, report = calibrate(logits, [val_rows[f"{level}_id"].to_numpy() for level in LEVELS])
        return report

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


def open_parquet_input(path: str | Path) -> "ds.Dataset":
    """A parquet file, or a folder of parquet files (read as one table), with ``call_id`` and ``summary``;
    a file of the folder that is not parquet is named."""
    path = check_input_file(path, "input", folder_ok=True)
    files = parquet_files(path)
    problems = []
    for file in files:
        schema = pq.read_schema(file)
        missing = [c for c in ("call_id", "summary") if c not in schema.names]
        if missing:
            problems.append(f"{file}: missing column(s) {missing}; expected call_id, summary")
        elif not _is_text(schema.field("summary").type):
            problems.append(f"{file}: column 'summary' holds {schema.field('summary').type}, not text; write the "
                            "summaries as strings")
    if problems:
        raise InputError(*problems)
    try:
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        rows = dataset.count_rows()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file (or folder of them: "
                         f"{cause(exc, 100)}); write the files with `df.to_parquet(path)` and the same columns") from exc
    if rows == 0:
        raise InputError(f"{path}: no rows, nothing to predict")
    return dataset


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def _chunks(dataset, chunk_rows: int, source: str):
    """``(first_row, frame)`` per chunk of ``chunk_rows`` rows (columns call_id, summary)."""
    first = 0
    # File by file: the dataset-wide scanner reads ahead of a slow consumer (the check, the models) and held
    # most of a 1M-row pool decoded at once (benchmarks/scale_out.py); a file's scanner holds a row group.
    batches = (batch for fragment in dataset.get_fragments()
               for batch in fragment.to_batches(schema=dataset.schema, columns=["call_id", "summary"],
                                                batch_size=chunk_rows))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{source}: rows from {first}: a file of the input cannot be read with the others "
                             f"({cause(exc)}); give every file the same columns and "
                             "types (call_id, summary as text)") from None
        if batch.num_rows:
            yield first, batch.to_pandas()
            first += batch.num_rows


MAX_PROBLEM_LINES = 20


def call_id_hashes(texts: pd.Series) -> np.ndarray:
    """A 64-bit hash per call_id (or summary; ``uint64``, the same in every process and run), so that comparing
    call_ids across a pool costs 8 bytes per row instead of a Python string per row."""
    return pd.util.hash_array(texts.to_numpy(dtype=object))


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """The values that occur more than once in ``hashes``, sorted."""
    values, counts = np.unique(hashes, return_counts=True)
    return values[counts > 1]


def _may_repeat(call_ids: pd.Series, repeated: np.ndarray) -> np.ndarray:
    """Positions in ``call_ids`` whose hash is in ``repeated`` (:func:`_repeated`): the only rows whose
    call_id can occur elsewhere, which are then compared exactly."""
    return np.flatnonzero(np.isin(call_id_hashes(call_ids), repeated))


@dataclass
class CheckedInput:
    """What :func:`check_prediction_input` learned: the ``counts`` predicting will report and the hashes of the
    call_ids that occur in more than one chunk (:func:`call_id_hashes`; usually none), which the writer needs."""

    counts: dict[str, int]
    repeated_call_ids: np.ndarray


def check_prediction_input(dataset, source: str, chunk_rows: int, max_chars: int) -> CheckedInput:
    """Validate every chunk before anything is predicted, so all problems surface at once and a call_id
    repeated in two chunks is caught. Counts what predicting it will count: ``rows_read``, ``rows_predicted``
    and each reason a row is left out (:data:`callreason.validation.DROP_REASONS`).

    Memory: 16 bytes per row (a hash of each call_id and of its summary) plus one chunk; call_ids whose hash
    repeats are then compared exactly, in a second pass that holds only those (none in a pool without repeats).
    """
    lines: list[str] = []
    id_hashes: list[np.ndarray] = []
    text_hashes: list[np.ndarray] = []
    totals = {"rows_read": 0, "rows_predicted": 0, "dropped_duplicate_call_id": 0}
    for first, frame in _chunks(dataset, chunk_rows, source):
        totals["rows_read"] += len(frame)
        try:
            chunk, counts = validate_prediction_input(frame, source, max_chars)
        except InputError as exc:
            where = f"rows {first}-{first + len(frame) - 1}: "
            lines += [line.replace(f"{source}: ", f"{source}: {where}", 1) for line in exc.lines]
            continue
        for key, value in counts.items():
            if key not in ("rows_read", "rows_out"):
                totals[key] = totals.get(key, 0) + int(value)
        id_hashes.append(call_id_hashes(chunk["call_id"]))
        text_hashes.append(call_id_hashes(chunk["summary"]))
    usable = int(sum(len(h) for h in id_hashes))
    repeated = _repeated(np.concatenate(id_hashes)) if id_hashes else np.empty(0, np.uint64)
    del id_hashes
    ambiguous: list[str] = []
    if len(repeated) and not lines:  # the exact comparison, of the few rows whose call_id hash repeats
        first_summary: dict[str, int] = {}
        hashes = iter(text_hashes)
        for _, frame in _chunks(dataset, chunk_rows, source):
            chunk, _ = validate_prediction_input(frame, source, max_chars)
            summaries = next(hashes)
            for k in _may_repeat(chunk["call_id"], repeated):
                call_id, summary = chunk["call_id"].iat[k], int(summaries[k])
                if call_id not in first_summary:
                    first_summary[call_id] = summary
                    continue
                totals["dropped_duplicate_call_id"] += 1
                if first_summary[call_id] != summary and call_id not in ambiguous:
                    ambiguous.append(call_id)
    if ambiguous:
        shown = ", ".join(repr(i) for i in ambiguous[:5]) + (f" and {len(ambiguous) - 5} more" if len(ambiguous) > 5 else "")
        lines.append(f"{source}: {len(ambiguous)} call_id(s) appear more than once with different summaries "
                     f"(ambiguous): {shown}; give each call a unique call_id or remove the extra rows")
    if len(lines) > MAX_PROBLEM_LINES:
        lines = lines[:MAX_PROBLEM_LINES] + [f"{source}: ... and {len(lines) - MAX_PROBLEM_LINES} more problem lines"]
    if lines:
        raise InputError(*lines)
    if not usable:
        raise InputError(f"{source}: no row with a usable summary, nothing to predict")
    totals["rows_predicted"] = usable - totals["dropped_duplicate_call_id"]
    return CheckedInput(totals, repeated)


def write_unique_predictions(frames: Iterable[pd.DataFrame], output_path: str | Path, checked: CheckedInput) -> None:
    """Write predicted ``frames`` (in input order) to ``output_path`` as one parquet file, keeping the first
    row of each call_id; the file appears only when all the rows ``checked`` counted are written. Only the
    call_ids whose hash ``checked`` saw repeated are remembered, so memory does not grow with the rows."""
    expected = checked.counts["rows_predicted"]
    seen: set[str] = set()  # of the call_ids that can repeat
    written = 0
    with atomic_path(output_path) as tmp, tqdm(total=expected, desc="predict", unit="row") as bar:
        writer = None
        for frame in frames:
            if len(checked.repeated_call_ids):
                keep = np.ones(len(frame), dtype=bool)
                call_ids = frame["call_id"]
                for k in _may_repeat(call_ids, checked.repeated_call_ids):
                    keep[k] = call_ids.iat[k] not in seen
                    seen.add(call_ids.iat[k])
                frame = frame[keep]
            if not len(frame):
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            written += len(frame)
            bar.update(len(frame))
        if writer is None or written != expected:
            raise RuntimeError(f"predicted {written} rows where the check counted {expected}")
        writer.close()


def predict_parquet(
    predictor: HierarchicalPredictor, input_path: str | Path, output_path: str | Path,
    chunk_rows: int = 20_000, max_chars: int = 20_000,
) -> dict[str, int]:
    """Predict ``input_path`` (a parquet file or folder with ``call_id, summary``) into ``output_path``.

    A first pass checks every chunk (all problems reported together, call_ids compared across chunks) and
    counts; the second predicts chunk by chunk, one output row per call_id (a repeat with the same summary
    is dropped and counted). One chunk is in memory at a time, plus 16 bytes per row during the check
    (:func:`check_prediction_input`); the output is written to a temporary file that replaces ``output_path``
    only when complete.
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    check_outputs({output_path: "file"}, [input_path])
    dataset = open_parquet_input(input_path)
    source = str(input_path)
    checked = check_prediction_input(dataset, source, chunk_rows, max_chars)

    def predicted() -> Iterator[pd.DataFrame]:
        for _, frame in _chunks(dataset, chunk_rows, source):
            chunk, _ = validate_prediction_input(frame, source, max_chars)
            if len(chunk):
                yield predictor.predict_frame(chunk["call_id"].tolist(), chunk["summary"].tolist())

    write_unique_predictions(predicted(), output_path, checked)
    return checked.counts
