"""train_l1 / train_l2 / train_l3: one level's held-out model (``--level level_N``), on the train split.

The validation slice chooses its epoch and TF-IDF blend weight; ``refit`` later replays those choices on
every row. Writes ``models/heldout/level_N``, its training curves (``dvclive/level_N``, at step = epoch,
and ``plots/train/level_N.png``) and ``reports/train/level_N.json``.
"""

import argparse
from pathlib import Path

from callreason.dataset import load_dataset
from callreason.distributed import is_main_process
from callreason.errors import run_stage
from callreason.io import atomic_path, write_json
from callreason.params import load_settings
from callreason.pipeline.train import train_heldout
from callreason.plots import plot_curves_png
from callreason.run import HELDOUT
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

DATASET = "data/prepared/dataset.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--level", choices=LEVELS, required=True)
    level = parser.parse_args().level
    settings = load_settings()
    taxonomy = Taxonomy.load(settings.data.taxonomy)
    data = load_dataset(DATASET)
    fits, suspects = train_heldout(data, taxonomy, settings, RunFolder(HELDOUT), Path(".scratch"), Path("dvclive"),
                                   levels=(level,))
    summary = fits[level]
    if is_main_process():
        write_json({**summary, "suspect_rows_left_out": len(suspects)}, f"reports/train/{level}.json")
        with atomic_path(f"plots/train/{level}.png") as tmp:
            plot_curves_png({level: summary["curve"]}, tmp, f"{level}: held-out run ({summary['train_rows']} rows)")
        print(f"train {level}: {summary['train_rows']} rows, {summary['classes']} classes, best epoch "
              f"{summary['best_epoch']:g}, val macro-F1 {summary['best_val_macro_f1']:.4f}, "
              f"{summary['train_seconds']:.0f} s; wrote {HELDOUT / level}/")


if __name__ == "__main__":
    run_stage("train", main)
