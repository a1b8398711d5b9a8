"""Predict a valid call-reason path for new summaries: ``python -m stages.predict --input IN --output OUT``.

Reads ``call_id, summary`` from a parquet file in chunks and writes ``call_id, level_1, level_2,
level_3, level_N_prob, path_prob`` (calibrated probabilities). Not a DVC stage.
"""

import argparse

from callreason.errors import run_stage
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor, predict_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="parquet with call_id, summary")
    parser.add_argument("--output", required=True, help="parquet to write")
    parser.add_argument("--models", default="models/final",
                        help="a run folder (level_1..3, label_encoders, calibration.json); default: the shipped models")
    parser.add_argument("--chunk-rows", type=int, default=20_000, help="rows read into memory at a time")
    args = parser.parse_args()
    settings = load_settings()
    predictor = HierarchicalPredictor.load(args.models, batch_size=settings.evaluate.batch_size)
    counts = predict_parquet(predictor, args.input, args.output, args.chunk_rows, settings.data.max_summary_chars)
    dropped = {k: v for k, v in counts.items() if k.startswith("dropped") and v}
    print(f"predict: read {counts['rows_read']} rows from {args.input}, wrote {counts['rows_predicted']} "
          f"predictions to {args.output}" + (f"; dropped {dropped}" if dropped else ""))


if __name__ == "__main__":
    run_stage("predict", main)
