"""retrain: does adding pseudo-labels help? Decided on the gold test rows, before any refit.

The held-out run (``models/heldout``, calibrated) labels the unlabeled pool; confident, class-capped paths
join the train split at weight ``pseudo_label.weight``; the three levels are trained again
(``models/retrained``; by default for the epochs the held-out run chose, ``pseudo_label.retrain_epochs``) and
scored on the same test rows (``metrics/retrain.json``). The retrained run is
promoted (``refit`` then adds these pseudo rows and replays its choices) only if it beats the held-out run
(:func:`callreason.run.promotion_decision`); otherwise it is kept for comparison.
"""

from pathlib import Path

from callreason.dataset import load_dataset
from callreason.errors import run_stage
from callreason.evaluation import write_evaluation
from callreason.io import read_json, read_parquet, write_json, write_parquet
from callreason.model_card import model_card
from callreason.params import load_settings
from callreason.pipeline.retrain import promotion_record, retrain
from callreason.pseudo_labels import (
    PSEUDO_COLUMNS,
    empty_pseudo_labels,
    unlabeled_pool,
)
from callreason.relabel import read_relabeled
from callreason.run import (
    HELDOUT,
    PROMOTED_PSEUDO,
    PROMOTION,
    RETRAINED,
    training_rows,
    write_run_files,
)
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.validation import dropped_line

DATASET, NAME = "data/prepared/dataset.parquet", "retrain"


def main() -> None:
    settings = load_settings()
    cfg, data_cfg = settings.pseudo_label, settings.data
    taxonomy = Taxonomy.load(data_cfg.taxonomy)
    data = load_dataset(DATASET)
    pool, pool_counts = unlabeled_pool(read_parquet(data_cfg.unlabeled, "unlabeled summaries"), data,
                                       read_parquet(data_cfg.labeled, "labeled data"),
                                       read_relabeled(data_cfg.relabeled)["call_id"], settings,
                                       (data_cfg.labeled, data_cfg.unlabeled))
    heldout_scores = read_json("metrics/evaluate.json", "held-out metrics", "run `dvc repro evaluate` first")
    run = RunFolder(RETRAINED)
    result = retrain(data, pool, taxonomy, settings, RunFolder(HELDOUT), heldout_scores, run, Path(".scratch/retrained"),
                     Path("dvclive/retrained"), model_version=RunFolder(HELDOUT).version())
    if result is None:  # not the main process
        return
    metrics, decision, counts = result.evaluation.details, result.decision, result.counts
    val, test = training_rows(data, ("val",)), training_rows(data, ("test",))
    write_evaluation(result.evaluation, taxonomy, NAME, Path(f"plots/{NAME}"), Path("reports"),
                     Path(f"data/predictions/{NAME}_test.parquet"))
    write_run_files(RETRAINED, taxonomy, settings, metrics["calibration"]["temperature"], run="retrained",
                    trained_on="the train split + pseudo-labels of the unlabeled pool",
                    choices_made_on=f"the validation slice ({len(val)} rows)"
                                    + ("; epochs and max_length: models/heldout's"
                                       if cfg.retrain_epochs == "heldout" else ""),
                    scored_on=f"the test split ({len(test)} rows): metrics/retrain.json", **counts, **decision)
    run.write_model_card(model_card(run, result.scores, "reports/retrain.json", settings.filter.min_confidence))
    write_json({"retrained": {**{level: {"macro_f1": metrics[level]["macro_f1"]} for level in reversed(LEVELS)},
                              "path": {"accuracy": metrics["path"]["accuracy"]}}, **decision}, f"metrics/{NAME}.json")
    write_json({**counts, "promotion": decision, "seconds": result.seconds, "levels": result.fits},
               f"reports/{NAME}_fit.json")
    write_json(promotion_record(result, run, settings), PROMOTION)
    # constant outputs when not promoted, so `refit` does not re-run when a run that was not promoted changes
    write_parquet(result.pseudo.loc[:, list(PSEUDO_COLUMNS)] if decision["promoted"] else empty_pseudo_labels(),
                  PROMOTED_PSEUDO)
    scores = ", ".join(f"{level} {metrics[level]['macro_f1']:.3f}" for level in LEVELS)
    verdict = "promoted: refit adds its pseudo rows" if decision["promoted"] else "not promoted: kept for comparison"
    print(f"{NAME}: read {pool_counts['rows_read']} rows from {data_cfg.unlabeled}, scored {len(result.scored)} "
          f"({dropped_line(pool_counts)}); {counts['gold_rows']} gold + {counts['pseudo_rows']} pseudo rows "
          f"(weight {cfg.weight:g}); "
          f"{metrics['rows']} test rows, macro-F1 {scores}, path accuracy {metrics['path']['accuracy']:.3f} "
          f"(level_3 {decision['level_3_macro_f1_gain']:+.3f} vs held-out); {verdict}")


if __name__ == "__main__":
    run_stage(NAME, main)
