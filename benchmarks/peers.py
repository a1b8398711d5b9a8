"""The obvious alternatives to the pipeline, trained on the rows it trains on and scored like it:

* ``seed-recipe``: the seed notebook's recipe at its own settings (:func:`benchmarks.seed_recipe.seed_recipe_probs`:
  a fresh head on the whole encoder, lr 2e-5, 4 epochs, batch 8, fp32, up to 512 tokens, the best epoch on the
  validation rows), one model per level;
* ``seed-recipe-lr1e-4``: the same at lr 1e-4 for 6 epochs, the stronger variant issue #3 measured (a small encoder
  such as MiniLM learns little from a fresh head in 4 epochs at 2e-5);
* ``setfit``: SetFit with the same base model (contrastive fine-tuning of the sentence body on label pairs, then
  a logistic-regression head), one model per level. An optional dependency of the benchmarks only
  (``pip install setfit``); its contrastive phase costs ~0.03 s per pair of short texts on a 2-core Xeon with AMX
  (fp32), so its steps are capped (``max_steps`` batches of 16 pairs);
* ``tfidf-balanced``: the TF-IDF baseline of :mod:`benchmarks.noisy` with class-balanced weights
  (``class_weight="balanced"``), the stronger bag of words on skewed classes.

Each peer gets every row the filter keeps (the seed recipe holds out the validation split to pick its epoch)
and returns per-level probabilities over the taxonomy's classes, which :mod:`benchmarks.noisy` decodes and
scores like the pipeline's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import tfidf_lr
from callreason.modeling import resolve_base_model
from callreason.taxonomy import LEVELS, Taxonomy

SEED_RECIPES = {
    "seed-recipe": ("seed recipe (the notebook's: fresh head, whole encoder, lr 2e-5, 4 epochs)", {}),
    "seed-recipe-lr1e-4": ("seed recipe (fresh head, whole encoder, lr 1e-4, 6 epochs)",
                           {"epochs": 6, "learning_rate": 1e-4}),
}
"""Each seed-recipe peer: its table label and its settings over the notebook's (``seed_recipe_probs``' defaults)."""
TFIDF_BALANCED = "TF-IDF + LR, class-balanced (same rows)"
PEERS = (*SEED_RECIPES, "setfit", "tfidf-balanced")
SETFIT_STEPS = 500
"""Default contrastive steps of SetFit per level (batches of 16 pairs; ~4 min per level of short texts on a 2-core
Xeon with AMX)."""


def peer_label(name: str, setfit_steps: int = SETFIT_STEPS) -> str:
    """How a peer is named in the tables."""
    if name in SEED_RECIPES:
        return SEED_RECIPES[name][0]
    if name == "tfidf-balanced":
        return TFIDF_BALANCED
    return f"SetFit ({setfit_steps} contrastive steps, LR head)"


def setfit_available() -> bool:
    """Whether the optional ``setfit`` package is installed."""
    try:
        import setfit  # noqa: F401
    except ImportError:
        return False
    return True


def setfit_probs(train: pd.DataFrame, test: pd.DataFrame, level: str, n_classes: int, base: str, work: Path,
                 max_steps: int = SETFIT_STEPS, seed: int = 42) -> np.ndarray:
    """SetFit on ``train`` (``summary``, ``{level}_id``) with the sentence body ``base``; ``(len(test), n_classes)``
    probabilities (0 for classes without training rows)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(resolve_base_model(base))
    args = TrainingArguments(output_dir=str(work), batch_size=16, num_epochs=1, max_steps=max_steps, seed=seed,
                             report_to="none", save_strategy="no", show_progress_bar=False)
    rows = Dataset.from_dict({"text": train["summary"].tolist(), "label": train[f"{level}_id"].astype(int).tolist()})
    Trainer(model=model, args=args, train_dataset=rows).train()
    probs = np.zeros((len(test), n_classes))
    classes = np.asarray(model.model_head.classes_, dtype=int)
    probs[:, classes] = np.asarray(model.predict_proba(test["summary"].tolist()))
    return probs


def peer_probs(name: str, dataset: pd.DataFrame, test: pd.DataFrame, taxonomy: Taxonomy, levels: tuple[str, ...],
               base: str, work: Path, seed: int = 42, setfit_steps: int = SETFIT_STEPS
               ) -> tuple[list[np.ndarray], float]:
    """Per level of ``levels``, peer ``name``'s probabilities on ``test``, trained on ``dataset`` (the filtered,
    encoded rows: ``summary``, ``{level}_id``, ``split``); and the seconds it took."""
    from benchmarks.seed_recipe import seed_recipe_probs

    start = time.perf_counter()
    if name == "tfidf-balanced":  # every filtered row, as the TF-IDF baseline of benchmarks.noisy
        every_level = tfidf_lr(dataset, test, taxonomy, class_weight="balanced")
        return [every_level[LEVELS.index(level)] for level in levels], time.perf_counter() - start
    probs = []
    for level in levels:
        n_classes = len(taxonomy.labels[level])
        if name in SEED_RECIPES:
            val = dataset[dataset["split"] == "val"]
            level_probs, _ = seed_recipe_probs(dataset[dataset["split"] != "val"], val, _with_ids(test, taxonomy, level),
                                               level, n_classes, base, work / name / level, seed=seed,
                                               **SEED_RECIPES[name][1])
        elif name == "setfit":
            level_probs = setfit_probs(dataset, test, level, n_classes, base, work / name / level, setfit_steps, seed)
        else:
            raise ValueError(f"unknown peer {name!r}; one of {', '.join(PEERS)}")
        probs.append(level_probs)
    return probs, time.perf_counter() - start


def _with_ids(frame: pd.DataFrame, taxonomy: Taxonomy, level: str) -> pd.DataFrame:
    """``frame`` with ``{level}_id`` from its ``level`` names (the seed recipe's rows carry labels)."""
    return frame.assign(**{f"{level}_id": taxonomy.ids(level, frame[level].tolist())})

