"""pseudo_label: score the unlabeled summaries with the calibrated models; keep confident, class-capped paths."""

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import (
    PSEUDO_COLUMNS, SCORED_COLUMNS, calibration_errors, labeled_call_ids, model_version, score_unlabeled,
    select_pseudo_labels, val_estimate,
)
from callreason.validation import validate_unlabeled

DATASET, MODELS = "data/prepared/dataset.parquet", "models"
PSEUDO, SCORED, METRICS = "data/pseudo_labels.parquet", "data/unlabeled_scored.parquet", "metrics/pseudo_label.json"


def main() -> None:
    settings = load_settings()
    cfg, data_cfg = settings.pseudo_label, settings.data
    data = load_dataset(DATASET)
    labeled = labeled_call_ids(data, read_parquet(data_cfg.labeled, "labeled data"), data_cfg.labeled)
    rows, counts = validate_unlabeled(read_parquet(data_cfg.unlabeled, "unlabeled summaries"), data_cfg.unlabeled,
                                      labeled, data_cfg.max_summary_chars)
    predictor = HierarchicalPredictor.load(MODELS, batch_size=cfg.batch_size, calibrated=True)
    version = model_version(MODELS)
    scored = score_unlabeled(predictor, rows, cfg.chunk_rows).assign(model_version=version)
    train_counts = data.loc[data["split"] == "train", "level_3"].value_counts().to_dict()
    kept, selection = select_pseudo_labels(scored, train_counts, cfg.min_confidence, cfg.max_per_class_ratio)
    estimate = val_estimate(predictor, data[data["split"] == "val"], cfg.min_confidence)
    if not is_main_process():  # under `accelerate launch` every process scored its share; rank 0 writes
        return
    write_parquet(scored.loc[:, list(SCORED_COLUMNS)], SCORED)
    write_parquet(kept.loc[:, list(PSEUDO_COLUMNS)], PSEUDO)
    write_json({"model_version": version, "min_confidence": cfg.min_confidence,
                "max_per_class_ratio": cfg.max_per_class_ratio, "input": counts, **selection,
                "val_estimate": estimate, **calibration_errors("metrics/evaluate.json")}, METRICS)
    print(f"pseudo_label: scored {len(scored)} unlabeled rows with models {version}, kept {len(kept)} with path_prob "
          f">= {cfg.min_confidence} ({selection['dropped_by_cap']} dropped by the per-class cap); on val: precision "
          f"{estimate['precision']} at coverage {estimate['coverage']}; wrote {PSEUDO}, {SCORED}, {METRICS}")


if __name__ == "__main__":
    run_stage("pseudo_label", main)
