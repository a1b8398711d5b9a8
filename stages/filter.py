"""filter: check every input file, apply the LLM's imported answers, keep rows with confidence >= filter.min_confidence.

The labeled file, the imported answers (``data.relabeled``; a missing file means none), the taxonomy and the
unlabeled pool are all checked here, so a broken file fails in seconds, before any training, with every
problem of each file listed. An answer replaces the label of its call_id or adds a labeled row; the user's
labeled file is never modified. The pool only needs to be readable here: a changed pool re-runs this stage but
leaves ``data/filtered.parquet`` (and so every model) as it was.
"""

from callreason.errors import InputError, run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.pipeline.filter import select_confident
from callreason.relabel import read_relabeled
from callreason.taxonomy import Taxonomy
from callreason.validation import dropped_line, validate_labeled, validate_unlabeled

FILTERED = "data/filtered.parquet"
REPORT = "reports/filter.json"


def main() -> None:
    settings = load_settings()
    source, pool_source = settings.data.labeled, settings.data.unlabeled
    problems: list[str] = []
    taxonomy = checked = answers = None
    try:
        taxonomy = Taxonomy.load(settings.data.taxonomy)
        checked, counts = validate_labeled(read_parquet(source, "labeled data"), taxonomy, source,
                                           settings.data.max_summary_chars)
    except InputError as exc:
        problems += exc.lines
    try:
        relabeled = read_relabeled(settings.data.relabeled)
        answers, answer_counts = (
            validate_labeled(relabeled, taxonomy, settings.data.relabeled, settings.data.max_summary_chars)
            if len(relabeled) and taxonomy is not None else (relabeled.iloc[:0], {}))
    except InputError as exc:
        problems += exc.lines
    try:
        labeled_ids = (set(checked["call_id"]) | set(answers["call_id"])
                       if checked is not None and answers is not None else None)
        _, pool_counts = validate_unlabeled(read_parquet(pool_source, "unlabeled summaries"), pool_source,
                                            labeled_ids, settings.data.max_summary_chars)
    except InputError as exc:
        problems += exc.lines
    if problems:
        raise InputError(*problems)
    kept, kept_counts = select_confident(checked, answers, settings, source)
    write_parquet(kept, FILTERED)
    write_json({**counts, **kept_counts, "rows_kept": len(kept), "unlabeled": pool_counts}, REPORT)
    answered = (f" and {answer_counts['rows_read']} answers from {settings.data.relabeled} ({dropped_line(answer_counts)}; "
                f"{kept_counts['relabeled_rows']} relabel rows, {kept_counts['added_rows']} add rows)"
                if len(answers) else "")
    print(f"filter: read {counts['rows_read']} rows from {source}{answered}, kept {len(kept)} "
          f"(confidence >= {settings.filter.min_confidence}), {dropped_line({**counts, **kept_counts})}; "
          f"{pool_counts['rows_out']} of {pool_counts['rows_read']} unlabeled summaries usable in {pool_source} "
          f"({dropped_line(pool_counts)}); details in {REPORT}")


if __name__ == "__main__":
    run_stage("filter", main)
