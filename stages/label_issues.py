"""label_issues: rank the labeled rows by how unlikely an out-of-fold TF-IDF model finds their LLM label.

Writes ``data/label_issues.parquet`` (every labeled row, most suspect first) and, for the LLM labeler,
``exports/suspect_labels/`` (the flagged rows as ``suspect_labels.jsonl``/``.csv`` with the LLM's label, its
confidence and the out-of-fold model's top-3 paths; ``taxonomy.json``). Bring the answers back with
``python -m stages.import_labels --input ANSWERS``.
"""

from pathlib import Path

from callreason.dataset import load_dataset
from callreason.errors import run_stage
from callreason.io import write_json, write_parquet
from callreason.label_issues import find_label_issues
from callreason.params import load_settings
from callreason.relabel import export_for_labeler
from callreason.taxonomy import LEVELS, Taxonomy

DATASET, ISSUES = "data/prepared/dataset.parquet", "data/label_issues.parquet"
METRICS, REPORT = "metrics/label_issues.json", "reports/label_issues.json"
EXPORT = Path("exports/suspect_labels")


def main() -> None:
    settings = load_settings()
    cfg = settings.label_issues
    issues, counts = find_label_issues(load_dataset(DATASET), Taxonomy.load(settings.data.taxonomy),
                                       folds=cfg.folds, c=cfg.c, seed=settings.seed)
    write_parquet(issues, ISSUES)
    flagged = issues[issues["flagged"]].rename(columns={f"given_{lv}": f"llm_{lv}" for lv in LEVELS})
    export_for_labeler(flagged, EXPORT, "suspect_labels", settings.data.taxonomy,
                       ["rank", "call_id", "summary", *(f"llm_{lv}" for lv in LEVELS), "llm_confidence"])
    write_json(counts, REPORT)
    write_json({"flagged": counts["flagged"], "flagged_share": counts["flagged_share"]}, METRICS)
    print(f"label_issues: checked {counts['rows_checked']} labeled rows ({counts['folds']}-fold {counts['cv']} "
          f"cross-validation), flagged {counts['flagged']} ({counts['flagged_share']:.1%}); "
          f"wrote {ISSUES}, {EXPORT}/ (for the labeler), {METRICS}")


if __name__ == "__main__":
    run_stage("label_issues", main)
