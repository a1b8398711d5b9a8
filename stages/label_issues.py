"""label_issues: rank the labeled rows by how unlikely an out-of-fold TF-IDF model finds their LLM label."""

from callreason.dataset import load_dataset
from callreason.errors import run_stage
from callreason.io import write_json, write_parquet
from callreason.label_issues import find_label_issues
from callreason.params import load_settings
from callreason.taxonomy import Taxonomy

DATASET, ISSUES = "data/prepared/dataset.parquet", "data/label_issues.parquet"
METRICS, REPORT = "metrics/label_issues.json", "reports/label_issues.json"


def main() -> None:
    settings = load_settings()
    cfg = settings.label_issues
    issues, counts = find_label_issues(load_dataset(DATASET), Taxonomy.load(settings.data.taxonomy),
                                       folds=cfg.folds, c=cfg.c, seed=settings.seed)
    write_parquet(issues, ISSUES)
    write_json(counts, REPORT)
    write_json({"flagged": counts["flagged"], "flagged_share": counts["flagged_share"]}, METRICS)
    print(f"label_issues: checked {counts['rows_checked']} labeled rows ({counts['folds']}-fold {counts['cv']} "
          f"cross-validation), flagged {counts['flagged']} ({counts['flagged_share']:.1%}); wrote {ISSUES}, {METRICS}")


if __name__ == "__main__":
    run_stage("label_issues", main)
