"""The catalogue of malformed inputs: every entry point against what a user can get wrong.

Each :class:`Case` names a command (a stage, ``callreason predict`` or ``stages.import_labels``), how it
breaks a small working project (``setup``), and what the user must see. ``tests/test_bad_inputs.py`` runs
every case and checks the same properties for all of them: exit 0 or 2, no traceback, one ``error [...]``
line per problem, the expected words, and (on exit 2) every file of the project byte-identical afterwards,
so nothing the user gave is modified and the previous good outputs are kept. A new case is one entry here.

The README's troubleshooting table is generated from this file: ``python -m tests.bad_inputs`` prints it,
and a test checks that README.md holds exactly that table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from tests.conftest import SMALL_TAXONOMY, make_labeled_rows

STAGES = ("filter", "encode", "train", "evaluate", "retrain", "refit", "pseudo_label", "select_uncertain",
          "label_issues")
LABELED, UNLABELED, NEW = "data/phase2_labeled.parquet", "data/unlabeled_summaries.parquet", "data/new_calls.parquet"


@dataclass(frozen=True)
class Case:
    name: str
    command: tuple[str, ...]  # module (``stages.filter``) or ``callreason``, then its arguments
    setup: Callable[[Path], None]  # breaks the project in the given folder
    expect: str  # words of stderr (exit 2) or stdout (exit 0)
    exit_code: int = 2
    writes: tuple[str, ...] = ()  # on exit 0: the only paths that may change
    readme: tuple[str, str] | None = None  # (input problem, what happens): a row of the README table
    lines: int | None = None  # exact number of error lines, where it matters


# --------------------------------------------------------------------------- helpers that break a project

def nothing(root: Path) -> None:
    """Leave the project as it is."""


def edit_params(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        params = yaml.safe_load((root / "params.yaml").read_text())
        change(params)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return setup


def set_param(key: str, value) -> Callable[[Path], None]:
    section, name = key.split(".")
    return edit_params(lambda params: params[section].__setitem__(name, value))


def append(path: str, text: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        with (root / path).open("a", encoding=encoding) as handle:
            handle.write(text)
    return setup


def write(path: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def truncate(path: str) -> Callable[[Path], None]:
    """Cut a file in half (an interrupted copy)."""
    def setup(root: Path) -> None:
        data = (root / path).read_bytes()
        (root / path).write_bytes(data[: len(data) // 2])
    return setup


def frame_file(path: str, frame: pd.DataFrame | Callable[[Path], pd.DataFrame], how: str = "parquet",
               **options) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = frame(root) if callable(frame) else frame
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if how == "parquet":
            data.to_parquet(target, index=False)
        elif how == "csv":
            data.to_csv(target, index=False, **options)
        else:
            data.to_json(target, orient="records", lines=True)
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for step in setups:
            step(root)
    return setup


def labeled_rows(root: Path) -> pd.DataFrame:
    return pd.read_parquet(root / LABELED)


def answers(root: Path, new_without_summary: int = 0, known_without_summary: int = 0) -> pd.DataFrame:
    """Five LLM answers: three relabel labeled rows (the first ``known_without_summary`` of them with an
    empty summary), two are new calls (the first ``new_without_summary`` of them with an empty summary)."""
    rows = labeled_rows(root).head(3).assign(level_1="access", level_2="login", level_3="locked_out", confidence=0.99)
    new = make_labeled_rows(2, seed=7).assign(call_id=["NEW-1", "NEW-2"])
    frame = pd.concat([rows, new], ignore_index=True)
    frame.loc[: known_without_summary - 1, "summary"] = ""
    frame.loc[3: 3 + new_without_summary - 1, "summary"] = ""
    return frame


def taxonomy_text_with_a_duplicate_level_1() -> str:
    """The taxonomy with its first level_1 written twice (JSON would keep only the second)."""
    first = next(iter(SMALL_TAXONOMY))
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in SMALL_TAXONOMY.items())
    return "{\n" + body + f",\n  {json.dumps(first)}: {json.dumps({'extra': ['extra_leaf']})}\n}}\n"


def decimal_confidence(root: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = labeled_rows(root)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    values = pa.array([decimal.Decimal(str(round(c, 2))) for c in frame["confidence"]], pa.decimal128(5, 2))
    table = table.set_column(table.schema.get_field_index("confidence"), "confidence", values)
    pq.write_table(table, root / LABELED)


def folder_with_readme(folder: str, source: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / folder).mkdir(parents=True)
        frame = pd.read_parquet(root / source)
        frame.iloc[: len(frame) // 2].to_parquet(root / folder / "part-0.parquet", index=False)
        frame.iloc[len(frame) // 2:].to_parquet(root / folder / "part-1.parquet", index=False)
        (root / folder / "README.md").write_text("Calls exported on Monday.\n")
    return setup


def predict(*args: str) -> tuple[str, ...]:
    return ("callreason", "predict", *args)


def import_labels(*args: str) -> tuple[str, ...]:
    return ("stages.import_labels", *args)


def stage(name: str) -> tuple[str, ...]:
    return ("stages.train", "--level", "level_1") if name == "train" else (f"stages.{name}",)


FILTER_OUTPUTS = ("data/filtered.parquet", "reports/filter.json")

# --------------------------------------------------------------------------- the catalogue

CASES: list[Case] = [
    # ---- where outputs go
    Case("predict_output_is_a_folder", predict("--input", NEW, "--output", "data"), nothing,
         "data: --output is an existing folder", readme=(
             "`predict --output` an existing folder (e.g. `data`)", "refused before any work, nothing touched: give a "
             "file path")),
    Case("predict_output_is_the_input", predict("--input", NEW, "--output", NEW), nothing,
         "--output is the input data/new_calls.parquet", readme=(
             "`predict --output` the same as `--input` (or inside `--input` or `--models`)", "refused before any work")),
    Case("predict_output_inside_the_models", predict("--input", NEW, "--output", "models/final/out.parquet"), nothing,
         "lies inside the input models/final"),
    Case("predict_output_under_a_file", predict("--input", NEW, "--output", f"{NEW}/out.parquet"), nothing,
         "'s parent data/new_calls.parquet is a file", readme=(
             "an output path under a file (`--output in.parquet/out.parquet`)", "refused before any work")),
    Case("labeled_path_is_a_pipeline_output", stage("filter"), set_param("data.labeled", "data/filtered.parquet"),
         "data.labeled: data/filtered.parquet is (or holds) data/filtered.parquet, which a stage", readme=(
             "a `data.*` path in params.yaml that is an output of a stage (`data/filtered.parquet`, `models/`...)",
             "error naming the key: a stage would overwrite your file")),
    Case("labeled_path_outside_the_repository", stage("filter"), set_param("data.labeled", "/tmp/labeled.parquet"),
         "outside the repository", readme=(
             "`data.*` paths in params.yaml outside the repository", "error naming the key; copy the file into the "
             "repository")),
    # ---- the labeled file
    Case("labeled_missing", stage("filter"), lambda root: (root / LABELED).unlink(), "labeled data not found", readme=(
        "a file missing, a folder where a file belongs, or not parquet", "error naming the file; write it with "
        "`df.to_parquet(path)`")),
    Case("labeled_not_parquet", stage("filter"), write(LABELED, "call_id,summary\n1,hello\n"),
         "not a readable parquet file"),
    Case("labeled_folder_with_a_readme", stage("filter"),
         both(folder_with_readme("data/labeled", LABELED), set_param("data.labeled", "data/labeled")),
         "data/labeled/README.md: not a readable parquet file (inside the input folder data/labeled)", readme=(
             "a folder of parquet files with another file in it (a README)", "error naming that file")),
    Case("labeled_missing_column", stage("filter"),
         frame_file(LABELED, lambda root: labeled_rows(root).rename(columns={"summary": "sumary"})),
         "found 'sumary': rename it to 'summary'", readme=(
             "a required column missing", "error naming it; a close misspelling is pointed out (\"found 'sumary': "
             "rename it to 'summary'\")")),
    Case("labeled_confidence_percent", stage("filter"),
         frame_file(LABELED, lambda root: labeled_rows(root).assign(confidence=lambda f: f["confidence"] * 100)),
         "if they are percentages divide by 100", readme=(
             "`confidence` not numeric, NaN, or outside [0, 1]", "error with the first call_ids and values "
             "(percentages: divide by 100)")),
    Case("labeled_confidence_decimal128", stage("filter"), decimal_confidence, "filter: read 60 rows", exit_code=0,
         writes=FILTER_OUTPUTS, readme=("`confidence` stored as parquet decimal", "read as numbers")),
    Case("labeled_unknown_label", stage("filter"),
         frame_file(LABELED, lambda root: labeled_rows(root).assign(level_3=lambda f: f["level_3"].replace(
             "refund", "Refund "))), "differs from the taxonomy's 'refund' only in letter case or spacing", readme=(
             "a label not in the taxonomy", "error naming the column, the label and the call_ids, with \"did you "
             "mean\", or \"differs only in letter case or spacing\"")),
    Case("labeled_conflicting_duplicate", stage("filter"),
         frame_file(LABELED, lambda root: pd.concat([labeled_rows(root), labeled_rows(root).head(1).assign(
             call_id=lambda f: f["call_id"] + " ", level_1="access", level_2="login", level_3="locked_out")])),
         "(spelled 'C0000', 'C0000 ')", readme=(
             "the same call twice, e.g. `\"CALL-1\"` and `\"CALL-1 \"`, with different labels or summaries",
             "error naming the call_id and both spellings")),
    Case("labeled_empty_summaries_and_repeats_are_counted", stage("filter"),
         frame_file(LABELED, lambda root: pd.concat([labeled_rows(root).assign(
             summary=lambda f: f["summary"].where(f.index > 1, "\u200b ")), labeled_rows(root).tail(1)])),
         "2 empty summary, 1 repeated call_id with the same labels and summary", exit_code=0, writes=FILTER_OUTPUTS, readme=(
             "a summary empty or invisible characters only; the same call twice with the same labels and summary",
             "row dropped, counted per reason in the stage's closing line and `reports/filter.json`")),
    Case("labeled_every_problem_at_once", stage("filter"),
         frame_file(LABELED, lambda root: labeled_rows(root).assign(
             confidence=lambda f: f["confidence"].where(f.index > 0, 3.0),
             level_3=lambda f: f["level_3"].where(f.index != 1, "no_such_leaf"),
             call_id=lambda f: f["call_id"].where(f.index != 2, None))), "'call_id' is empty", lines=3, readme=(
             "several problems in one file", "one line each, all in one run")),
    Case("labeled_too_few_rows_for_a_split", stage("encode"),
         frame_file("data/filtered.parquet", lambda root: pd.read_parquet(root / "data/filtered.parquet").head(1)),
         "1 row(s) split into train", readme=(
             "too few rows for a held-out run (e.g. a 1-row labeled file)", "`encode` fails naming the train / "
             "validation / test counts, before any training")),
    # ---- the taxonomy
    Case("taxonomy_level_1_twice", stage("filter"), write("taxonomy/taxonomy.json",
                                                          taxonomy_text_with_a_duplicate_level_1()),
         "key 'billing' appears 2 times in one object (lines 2, 4)", readme=(
             "a key written twice in a JSON object (the same `level_1` twice in the taxonomy)",
             "error naming the key and its lines (JSON would keep only the last)")),
    Case("taxonomy_is_a_folder", stage("filter"), set_param("data.taxonomy", "taxonomy"),
         "taxonomy: is a folder, expected the taxonomy file"),
    Case("taxonomy_truncated", stage("filter"), truncate("taxonomy/taxonomy.json"), "not valid JSON at line", readme=(
        "a truncated or otherwise invalid JSON file (taxonomy, a model folder's JSON files)",
        "error with the line and column")),
    Case("taxonomy_latin_1", stage("filter"), write("taxonomy/taxonomy.json", json.dumps(
        {"caf\u00e9": SMALL_TAXONOMY["billing"], "access": SMALL_TAXONOMY["access"]}, ensure_ascii=False).encode(
        "latin-1")), "not UTF-8 text (byte 0xe9 at line 1); save it as UTF-8", readme=(
        "a text file that is not UTF-8 (taxonomy, params.yaml, CSV answers)", "error naming the byte and line: save "
        "it as UTF-8")),
    Case("taxonomy_label_under_two_parents", stage("filter"), write("taxonomy/taxonomy.json", json.dumps(
        {"billing": {"payments": ["refund"]}, "access": {"payments": ["reset"]}})), "appears under both", readme=(
        "a malformed taxonomy (a label under two parents, an empty branch, two spellings of one label)",
        "every problem of the file, naming the label or branch")),
    # ---- params.yaml
    *[Case(f"params_section_twice_{name}", stage(name), append("params.yaml", "\nfilter:\n  min_confidence: 0.5\n"),
           "key 'filter' appears twice in one mapping", readme=(
               "a section or key written twice in params.yaml", "every stage stops at once, naming the key and both "
               "lines (`dvc repro` refuses such a file too)") if name == "filter" else None) for name in STAGES],
    Case("params_section_twice_import_labels", import_labels("--input", "answers.csv"),
         both(frame_file("answers.csv", answers, "csv"), append("params.yaml", "\nfilter:\n  min_confidence: 0.5\n")),
         "key 'filter' appears twice"),
    Case("params_not_utf8", stage("filter"), append("params.yaml", "# r\u00e9sum\u00e9\n", "latin-1"),
         "params.yaml: not UTF-8 text"),
    Case("params_broken_yaml", stage("filter"), append("params.yaml", "\ntrain: [unclosed\n"), "not valid YAML at line",
         readme=("params.yaml that is not valid YAML", "error with the line and column")),
    Case("params_bad_value", stage("train"), set_param("train.batch_size", 0), "train.batch_size must be",
         readme=("a setting out of range or of the wrong type", "error naming the key, what it must be and the value")),
    # ---- the base model
    Case("base_model_folder_missing", stage("train"), set_param("model.base", "./models/my-base"),
         "model.base: './models/my-base' does not exist", readme=(
             "`model.base` a local folder that does not exist, or a folder without `config.json`",
             "`train` stops at once naming `model.base`, before any training")),
    Case("base_model_folder_without_config", stage("train"),
         both(write("base/README.md", "weights go here\n"), set_param("model.base", "base")),
         "is a folder without config.json"),
    # ---- model folders
    Case("model_metadata_truncated", predict("--input", NEW, "--output", "out.parquet"),
         truncate("models/final/metadata.json"), "models/final/metadata.json: not valid JSON at line", readme=(
             "a model folder with a truncated or missing file (`metadata.json`, `calibration.json`, "
             "`classifier.json`, weights)", "error naming the file: write the folder again with `dvc repro`")),
    Case("model_calibration_truncated", predict("--input", NEW, "--output", "out.parquet"),
         truncate("models/final/calibration.json"), "models/final/calibration.json: not valid JSON"),
    Case("model_classifier_json_truncated", predict("--input", NEW, "--output", "out.parquet"),
         truncate("models/final/level_2/classifier.json"), "models/final/level_2/classifier.json: not valid JSON"),
    Case("model_weights_truncated", predict("--input", NEW, "--output", "out.parquet"),
         truncate("models/final/level_3/model.safetensors"), "models/final/level_3: cannot be loaded"),
    Case("models_is_a_file", predict("--input", NEW, "--output", "out.parquet", "--models", NEW),
         nothing, "--models is not a folder"),
    Case("models_missing", predict("--input", NEW, "--output", "out.parquet", "--models", "models/nope"),
         nothing, "models/nope: --models not found"),
    Case("model_without_label_encoders", predict("--input", NEW, "--output", "out.parquet"),
         lambda root: __import__("shutil").rmtree(root / "models/final/label_encoders"),
         "models/final: no label_encoders/taxonomy.json"),
    Case("heldout_model_damaged", stage("evaluate"), truncate("models/heldout/level_1/classifier.json"),
         "models/heldout/level_1/classifier.json: not valid JSON"),
    Case("promotion_truncated", stage("refit"), truncate("models/promotion.json"),
         "models/promotion.json: not valid JSON"),
    # ---- predict's input
    Case("predict_input_missing", predict("--input", "data/nope.parquet", "--output", "out.parquet"), nothing,
         "data/nope.parquet: input not found"),
    Case("predict_input_folder_with_a_readme", predict("--input", "data/calls", "--output", "out.parquet"),
         folder_with_readme("data/calls", NEW), "data/calls/README.md: not a readable parquet file"),
    Case("predict_input_is_csv", predict("--input", "calls.csv", "--output", "out.parquet"),
         write("calls.csv", "call_id,summary\nA,refund please\n"), "calls.csv: not a readable parquet file"),
    Case("predict_input_parts_disagree", predict("--input", "data/calls", "--output", "out.parquet"),
         both(frame_file("data/calls/part-0.parquet", pd.DataFrame({"call_id": ["A"], "summary": ["refund"]})),
              frame_file("data/calls/part-1.parquet", pd.DataFrame({"call_id": [7], "summary": [3.5]}))),
         "data/calls/part-1.parquet: column 'summary' holds double, not text"),
    Case("predict_counts_every_row", predict("--input", NEW, "--output", "out.parquet"),
         frame_file(NEW, lambda root: pd.concat([pd.read_parquet(root / NEW), pd.read_parquet(root / NEW).head(2),
                                                 pd.DataFrame({"call_id": ["X1"], "summary": [" "]})])),
         "read 13 rows from data/new_calls.parquet, wrote 10 predictions to out.parquet; dropped 3 (1 empty summary, "
         "2 repeated call_id with the same summary)", exit_code=0, writes=("out.parquet",), readme=(
             "`predict`: empty summaries, a call_id repeated with the same summary (also across chunks)",
             "one output row per call_id; each dropped row counted per reason in the closing line")),
    Case("predict_ambiguous_call_id", predict("--input", NEW, "--output", "out.parquet"),
         frame_file(NEW, lambda root: pd.concat([pd.read_parquet(root / NEW), pd.DataFrame(
             {"call_id": ["N0000"], "summary": ["something else"]})])), "different summaries (ambiguous)", readme=(
             "`predict`: a call_id repeated with another summary", "error, nothing written")),
    Case("predict_bad_argument", predict("--input", NEW, "--output", "out.parquet", "--chunk-rows", "0"), nothing,
         "--chunk-rows: invalid positive integer value", readme=("`predict`: a bad argument (`--chunk-rows 0`)",
                                                                 "one line, exit 2")),
    # ---- the LLM's answers (import_labels)
    Case("answers_new_calls_without_summary", import_labels("--input", "answers.csv"),
         frame_file("answers.csv", lambda root: answers(root, new_without_summary=2), "csv"),
         "'summary' is empty in 2 answer(s) for call_ids not in the labeled file: 'NEW-1', 'NEW-2'", readme=(
             "LLM answers for new calls without a summary", "error naming the call_ids (an answer is never dropped "
             "silently)")),
    Case("answers_relabel_without_summary", import_labels("--input", "answers.csv"),
         frame_file("answers.csv", lambda root: answers(root, known_without_summary=2), "csv"),
         "read 5 answers from answers.csv, imported 5", exit_code=0, writes=("data/relabeled.parquet",), readme=(
             "LLM answers for labeled calls without a summary", "imported: the labeled row's summary is kept")),
    Case("answers_semicolon_csv", import_labels("--input", "answers.csv"),
         frame_file("answers.csv", answers, "csv", sep=";"), "separated by semicolons, not commas", readme=(
             "a CSV of answers separated by `;` or tabs", "error saying which separator: save it comma-separated")),
    Case("answers_latin_1_csv", import_labels("--input", "answers.csv"),
         frame_file("answers.csv", lambda root: answers(root).assign(summary="caf\u00e9 refund"), "csv",
                    encoding="latin-1"), "answers.csv: not UTF-8 text"),
    Case("answers_empty_csv", import_labels("--input", "answers.csv"), write("answers.csv", ""), "answers.csv: "),
    Case("answers_broken_jsonl_line", import_labels("--input", "answers.jsonl"),
         write("answers.jsonl", '{"call_id": "C0001", "summary": "x", "level_1": "billing"}\n{"call_id": "C00'),
         "answers.jsonl: not a readable jsonl file"),
    Case("relabeled_file_damaged", stage("filter"), write("data/relabeled.parquet", b"PAR1 truncated"),
         "data/relabeled.parquet: not a readable parquet file"),
    Case("answers_unknown_type", import_labels("--input", "answers.xlsx"), write("answers.xlsx", b"PK\x03\x04"),
         "unknown file type '.xlsx'"),
    Case("answers_are_the_relabeled_file", import_labels("--input", "data/relabeled.parquet"),
         frame_file("data/relabeled.parquet", lambda root: __import__("callreason.relabel").relabel.empty_relabeled()),
         "data.relabeled (where answers are merged) is the input data/relabeled.parquet; give --input"),
    Case("answers_with_problems", import_labels("--input", "answers.jsonl"),
         frame_file("answers.jsonl", lambda root: answers(root).assign(level_3="no_such_leaf"), "jsonl"),
         "label(s) not in the taxonomy", readme=("LLM answers (`import_labels`) with problems", "every problem "
                                                 "listed, `data/relabeled.parquet` untouched")),
    # ---- the unlabeled pool and later stages
    Case("pool_folder_with_a_readme", stage("pseudo_label"),
         both(folder_with_readme("data/pool", UNLABELED), set_param("data.unlabeled", "data/pool")),
         "data/pool/README.md: not a readable parquet file"),
    Case("pool_not_parquet", stage("filter"), write(UNLABELED, b"\x00\x01 not parquet"), "unlabeled_summaries.parquet",
         readme=("a broken unlabeled file", "`filter` fails in seconds, before any training")),
    Case("scored_pool_missing", stage("select_uncertain"), nothing, "run `dvc repro pseudo_label`", readme=(
        "a stage run before the one it needs", "error naming the missing file and the stage to run")),
]

OTHER_ROWS: list[tuple[str, str, str]] = [
    ("a `level_3` class with fewer than `split.min_rows_per_class` rows", "its test-hashed rows are `reserved`: not in "
     "the held-out run, trained on by the refit; they join the test split when the class grows (so no row ever moves "
     "between train, validation and test)", "tests/test_split.py"),
    ("a summary with control/format characters, markup, or over `data.max_summary_chars`", "characters removed, "
     "markup kept as text, long text truncated; counted", "tests/test_validation.py"),
    ("unlabeled rows whose call_id is labeled", "left out of pseudo-labeling, counted", "tests/test_validation.py"),
    ("a stage interrupted (Ctrl-C, kill)", "no half-written output; `dvc repro` again completes the run",
     "tests/test_interruption.py"),
    ("`filter` failing under `dvc repro`", "its last good outputs are kept (they `persist`)",
     "tests/test_data_safety.py"),
]
"""README rows whose behaviour is tested elsewhere (the file that tests it)."""


def readme_table() -> str:
    """The README's troubleshooting table: the catalogue's rows, then :data:`OTHER_ROWS`."""
    rows = [case.readme for case in CASES if case.readme] + [(problem, result) for problem, result, _ in OTHER_ROWS]
    return "\n".join(["| input problem | what happens |", "|---|---|",
                      *(f"| {problem} | {result} |" for problem, result in rows)])


if __name__ == "__main__":
    print(readme_table())
