"""pseudo_label: label the unlabeled pool with the shipped models (``models/final``), calibrated.

Every row gets its jointly decoded path, probabilities and uncertainty (``data/unlabeled_scored.parquet``,
what ``select_uncertain`` ranks). Every row whose calibrated path probability reaches
``pseudo_label.min_confidence`` is in ``data/pseudo_labels.parquet`` (the confident call reasons of the
pool, for reporting), with ``used_for_training`` marking the rows the final models trained on (the
class-capped pseudo rows of a promoted ``retrain``). The precision estimate comes from the held-out run on
the test split at the same threshold: the final models have seen every labeled row, so only the held-out
run can estimate it honestly.
"""

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import (
    POOL_LABEL_COLUMNS,
    SCORED_COLUMNS,
    score_unlabeled,
    select_pseudo_labels,
    unlabeled_pool,
    val_estimate,
)
from callreason.relabel import read_relabeled
from callreason.run import FINAL, HELDOUT, PROMOTED_PSEUDO, training_rows
from callreason.run_folder import RunFolder
from callreason.validation import dropped_line

DATASET = "data/prepared/dataset.parquet"
PSEUDO, SCORED = "data/pseudo_labels.parquet", "data/unlabeled_scored.parquet"
METRICS, REPORT = "metrics/pseudo_label.json", "reports/pseudo_label.json"


def main() -> None:
    settings = load_settings()
    cfg, data_cfg = settings.pseudo_label, settings.data
    data = load_dataset(DATASET)
    rows, counts = unlabeled_pool(read_parquet(data_cfg.unlabeled, "unlabeled summaries"), data,
                                  read_parquet(data_cfg.labeled, "labeled data"),
                                  read_relabeled(data_cfg.relabeled)["call_id"], settings,
                                  (data_cfg.labeled, data_cfg.unlabeled))
    predictor = HierarchicalPredictor.load(FINAL, batch_size=cfg.batch_size, calibrated=True)
    version = RunFolder(FINAL).version()
    scored = score_unlabeled(predictor, rows, cfg.chunk_rows).assign(model_version=version)
    kept, selection = select_pseudo_labels(scored, {}, cfg.min_confidence, None)
    trained_on = set(read_parquet(PROMOTED_PSEUDO, "promoted pseudo-labels", "run `dvc repro retrain` first")["call_id"])
    kept["used_for_training"] = kept["call_id"].isin(trained_on)
    heldout = HierarchicalPredictor.load(HELDOUT, batch_size=cfg.batch_size, calibrated=True)
    estimate = val_estimate(heldout, training_rows(data, ("test",)), cfg.min_confidence)
    if not is_main_process():  # under `accelerate launch` every process scored its share; rank 0 writes
        return
    write_parquet(scored.loc[:, list(SCORED_COLUMNS)], SCORED)
    write_parquet(kept.loc[:, list(POOL_LABEL_COLUMNS)], PSEUDO)
    write_json({"model_version": version, "min_confidence": cfg.min_confidence,
                "input": counts, **selection, "used_for_training": int(kept["used_for_training"].sum()),
                "heldout_test_estimate": estimate}, REPORT)
    write_json({"rows_kept": selection["kept"], "coverage": round(selection["above_threshold"] / max(len(scored), 1), 4),
                "precision_estimate": estimate["precision"]}, METRICS)
    print(f"pseudo_label: read {counts['rows_read']} rows from {data_cfg.unlabeled}, {dropped_line(counts)}; "
          f"scored {len(scored)} unlabeled rows with {FINAL} ({version}), {len(kept)} with "
          f"path_prob >= {cfg.min_confidence} ({int(kept['used_for_training'].sum())} of them trained on); "
          f"held-out estimate at that threshold: precision {estimate['precision']} at coverage {estimate['coverage']}; "
          f"wrote {PSEUDO}, {SCORED}, {METRICS}, {REPORT}")


if __name__ == "__main__":
    run_stage("pseudo_label", main)
