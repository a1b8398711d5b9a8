"""select_uncertain: the Phase 3 relabel queue, the most uncertain unlabeled rows spread over confusions.

Rows the final models were trained on as pseudo-labels are left out; confident rows rank last anyway.
Writes ``data/relabel_queue.parquet`` and, for the LLM labeler, ``exports/relabel_queue/`` (``queue.jsonl``,
``queue.csv``: call_id, summary and the models' top-3 paths with probabilities; ``taxonomy.json``). Bring the
answers back with ``python -m stages.import_labels --input ANSWERS``.
"""

from pathlib import Path

from callreason.errors import run_stage
from callreason.io import read_parquet, write_json, write_parquet
from callreason.params import load_settings
from callreason.relabel import export_for_labeler, queue_export
from callreason.uncertainty import select_uncertain

SCORED, PSEUDO = "data/unlabeled_scored.parquet", "data/pseudo_labels.parquet"
QUEUE, REPORT, EXPORT = "data/relabel_queue.parquet", "reports/select_uncertain.json", Path("exports/relabel_queue")


def main() -> None:
    settings = load_settings()
    cfg = settings.select_uncertain
    scored = read_parquet(SCORED, "scored unlabeled rows", "run `dvc repro pseudo_label` first")
    pseudo = read_parquet(PSEUDO, "pseudo-labels", "run `dvc repro pseudo_label` first")
    trained_on = pseudo.loc[pseudo["used_for_training"], "call_id"]
    queue, counts = select_uncertain(scored, trained_on, cfg.strategy, cfg.size, cfg.group_by)
    write_parquet(queue, QUEUE)
    export_for_labeler(queue_export(queue, scored), EXPORT, "queue", settings.data.taxonomy,
                       ["rank", "call_id", "summary", "hesitation_level"])
    write_json(counts, REPORT)
    print(f"select_uncertain: {counts['size']} of {counts['candidates']} unlabeled rows (not trained on) by "
          f"{counts['strategy']}, round-robin over {counts['groups_in_queue']} {counts['group_by']} groups; "
          f"wrote {QUEUE}, {EXPORT}/ (for the labeler), {REPORT}")


if __name__ == "__main__":
    run_stage("select_uncertain", main)
