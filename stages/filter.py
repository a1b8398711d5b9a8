"""filter: validate the LLM-labeled summaries and keep rows with confidence >= filter.min_confidence."""

from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.taxonomy import Taxonomy
from callreason.validation import filter_confident, validate_labeled

FILTERED = "data/filtered.parquet"
METRICS = "metrics/filter.json"


def main() -> None:
    settings = load_settings()
    source = settings.data.labeled
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    checked, counts = validate_labeled(read_parquet(source, "labeled data"), taxonomy, source,
                                       settings.data.max_summary_chars)
    kept, filter_counts = filter_confident(checked, settings.filter.min_confidence, source)
    write_parquet(kept, FILTERED)
    write_json({**counts, **filter_counts, "rows_kept": len(kept)}, METRICS)
    print(f"filter: read {counts['rows_read']} rows from {source}, kept {len(kept)} "
          f"(confidence >= {settings.filter.min_confidence}), dropped {counts['rows_read'] - len(kept)}; "
          f"details in {METRICS}")


if __name__ == "__main__":
    run_stage("filter", main)
