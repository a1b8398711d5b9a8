"""Bring the LLM's answers back: ``python -m stages.import_labels --input ANSWERS [--source NAME]``.

ANSWERS is a parquet, CSV or JSONL file with ``call_id, summary, level_1, level_2, level_3, confidence`` (and
optionally ``source``), e.g. the relabel queue or the suspected labels sent to the LLM. They are checked like
the labeled file (every problem listed, nothing written on error) and merged into ``data.relabeled``
(``data/relabeled.parquet``): the latest answer per call_id wins, with the label it replaced, its source,
round and time. The labeled file is never modified; ``dvc repro`` then re-runs what the answers change.
Not a DVC stage.
"""

from pathlib import Path

from callreason.errors import ArgumentParser, run_stage


def main() -> None:
    parser = ArgumentParser(prog="python -m stages.import_labels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="answers: .parquet, .csv or .jsonl")
    parser.add_argument("--source", default=None, help="provenance of these answers (default: the file name); a "
                                                      "'source' column in the file wins")
    args = parser.parse_args()

    def run() -> None:
        from callreason.io import check_outputs, read_parquet, write_parquet
        from callreason.params import load_settings
        from callreason.relabel import check_answers, merge_answers, read_relabeled, read_table
        from callreason.taxonomy import Taxonomy
        from callreason.validation import dropped_line, validate_labeled

        settings = load_settings()
        data = settings.data
        check_outputs({data.relabeled: "file"}, [args.input, data.labeled, data.taxonomy],
                      what="data.relabeled (where answers are merged)",
                      clash_fix="give --input the file of the LLM's answers (e.g. answers.csv)")
        taxonomy = Taxonomy.load(data.taxonomy)
        labeled, _ = validate_labeled(read_parquet(data.labeled, "labeled data"), taxonomy, data.labeled,
                                      data.max_summary_chars)
        answers, read = check_answers(read_table(args.input, "answers"), taxonomy, str(args.input),
                                      data.max_summary_chars, labeled)
        merged, counts = merge_answers(read_relabeled(data.relabeled), answers, labeled, args.source or args.input.name)
        write_parquet(merged, data.relabeled)
        print(f"import_labels: read {read['rows_read']} answers from {args.input}, imported {counts['answers']} "
              f"(round {counts['round']}), {dropped_line(read)}: {counts['relabels_of_labeled_rows']} relabel rows of "
              f"{data.labeled} ({counts['labels_changed']} labels changed), {counts['new_labeled_rows']} new labeled "
              f"rows, {counts['replaced_earlier_answers']} replace earlier answers; {data.relabeled} now holds "
              f"{counts['rows_in_relabeled_file']} answers. Run `dvc repro` to retrain with them.")

    run_stage("import_labels", run)


if __name__ == "__main__":
    main()
