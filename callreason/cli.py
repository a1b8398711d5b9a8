"""The ``callreason`` command: ``callreason predict --input IN --output OUT [--models models/final]`` and
``callreason export --format onnx --output DIR [--models models/final] [--int8]``.

Arguments are parsed before anything heavy is imported, so ``--help`` and argument errors answer at
once. Everything the prediction needs (labels, taxonomy, temperatures, batch size, summary length limit)
comes from the model folder, so it runs from any directory without params.yaml.
"""

from __future__ import annotations

from argparse import RawDescriptionHelpFormatter
from pathlib import Path

from callreason.errors import ArgumentParser, run_stage

PREDICT_HELP = """Predict a valid call-reason path for new summaries.

Reads call_id, summary from a parquet file (or a folder of parquet files) in chunks and writes call_id,
level_1, level_2, level_3 (always a path of the taxonomy), level_N_prob (calibrated probability of each
level's label) and path_prob. One output row per call_id: a call_id repeated with the same summary is
written once; repeated with different summaries, it is an error. Nothing is written unless every row
is usable.
"""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"  # what argparse names in "invalid positive integer value"


def predict_parser(prog: str = "callreason predict") -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=PREDICT_HELP, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="parquet file or folder with call_id, summary")
    parser.add_argument("--output", required=True, type=Path, help="parquet file to write")
    parser.add_argument("--models", type=Path, default=Path("models/final"),
                        help="a run folder (level_1..3, label_encoders, calibration.json, metadata.json); "
                             "default: models/final, the shipped models")
    parser.add_argument("--chunk-rows", type=positive_int, default=20_000, help="rows read into memory at a time")
    parser.add_argument("--batch-size", type=positive_int, help="inference batch size (default: the model folder's)")
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], default="auto",
                        help="torch, or onnx (ONNX Runtime, for a folder written by `callreason export --format "
                             "onnx`); default auto: what the folder holds")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local (this process, default) or ray (Ray Data: a pool of predictor actors on this "
                             "machine, or on the cluster RAY_ADDRESS names; same output; needs `pip install -e .[ray]`)")
    parser.add_argument("--actors", type=positive_int,
                        help="--engine ray: predictors at once (default: as many as the CPUs, or GPUs, allow)")
    parser.add_argument("--cpus-per-actor", type=positive_int, default=1, help="--engine ray: threads per predictor")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0,
                        help="--engine ray: GPUs per predictor (e.g. 1, or 0.5 to share one); default 0: CPU")
    return parser


def predict(argv: list[str] | None = None, prog: str = "callreason predict") -> None:
    """Parse ``argv`` and predict; problems are one line each and exit code 2."""
    parser = predict_parser(prog)
    args = parser.parse_args(argv)
    if args.engine == "local":
        given = [flag for flag, value, default in [("--actors", args.actors, None), ("--cpus-per-actor",
                 args.cpus_per_actor, 1), ("--gpus-per-actor", args.gpus_per_actor, 0.0)] if value != default]
        if given:
            parser.error(f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to --engine ray only")
    if args.gpus_per_actor < 0:
        parser.error(f"--gpus-per-actor: must be >= 0, got {args.gpus_per_actor}")

    def main() -> None:
        from callreason.io import check_outputs
        from callreason.onnx_backend import load_predictor
        from callreason.predict import open_parquet_input, predict_parquet
        from callreason.run_folder import RunFolder
        from callreason.validation import dropped_line

        check_outputs({args.output: "file"}, [args.input, args.models])
        open_parquet_input(args.input)  # a bad input fails before the models are loaded
        inference = RunFolder(args.models).inference_settings()
        batch_size = args.batch_size or inference["batch_size"]
        if args.engine == "ray":
            from callreason.ray_engine import predict_parquet_ray

            counts = predict_parquet_ray(
                args.models, args.input, args.output, batch_size=batch_size, chunk_rows=args.chunk_rows,
                max_chars=inference["max_summary_chars"], backend=args.backend, actors=args.actors,
                cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor)
        else:
            predictor = load_predictor(args.models, batch_size=batch_size, backend=args.backend)
            counts = predict_parquet(predictor, args.input, args.output, args.chunk_rows,
                                     inference["max_summary_chars"])
        print(f"predict: read {counts['rows_read']} rows from {args.input}, wrote {counts['rows_predicted']} "
              f"predictions to {args.output}; {dropped_line(counts)}")

    run_stage("predict", main)


EXPORT_HELP = """Export a run folder for serving.

--format onnx writes a complete run folder whose three level models are ONNX graphs (encoder, pooling and
head; the TF-IDF and neighbour companions, labels, temperatures and metadata are copied), for
`callreason predict --models OUTPUT` on ONNX Runtime. --int8 quantizes the weights dynamically (smaller;
whether it is faster depends on the CPU: measure speed and scores with benchmarks/onnx_speed.py). Needs
`pip install -e .[onnx]`.
"""


def export_parser(prog: str = "callreason export") -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=EXPORT_HELP, formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=["onnx"], required=True, help="onnx: ONNX Runtime on CPU")
    parser.add_argument("--models", type=Path, default=Path("models/final"), help="the run folder to export")
    parser.add_argument("--output", type=Path, required=True, help="the folder to write (new, or an earlier export)")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantization of the weights")
    return parser


def export(argv: list[str] | None = None, prog: str = "callreason export") -> None:
    """Parse ``argv`` and export; problems are one line each and exit code 2."""
    args = export_parser(prog).parse_args(argv)

    def main() -> None:
        from callreason.onnx_backend import export_run

        result = export_run(args.models, args.output, int8=args.int8)
        sizes = ", ".join(f"{level} {size / 1e6:.1f} MB" for level, size in result["levels"].items())
        print(f"export: wrote {args.output}/ (ONNX{', int8' if args.int8 else ''}: {sizes}); predict with "
              f"`callreason predict --models {args.output} --input IN --output OUT`")

    run_stage("export", main)


COMMANDS = {"predict": predict, "export": export}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``callreason`` console script."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(prog="callreason", description="Hierarchical call-reason classifiers.")
    parser.add_argument("command", choices=sorted(COMMANDS),
                        help="predict: label new summaries with a model folder; export: a run folder as ONNX")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r} (choose from {', '.join(sorted(COMMANDS))})")
    COMMANDS[command](rest)


if __name__ == "__main__":
    main()
