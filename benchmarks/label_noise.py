"""LLM-style label noise for benchmarks: plausible wrong paths and overlapping confidences.

What an LLM labeler gets wrong, as seen in call-center labels: mostly a sibling leaf (same level_2),
sometimes a cousin (same level_1), rarely anything; more often on summaries that read like another
class; and its confidence is lower on wrong labels on average, but the two overlap. This module
simulates that on a gold-labeled frame:

* which rows: ``rate`` of them, drawn with weight ``0.3 + ambiguity``, where ambiguity (0..1) is how close
  the row's TF-IDF vector is to another class's centroid compared with its own class's;
* which wrong label: a sibling (p 0.6), a cousin (p 0.3) or any leaf (p 0.1), the tier falling through
  when empty; within a tier, leaves are drawn by similarity of the row to their centroids (softmax, so
  the mistake is plausible for that text);
* confidence: right rows ~ N(0.87, 0.07) lowered by ambiguity, wrong rows ~ N(0.72, 0.09), clipped to
  [0.3, 0.99]; half are rounded to 0.05 (LLMs like round numbers), half to 0.01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from callreason.taxonomy import LEVELS, Taxonomy

TIERS = (("sibling", 0.6), ("cousin", 0.3), ("any", 0.1))


def class_similarity(texts: list[str], leaves: np.ndarray, n_leaves: int) -> np.ndarray:
    """``(n, n_leaves)`` cosine similarity of each text's TF-IDF vector to each leaf's centroid
    (the row itself left out of its own leaf's centroid; ``-1`` for leaves without rows)."""
    vectors = normalize(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1).fit_transform(texts))
    own = np.arange(len(leaves))
    membership = csr_matrix((np.ones(len(leaves)), (leaves, own)), shape=(n_leaves, len(leaves)))
    sims = (vectors @ (membership @ vectors).T).toarray()  # (n, n_leaves): summed similarity to the class's rows
    counts = np.bincount(leaves, minlength=n_leaves).astype(float)
    sims[own, leaves] -= 1.0  # leave the row out of its own centroid
    sizes = counts[None, :].repeat(len(leaves), 0)
    sizes[own, leaves] -= 1
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = np.where(sizes > 0, sims / np.maximum(sizes, 1), -1.0)
    return sims


def llm_label_noise(frame: pd.DataFrame, taxonomy: Taxonomy, rate: float,
                    seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` (gold ``level_1..3``, ``summary``) with ``rate`` of its paths replaced by plausible wrong
    ones and a simulated LLM ``confidence``. Returns (noisy frame, ``wrong`` bool per row)."""
    rng = np.random.default_rng(seed)
    leaves_all = taxonomy.labels["level_3"]
    leaf_ids = taxonomy.ids("level_3", frame["level_3"].tolist())
    sims = class_similarity(frame["summary"].tolist(), leaf_ids, len(leaves_all))
    own = sims[np.arange(len(frame)), leaf_ids]
    others = sims.copy()
    others[np.arange(len(frame)), leaf_ids] = -np.inf
    ambiguity = np.clip(1.0 - (own - others.max(1)) / 0.2, 0.0, 1.0)  # 1: another class is as close as its own

    n_wrong = int(round(rate * len(frame)))
    weights = 0.3 + ambiguity
    wrong = np.zeros(len(frame), dtype=bool)
    wrong[rng.choice(len(frame), size=n_wrong, replace=False, p=weights / weights.sum())] = True

    parent = taxonomy.parent
    new_leaf = np.array(frame["level_3"].tolist(), dtype=object)
    for i in np.flatnonzero(wrong):
        leaf = new_leaf[i]
        l2 = parent["level_3"][leaf]
        l1 = parent["level_2"][l2]
        tiers = {
            "sibling": [x for x in leaves_all if x != leaf and parent["level_3"][x] == l2],
            "cousin": [x for x in leaves_all if parent["level_3"][x] != l2 and parent["level_2"][parent["level_3"][x]] == l1],
            "any": [x for x in leaves_all if parent["level_2"][parent["level_3"][x]] != l1],
        }
        r, acc, candidates = rng.random(), 0.0, []
        for name, p in TIERS:
            acc += p
            if r < acc and tiers[name]:
                candidates = tiers[name]
                break
        candidates = candidates or next(tiers[name] for name, _ in TIERS if tiers[name])
        scores = np.array([sims[i, leaves_all.index(x)] for x in candidates])
        p = np.exp((scores - scores.max()) / 0.05)
        new_leaf[i] = candidates[rng.choice(len(candidates), p=p / p.sum())]

    confidence = np.where(wrong, rng.normal(0.72, 0.09, len(frame)),
                          rng.normal(0.87, 0.07, len(frame)) - 0.08 * ambiguity)
    clump = rng.random(len(frame)) < 0.5
    confidence = np.where(clump, np.round(confidence * 20) / 20, np.round(confidence, 2))
    noisy = frame.copy()
    paths = [taxonomy.path_of_leaf(leaf) for leaf in new_leaf]
    for depth, level in enumerate(LEVELS):
        noisy[level] = [path[depth] for path in paths]
    noisy["confidence"] = np.clip(confidence, 0.3, 0.99).round(2)
    return noisy, wrong
