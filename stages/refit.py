"""refit: the shipped models, ``models/final``, trained on every usable gold row.

Train + validation + test rows (and the pseudo rows of ``retrain`` when it was promoted) train the three
levels again, replaying the choices of the run it follows (``models/heldout``, or the promoted retrained
run): its max_length, its best epoch inside the same learning-rate schedule, its TF-IDF blend weight and
its temperatures. Nothing is chosen on rows the models train on; the held-out estimate of these choices is
``metrics/evaluate.json`` (or ``metrics/retrain.json`` when promoted), which the model card
``models/final/README.md`` quotes.
"""

from pathlib import Path

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.io import read_json, read_parquet, write_json
from callreason.model_card import model_card
from callreason.params import load_settings
from callreason.pipeline.refit import refit
from callreason.run import (
    FINAL,
    HELDOUT,
    PROMOTED_PSEUDO,
    PROMOTION,
    write_run_files,
)
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

DATASET = "data/prepared/dataset.parquet"


def main() -> None:
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    data = load_dataset(DATASET)
    promotion = read_json(PROMOTION, "the retrain decision", "run `dvc repro retrain` first")
    promoted_pseudo = read_parquet(PROMOTED_PSEUDO, "promoted pseudo-labels", "run `dvc repro retrain` first")
    result = refit(data, taxonomy, settings, promotion, promoted_pseudo, RunFolder(HELDOUT), RunFolder(FINAL),
                   Path(".scratch/final"))
    if not is_main_process():
        return
    counts, fits = result.counts, result.fits
    estimate = "metrics/retrain.json" if promotion["promoted"] else "metrics/evaluate.json"
    write_run_files(FINAL, taxonomy, settings, result.temperature, run="final",
                    trained_on="every usable gold row (train + val + test)"
                               + (" + the promoted pseudo-labels" if counts["pseudo_rows"] else ""),
                    follows=result.follows, held_out_estimate=estimate, gold_rows=counts["gold_rows"],
                    pseudo_rows=counts["pseudo_rows"], suspect_rows_left_out=len(result.suspects),
                    epochs={level: fits[level]["epochs_run"] for level in LEVELS})
    scores = (promotion["scores"] if promotion["promoted"] else
              read_json("metrics/evaluate.json", "held-out metrics", "run `dvc repro evaluate` first"))
    final = RunFolder(FINAL)
    final.write_model_card(model_card(final, scores, estimate, settings.filter.min_confidence))
    write_json({**counts, "follows": result.follows, "levels": fits}, "reports/refit.json")
    epochs = ", ".join(f"{level} {fits[level]['epochs_run']:g}" for level in LEVELS)
    print(f"refit: {counts['gold_rows']} gold + {counts['pseudo_rows']} pseudo rows, choices of {result.follows} "
          f"replayed (epochs: {epochs}); wrote {FINAL}/ (held-out estimate: {estimate})")


if __name__ == "__main__":
    run_stage("refit", main)
