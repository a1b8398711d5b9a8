"""``callreason predict --engine ray``: the same prediction on Ray Data, for pools larger than one machine.

The driver runs the same check pass as the local engine (every problem reported before anything is
predicted, call_ids compared across files, the counts); Ray Data then streams the parquet files through a
pool of actors, each holding the run folder's predictor (PyTorch or ONNX), and the driver writes the
predictions as they arrive, in input order, into the same single parquet file, first row per call_id, moved
into place only when complete. So the output is identical to ``--engine local``'s. Memory is flat in the
input: the driver's check holds 16 bytes per row, the pool has a fixed number of actors, one parquet read
task runs per four actors, and the job may fill only a few chunks per actor of Ray's object store
(:func:`object_store_budget`); measured in benchmarks/README.md.

On a cluster, ``RAY_ADDRESS`` (``ray://head:10001``, or run on the head node) chooses it; the input, the run
folder and the output must be paths every node sees (a shared file system), and every node needs this
package installed (``pip install -e .[ray]``, same versions).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from callreason.errors import InputError, cause
from callreason.io import check_outputs, parquet_files
from callreason.onnx_backend import check_backend, load_predictor
from callreason.predict import check_prediction_input, open_parquet_input, write_unique_predictions
from callreason.validation import validate_prediction_input


class PredictActor:
    """One Ray actor: loads the run folder once, then predicts batches of ``call_id, summary``."""

    def __init__(self, models_dir: str, batch_size: int, backend: str, max_chars: int, source: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.predictor = load_predictor(models_dir, batch_size, backend)
        self.max_chars, self.source = max_chars, source

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        chunk, _ = validate_prediction_input(batch, self.source, self.max_chars)
        return self.predictor.predict_frame(chunk["call_id"].tolist(), chunk["summary"].tolist())


def _as_local_frame(block: pa.Table) -> pd.DataFrame:
    """A Ray block as the frame the local engine writes (Ray stores text as ``large_string``)."""
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in block.schema])
    return block.cast(schema).to_pandas()


@contextmanager
def _ray_logs_to_files_only() -> Iterator[None]:
    """Keep Ray's console lines (progress, a failure's stack trace) off the terminal while the job runs; Ray's
    own session files (``/tmp/ray/session_latest/logs``) still get them."""
    consoles = [h for name in ("ray", "ray.data") for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                and type(h).__name__ != "SessionFileHandler"]
    levels = [h.level for h in consoles]
    for handler in consoles:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in zip(consoles, levels):
            handler.setLevel(level)


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError("--engine ray needs Ray: `pip install -e .[ray]` (on every node of the cluster)") from None
    return ray


READERS_PER_ACTOR = 4
"""Predictor actors per concurrent parquet read task (reading a chunk takes a fraction of predicting it)."""
CHUNKS_IN_FLIGHT = 4
"""Chunks per actor the object store may hold: the one it predicts, the next, and their predictions."""
MIN_OBJECT_STORE_BUDGET = 64 * 2**20


def object_store_budget(files: list[str], chunk_rows: int, actors: int) -> int:
    """Bytes of Ray's object store that one prediction job may fill: ``CHUNKS_IN_FLIGHT`` chunks of
    ``chunk_rows`` rows per actor, a row's size taken from the parquet footers of ``files`` (uncompressed
    ``call_id`` + ``summary``), at least ``MIN_OBJECT_STORE_BUDGET``. Bounds the read-ahead, so memory does not
    grow with the input."""
    size = rows = 0
    for file in files:
        metadata = pq.ParquetFile(file).metadata
        for group in (metadata.row_group(i) for i in range(metadata.num_row_groups)):
            rows += group.num_rows
            size += sum(group.column(c).total_uncompressed_size for c in range(group.num_columns)
                        if group.column(c).path_in_schema in ("call_id", "summary"))
    per_row = size / rows if rows else 0.0
    return max(MIN_OBJECT_STORE_BUDGET, int(CHUNKS_IN_FLIGHT * actors * chunk_rows * per_row))


def predict_parquet_ray(
    models_dir: str | Path, input_path: str | Path, output_path: str | Path, *, batch_size: int,
    chunk_rows: int = 20_000, max_chars: int = 20_000, backend: str = "auto", actors: int | None = None,
    cpus_per_actor: int = 1, gpus_per_actor: float = 0.0,
) -> dict[str, int]:
    """:func:`callreason.predict.predict_parquet` on Ray Data; returns the same counts.

    ``actors`` predictors run at once (default: as many as the cluster's CPUs, or GPUs when
    ``gpus_per_actor`` > 0, allow), each on ``cpus_per_actor`` threads, taking ``chunk_rows`` rows at a time.
    A Ray instance is started on this machine unless one is running or ``RAY_ADDRESS`` names a cluster.
    """
    ray = _import_ray()
    check_outputs({output_path: "file"}, [input_path, models_dir])
    check_backend(models_dir, backend)
    dataset = open_parquet_input(input_path)
    source = str(input_path)
    checked = check_prediction_input(dataset, source, chunk_rows, max_chars)
    started = not ray.is_initialized()
    with _ray_logs_to_files_only():
        if started:
            ray.init(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        try:
            cluster = ray.cluster_resources()
            resource, per_actor = ("GPU", gpus_per_actor) if gpus_per_actor > 0 else ("CPU", cpus_per_actor)
            available = cluster.get(resource, 0)
            if available < per_actor:  # Ray would wait for it forever
                raise InputError(f"--engine ray: the Ray cluster has {available:g} {resource}(s), fewer than "
                                 f"--{resource.lower()}s-per-actor {per_actor:g}; ask for fewer (or add nodes)")
            actors = actors or max(1, int(available // per_actor))
            for kind, each in (("CPU", cpus_per_actor), ("GPU", gpus_per_actor)):
                have = cluster.get(kind, 0)
                if actors * each > have:  # the fixed pool would wait forever for the actors it cannot place
                    raise InputError(f"--engine ray: {actors} actors x {each:g} {kind}(s) need {actors * each:g}, "
                                     f"the Ray cluster has {have:g}; ask for fewer --actors (or add nodes)")
            files = [str(Path(f).resolve()) for f in parquet_files(Path(input_path))]
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True  # the output's row order is the input's
            context.enable_progress_bars = False  # one progress bar: the writer's
            # Read ahead only a few chunks per actor (by default Ray Data fills a share of the object store, so
            # the whole of a 1M-row input sat there decoded).
            context.execution_options.resource_limits = ray.data.ExecutionResources.for_limits(
                object_store_memory=object_store_budget(files, chunk_rows, actors))
            # Ray's parquet reader v1 lists the files and reads their footers here, in the driver; v2 (the
            # default) does it in a task that needs a CPU, which waits forever behind a pool holding every CPU.
            context.use_datasource_v2 = False
            reads = ray.data.read_parquet(files, columns=["call_id", "summary"], num_cpus=0,  # reads are light:
                                          concurrency=max(1, actors // READERS_PER_ACTOR))  # few readers suffice
            predicted = reads.map_batches(
                PredictActor, batch_size=chunk_rows, batch_format="pandas", num_cpus=cpus_per_actor,
                # A fixed pool: the same processes for 10k rows or 10M (an autoscaling one added actors as the
                # input grew, so memory grew with it: benchmarks/README.md).
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=gpus_per_actor or None, udf_modifying_row_count=True,
                fn_constructor_kwargs={"models_dir": str(Path(models_dir).resolve()), "batch_size": batch_size,
                                       "backend": backend, "max_chars": max_chars, "source": source,
                                       "threads": cpus_per_actor})
            frames = (_as_local_frame(block) for block in predicted.iter_batches(batch_size=None, batch_format="pyarrow"))
            write_unique_predictions(frames, output_path, checked)
        except ray.exceptions.RayError as exc:
            error = getattr(exc, "cause", None) or exc
            lines = error.lines if isinstance(error, InputError) else [cause(error, 300)]
            raise InputError(*(f"ray: {line}" for line in lines),
                             f"{output_path}: nothing was written (the Ray job failed; Ray's logs: "
                             "/tmp/ray/session_latest/logs)") from None
        finally:
            if started:
                ray.shutdown()
    return checked.counts
