"""evaluate: score the held-out run (``models/heldout``) on the gold test rows and complete its folder.

Temperatures are fitted on the validation slice. Writes ``metrics/evaluate.json`` (the honest estimate:
these models never saw the test rows, and no choice was made on them), ``reports/evaluate.json`` (details),
plots, the error report, test predictions, and ``models/heldout/{label_encoders,calibration.json,metadata.json,
README.md}`` (README.md: the model card).
"""

from pathlib import Path

from callreason.dataset import load_dataset
from callreason.errors import run_stage
from callreason.evaluation import headline_metrics, write_evaluation
from callreason.io import write_json
from callreason.model_card import model_card
from callreason.params import load_settings
from callreason.pipeline.evaluate import evaluate_heldout
from callreason.run import HELDOUT, training_rows, write_run_files
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

DATASET = "data/prepared/dataset.parquet"


def main() -> None:
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    data = load_dataset(DATASET)
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    evaluation, _ = evaluate_heldout(data, taxonomy, settings, RunFolder(HELDOUT))
    write_evaluation(evaluation, taxonomy, "evaluate", Path("plots/evaluate"), Path("reports"),
                     Path("data/predictions/evaluate_test.parquet"))
    metrics = evaluation.details
    headline = headline_metrics(metrics, len(train), len(val))
    write_json(headline, "metrics/evaluate.json")
    write_run_files(HELDOUT, taxonomy, settings, metrics["calibration"]["temperature"], run="heldout",
                    trained_on="the train split", choices_made_on=f"the validation slice ({len(val)} rows)",
                    scored_on=f"the test split ({len(test)} rows): metrics/evaluate.json")
    heldout = RunFolder(HELDOUT)
    heldout.write_model_card(model_card(heldout, headline, "metrics/evaluate.json", settings.filter.min_confidence))
    scores = ", ".join(f"{level} {metrics[level]['macro_f1']:.3f}" for level in LEVELS)
    print(f"evaluate: held-out models on {metrics['rows']} test rows, macro-F1 {scores}, path accuracy "
          f"{metrics['path']['accuracy']:.3f}; wrote metrics/evaluate.json, plots/evaluate/, {HELDOUT}/")


if __name__ == "__main__":
    run_stage("evaluate", main)
