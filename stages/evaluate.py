"""evaluate: score the three level models on the gold test rows (also used by retrain via --models)."""

import argparse
from pathlib import Path

from callreason.dataset import load_dataset
from callreason.errors import run_stage
from callreason.evaluation import evaluate_run, write_metadata
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.taxonomy import LEVELS

DATASET = "data/prepared/dataset.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="models", help="folder with level_1..3 and label_encoders")
    parser.add_argument("--name", default="evaluate", help="names the metrics/plots/reports outputs")
    args = parser.parse_args()
    settings = load_settings()
    data = load_dataset(DATASET)
    models = Path(args.models)
    predictor = HierarchicalPredictor.load(models, batch_size=settings.evaluate.batch_size, calibrated=False)
    metrics = evaluate_run(predictor, data[data["split"] == "test"], data[data["split"] == "val"], args.name,
                           calibration_path=models / "calibration.json",
                           predictions_path=Path("data/predictions") / f"{args.name}_test.parquet")
    write_metadata(settings.model, predictor, (data["split"] == "train").sum(), metrics, models / "metadata.json")
    scores = ", ".join(f"{level} {metrics[level]['macro_f1']:.3f}" for level in LEVELS)
    print(f"{args.name}: {metrics['rows']} test rows, macro-F1 {scores}, path accuracy "
          f"{metrics['path']['accuracy']:.3f}; wrote metrics/{args.name}.json, plots/{args.name}/")


if __name__ == "__main__":
    run_stage("evaluate", main)
