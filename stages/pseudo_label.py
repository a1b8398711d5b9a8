"""pseudo_label: label the unlabeled pool with the shipped models (``models/final``), calibrated.

Every row gets its jointly decoded path, probabilities and uncertainty (``data/unlabeled_scored.parquet``,
what ``select_uncertain`` ranks); rows whose calibrated path probability reaches
``pseudo_label.min_confidence`` are kept, class-capped (``data/pseudo_labels.parquet``). The precision
estimate comes from the held-out run on the test split, at the same threshold: the final models have seen
every labeled row, so only the held-out run can estimate it honestly.
"""

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import (
    PSEUDO_COLUMNS, SCORED_COLUMNS, labeled_call_ids, model_version, score_unlabeled, select_pseudo_labels,
    val_estimate,
)
from callreason.run import FINAL, HELDOUT, training_rows
from callreason.validation import validate_unlabeled

DATASET = "data/prepared/dataset.parquet"
PSEUDO, SCORED, METRICS = "data/pseudo_labels.parquet", "data/unlabeled_scored.parquet", "metrics/pseudo_label.json"


def main() -> None:
    settings = load_settings()
    cfg, data_cfg = settings.pseudo_label, settings.data
    data = load_dataset(DATASET)
    labeled = labeled_call_ids(data, read_parquet(data_cfg.labeled, "labeled data"), data_cfg.labeled)
    rows, counts = validate_unlabeled(read_parquet(data_cfg.unlabeled, "unlabeled summaries"), data_cfg.unlabeled,
                                      labeled, data_cfg.max_summary_chars)
    predictor = HierarchicalPredictor.load(FINAL, batch_size=cfg.batch_size, calibrated=True)
    version = model_version(FINAL)
    scored = score_unlabeled(predictor, rows, cfg.chunk_rows).assign(model_version=version)
    gold_counts = data["level_3"].value_counts().to_dict()
    kept, selection = select_pseudo_labels(scored, gold_counts, cfg.min_confidence, cfg.max_per_class_ratio)
    heldout = HierarchicalPredictor.load(HELDOUT, batch_size=cfg.batch_size, calibrated=True)
    estimate = val_estimate(heldout, training_rows(data, ("test",)), cfg.min_confidence)
    if not is_main_process():  # under `accelerate launch` every process scored its share; rank 0 writes
        return
    write_parquet(scored.loc[:, list(SCORED_COLUMNS)], SCORED)
    write_parquet(kept.loc[:, list(PSEUDO_COLUMNS)], PSEUDO)
    write_json({"model_version": version, "min_confidence": cfg.min_confidence,
                "max_per_class_ratio": cfg.max_per_class_ratio, "input": counts, **selection,
                "heldout_test_estimate": estimate}, METRICS)
    print(f"pseudo_label: scored {len(scored)} unlabeled rows with {FINAL} ({version}), kept {len(kept)} with "
          f"path_prob >= {cfg.min_confidence} ({selection['dropped_by_cap']} dropped by the per-class cap); "
          f"held-out estimate at that threshold: precision {estimate['precision']} at coverage {estimate['coverage']}; "
          f"wrote {PSEUDO}, {SCORED}, {METRICS}")


if __name__ == "__main__":
    run_stage("pseudo_label", main)
