"""Seed averaging: do two level_3 models trained with different seeds beat one, at twice the cost?

    python -m benchmarks.seed_averaging --datasets banking77-clean --draws 3     # ~3 min a draw here

For each draw of ``benchmarks.noisy`` (the user's whole labeled file, scored on gold rows outside it): the
level_3 held-out run and its refit on every row, as the pipeline makes them (params.yaml defaults), once per
seed in ``--seeds`` with the same split (the split hashes with params' ``seed``; only model initialisation
and data order change). Scored on the external rows: each seed's final model alone, and the average of the
final models' log-probabilities. One JSON line per draw in ``--out``; a summary is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from sklearn.metrics import f1_score

from benchmarks.common import ROOT, append_jsonl
from benchmarks.noisy import DATASETS, filtered_dataset, make_case
from callreason.io import load_params
from callreason.modeling import load_classifier, predict_logits
from callreason.params import settings_from_params
from callreason.pipeline.refit import refit
from callreason.pipeline.train import train_heldout
from callreason.pseudo_labels import empty_pseudo_labels
from callreason.run import write_run_files
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS

LEVEL = "level_3"


def final_log_proba(case, settings, seed: int, work: Path) -> np.ndarray:
    """Log-probabilities on ``case.external`` of the refit level_3 model trained with ``seed`` (the stages'
    own train and refit functions, level_3 alone)."""
    _, dataset = filtered_dataset(case, settings)
    seeded = dataclasses.replace(settings, seed=seed)
    heldout, final = RunFolder(work / "heldout"), RunFolder(work / "final")
    train_heldout(dataset, case.taxonomy, seeded, heldout, work / "scratch", levels=(LEVEL,))
    write_run_files(heldout.root, case.taxonomy, seeded, {level: 1.0 for level in LEVELS})  # argmax: no temperatures
    refit(dataset, case.taxonomy, seeded, {"promoted": False}, empty_pseudo_labels(), heldout, final, work / "scratch",
          levels=(LEVEL,))
    model, tokenizer = load_classifier(final.level(LEVEL))
    return log_softmax(predict_logits(model, tokenizer, case.external["summary"].tolist()), axis=1)


def macro_f1(truth: np.ndarray, log_proba: np.ndarray) -> float:
    return round(float(f1_score(truth, log_proba.argmax(1), average="macro")), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["banking77-clean"], choices=DATASETS)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "noisy" / "seed_averaging.jsonl")
    args = parser.parse_args()
    settings = settings_from_params(load_params(ROOT / "params.yaml"))
    results = []
    for name in args.datasets:
        for draw in range(args.draws):
            case = make_case(name, draw)
            truth = case.taxonomy.ids(LEVEL, case.external[LEVEL].tolist())
            probs = {}
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as work:
                    probs[seed] = final_log_proba(case, settings, seed, Path(work))
            result = {"dataset": name, "draw": draw,
                      **{f"seed_{s}": macro_f1(truth, p) for s, p in probs.items()},
                      "average": macro_f1(truth, sum(probs.values()))}
            results.append(result)
            print(json.dumps(result), flush=True)
            append_jsonl(args.out, result)
    for name in args.datasets:
        rows = [r for r in results if r["dataset"] == name]
        single = np.mean([[r[f"seed_{s}"] for s in args.seeds] for r in rows])
        gains = [r["average"] - np.mean([r[f"seed_{s}"] for s in args.seeds]) for r in rows]
        print(f"{name}: one seed {single:.4f} (mean over seeds and draws), average of {len(args.seeds)} "
              f"{np.mean([r['average'] for r in rows]):.4f}; gain per draw "
              f"{' / '.join(f'{g:+.4f}' for g in gains)}")


if __name__ == "__main__":
    main()
