"""retrain: fit the three levels on gold train + down-weighted pseudo rows, then evaluate like `evaluate`."""

import shutil
from pathlib import Path

import numpy as np

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.evaluation import evaluate_run, write_metadata
from callreason.io import atomic_path, read_parquet, write_json
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import retrain_rows
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.training import fit_level

DATASET, PSEUDO = "data/prepared/dataset.parquet", "data/pseudo_labels.parquet"
OUT, NAME = Path("models/retrained"), "retrain"


def main() -> None:
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    data = load_dataset(DATASET)
    pseudo = read_parquet(PSEUDO, "pseudo-labels (run `dvc repro pseudo_label`)")
    rows, counts = retrain_rows(data, pseudo, taxonomy, settings.pseudo_label.weight,
                                settings.train.confidence_weighting)
    val, test = data[data["split"] == "val"], data[data["split"] == "test"]
    weights = rows["sample_weight"].to_numpy(np.float32)
    fits = {level: fit_level(level, rows, val, taxonomy.labels[level], settings, model_dir=OUT / level,
                             live_dir=Path("dvclive/retrained") / level, work_dir=Path(".scratch/retrained") / level,
                             sample_weight=weights) for level in LEVELS}
    if not is_main_process():
        return
    with atomic_path(OUT / "label_encoders") as tmp:
        shutil.copytree("models/label_encoders", tmp)
    predictor = HierarchicalPredictor.load(OUT, batch_size=settings.evaluate.batch_size, calibrated=False)
    metrics = evaluate_run(predictor, test, val, NAME, calibration_path=OUT / "calibration.json",
                           predictions_path=Path("data/predictions") / f"{NAME}_test.parquet")
    write_metadata(settings.model, predictor, len(rows), metrics, OUT / "metadata.json", **counts)
    write_json({**counts, "levels": fits}, f"metrics/{NAME}_fit.json")
    scores = ", ".join(f"{level} {metrics[level]['macro_f1']:.3f}" for level in LEVELS)
    print(f"{NAME}: {counts['gold_rows']} gold + {counts['pseudo_rows']} pseudo rows "
          f"(weight {counts['pseudo_weight']:g}); "
          f"{metrics['rows']} test rows, macro-F1 {scores}, path accuracy {metrics['path']['accuracy']:.3f}; "
          f"wrote {OUT}/, metrics/{NAME}.json, plots/{NAME}/")


if __name__ == "__main__":
    run_stage(NAME, main)
