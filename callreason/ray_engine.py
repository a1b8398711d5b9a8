"""``callreason predict --engine ray``: the same prediction on Ray Data, for pools larger than one machine.

The driver runs the same check pass as the local engine (every problem reported before anything is
predicted, call_ids compared across files, the counts); Ray Data then streams the parquet files through a
pool of actors, each holding the run folder's predictor (PyTorch or ONNX), and the driver writes the
predictions as they arrive, in input order, into the same single parquet file, first row per call_id, moved
into place only when complete. So the output is identical to ``--engine local``'s. The driver's memory is
flat in the input (the check holds 16 bytes per row); Ray's worker processes are not yet shown to be
(measured in benchmarks/README.md).

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
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True  # the output's row order is the input's
            context.enable_progress_bars = False  # one progress bar: the writer's
            resource, per_actor = ("GPU", gpus_per_actor) if gpus_per_actor > 0 else ("CPU", cpus_per_actor)
            available = ray.cluster_resources().get(resource, 0)
            if available < per_actor:  # Ray would wait for it forever
                raise InputError(f"--engine ray: the Ray cluster has {available:g} {resource}(s), fewer than "
                                 f"--{resource.lower()}s-per-actor {per_actor:g}; ask for fewer (or add nodes)")
            actors = actors or max(1, int(available // per_actor))
            files = [str(Path(f).resolve()) for f in parquet_files(Path(input_path))]
            reads = ray.data.read_parquet(files, num_cpus=0).select_columns(["call_id", "summary"])  # reads are light
            predicted = reads.map_batches(
                PredictActor, batch_size=chunk_rows, batch_format="pandas", num_cpus=cpus_per_actor,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),  # grows once the file listing is done
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
