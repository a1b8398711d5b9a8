"""retrain: does adding pseudo-labels help? Decided on the gold test rows, before any refit.

The held-out run (``models/heldout``, calibrated) labels the unlabeled pool; confident, class-capped paths
join the train split at weight ``pseudo_label.weight``; the three levels are trained again
(``models/retrained``) and scored on the same test rows (``metrics/retrain.json``). The retrained run is
promoted (``refit`` then adds these pseudo rows and replays its choices) only if it beats the held-out run
(:func:`callreason.run.promotion_decision`); otherwise it is kept for comparison.
"""

from pathlib import Path

import numpy as np

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.evaluation import evaluate_run, write_evaluation
from callreason.io import read_json, read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.predict import HierarchicalPredictor
from callreason.pseudo_labels import (
    PSEUDO_COLUMNS,
    empty_pseudo_labels,
    labeled_call_ids,
    retrain_set,
    score_unlabeled,
)
from callreason.relabel import read_relabeled
from callreason.run import (
    HELDOUT,
    PROMOTED_PSEUDO,
    PROMOTION,
    RETRAINED,
    fit_levels,
    promotion_decision,
    suspect_call_ids,
    training_rows,
    write_run_files,
)
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import dropped_line, validate_unlabeled

DATASET, NAME = "data/prepared/dataset.parquet", "retrain"


def main() -> None:
    settings = load_settings()
    cfg = settings.pseudo_label
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    data = load_dataset(DATASET)
    labeled = labeled_call_ids(data, read_parquet(settings.data.labeled, "labeled data"), settings.data.labeled,
                               read_relabeled(settings.data.relabeled)["call_id"])
    pool, pool_counts = validate_unlabeled(read_parquet(settings.data.unlabeled, "unlabeled summaries"), settings.data.unlabeled,
                                 labeled, settings.data.max_summary_chars)
    heldout = HierarchicalPredictor.load(HELDOUT, batch_size=cfg.batch_size, calibrated=True)
    scored = score_unlabeled(heldout, pool, cfg.chunk_rows).assign(model_version=RunFolder(HELDOUT).version())
    suspects = suspect_call_ids(training_rows(data, ("train", "val")), taxonomy, settings)
    rows, pseudo, counts = retrain_set(data, scored, suspects, taxonomy, settings)
    val, test = training_rows(data, ("val",)), training_rows(data, ("test",))
    fits = fit_levels(rows, val, taxonomy, settings, RETRAINED, Path(".scratch/retrained"),
                      live_root=Path("dvclive/retrained"), sample_weight=rows["sample_weight"].to_numpy(np.float32))
    if not is_main_process():
        return
    predictor = HierarchicalPredictor.load(RETRAINED, batch_size=settings.evaluate.batch_size, calibrated=False,
                                           taxonomy=taxonomy)
    evaluation = evaluate_run(predictor, test, val, median_confidence=float(data["confidence"].median()))
    write_evaluation(evaluation, taxonomy, NAME, Path(f"plots/{NAME}"), Path("reports"),
                     Path(f"data/predictions/{NAME}_test.parquet"))
    metrics = evaluation.details
    decision = promotion_decision(read_json("metrics/evaluate.json", "held-out metrics", "run `dvc repro evaluate` first"),
                                  metrics)
    temperature = metrics["calibration"]["temperature"]
    write_run_files(RETRAINED, taxonomy, settings, temperature, run="retrained",
                    trained_on="the train split + pseudo-labels of the unlabeled pool",
                    choices_made_on=f"the validation slice ({len(val)} rows)",
                    scored_on=f"the test split ({len(test)} rows): metrics/retrain.json", **counts, **decision)
    write_json({"retrained": {**{level: {"macro_f1": metrics[level]["macro_f1"]} for level in reversed(LEVELS)},
                              "path": {"accuracy": metrics["path"]["accuracy"]}}, **decision}, f"metrics/{NAME}.json")
    write_json({**counts, "promotion": decision, "levels": fits}, f"reports/{NAME}_fit.json")
    if decision["promoted"]:
        write_json({"promoted": True, "pseudo_weight": cfg.weight, "temperature": temperature,
                    "replay": RunFolder(RETRAINED).training_records()}, PROMOTION)
        write_parquet(pseudo.loc[:, list(PSEUDO_COLUMNS)], PROMOTED_PSEUDO)
    else:  # constant outputs, so `refit` does not re-run when a run that was not promoted changes
        write_json({"promoted": False}, PROMOTION)
        write_parquet(empty_pseudo_labels(), PROMOTED_PSEUDO)
    scores = ", ".join(f"{level} {metrics[level]['macro_f1']:.3f}" for level in LEVELS)
    verdict = "promoted: refit adds its pseudo rows" if decision["promoted"] else "not promoted: kept for comparison"
    print(f"{NAME}: read {pool_counts['rows_read']} rows from {settings.data.unlabeled}, scored {len(scored)} "
          f"({dropped_line(pool_counts)}); {counts['gold_rows']} gold + {counts['pseudo_rows']} pseudo rows "
          f"(weight {cfg.weight:g}); "
          f"{metrics['rows']} test rows, macro-F1 {scores}, path accuracy {metrics['path']['accuracy']:.3f} "
          f"(level_3 {decision['level_3_macro_f1_gain']:+.3f} vs held-out); {verdict}")


if __name__ == "__main__":
    run_stage(NAME, main)
