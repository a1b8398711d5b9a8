"""Seeded generator of SYNTHETIC demo data for the call-reason pipeline (phrases in ``phrase_bank.json``).

Produces a realistic contact-center taxonomy, LLM-style call summaries built
compositionally from phrase banks, an imperfect "LLM labeler" output (labels
with confidences and ~10% label noise) and an unlabeled pool that keeps its
hidden gold labels for benchmarks. Pure numpy/pandas/stdlib.

Regenerate the committed demo files with::

    python -m callreason.demo --root .

``--long`` writes the same rows with transcript-like summaries of 200-600 words, the reason stated once
among greeting, verification, hold and closing sentences (for long-text benchmarks).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_taxonomy", "generate_demo_data", "lengthen_summary", "write_demo_data", "main"]

NOISE_RATE = 0.10  # fraction of labeled rows whose LLM label is wrong
MIN_WORDS, MAX_WORDS = 40, 120
LONG_MIN_WORDS, LONG_MAX_WORDS = 200, 600  # long mode: transcript-like summaries (``--long``)
MIN_PER_LEAF = 12  # labeled rows per leaf (by true label) before any filtering
ZIPF_EXPONENT = 0.9

# Where each content slot draws its phrase from (cumulative order below).
# Low leaf share + sibling/cousin borrowing keeps the leaf task non-trivial.
SOURCE_PROBS = {"leaf": 0.42, "l2": 0.26, "sibling": 0.14, "cousin": 0.08, "l1": 0.10}
TOPIC_SOURCE_PROBS = {"leaf": 0.5, "l2": 0.38, "sibling": 0.12}
P_SECONDARY = 0.18  # summary also mentions a topic from another branch

PHRASE_BANK = Path(__file__).with_name("phrase_bank.json")
"""The data the summaries are composed from: ``tree`` is the taxonomy with one phrase tuple per node
(topics, details, actions, outcomes; each a " | "-separated list; key "_" holds the vocabulary shared by all
children of a node), ``sentences`` the templates shared by every call, ``fillers`` the values of placeholders."""
_BANK = json.loads(PHRASE_BANK.read_text(encoding="utf-8"))
_SPEC: dict = _BANK["tree"]
_CUSTOMERS, _OPENERS, _OPENERS_NO_CUST, _DETAIL_T, _ACTION_T, _OUTCOME_T, _VERIFY, _HOLD, _CLOSING, _SECONDARY = (
    _BANK["sentences"][k] for k in ("customers", "openers", "openers_no_customer", "detail", "action", "outcome",
                                    "verify", "hold", "closing", "secondary"))
_TRANSCRIPT: dict[str, list[str]] = _BANK["transcript"]  # long mode's sentences that carry no call reason
_MONTHS, _PLANS, _DEVICES, _ITEMS, _CODES, _TIMES, _NTH = (
    _BANK["fillers"][k] for k in ("month", "plan", "device", "item", "code", "time", "nth"))

_KINDS = ("topics", "details", "actions", "outcomes")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _split(s: str) -> list[str]:
    return [p.strip() for p in s.split("|") if p.strip()]


def _bank(t: tuple[str, str, str, str]) -> dict[str, list[str]]:
    return {k: _split(v) for k, v in zip(_KINDS, t)}


def make_taxonomy() -> dict[str, dict[str, list[str]]]:
    """Nested {level_1: {level_2: [level_3, ...]}} call-center taxonomy: 8 process areas, ~42 sub-areas, ~64 reasons."""
    return {
        l1: {l2: [l3 for l3 in node2 if l3 != "_"] for l2, node2 in node1.items() if l2 != "_"}
        for l1, node1 in _SPEC.items()
    }


def _build_banks() -> dict:
    """Flatten the spec into leaf paths, sibling/cousin lists and phrase pools."""
    leaves, path, pools = [], {}, {}
    for l1, node1 in _SPEC.items():
        pools[("l1", l1)] = _bank(node1["_"])
        for l2, node2 in node1.items():
            if l2 == "_":
                continue
            pools[("l2", l2)] = _bank(node2["_"])
            for l3, t in node2.items():
                if l3 == "_":
                    continue
                leaves.append(l3)
                path[l3] = (l1, l2)
                pools[("leaf", l3)] = _bank(t)
    siblings = {x: [y for y in leaves if path[y][1] == path[x][1] and y != x] for x in leaves}
    cousins = {x: [y for y in leaves if path[y][0] == path[x][0] and path[y][1] != path[x][1]]
               for x in leaves}
    return {"leaves": leaves, "path": path, "pools": pools,
            "siblings": siblings, "cousins": cousins}


def _fill(text: str, values: dict[str, str], nxt: Callable[[], float]) -> str:
    """Replace {placeholders} with random-but-consistent values for one summary."""

    def pick(seq):
        return seq[int(nxt() * len(seq))]

    def make(name: str) -> str:
        if name == "amount":
            return f"${int(5 + nxt() * 395)}.{int(nxt() * 100):02d}"
        if name == "amount2":
            return f"${int(400 + nxt() * 600)}.{int(nxt() * 100):02d}"
        if name == "date":
            return f"{pick(_MONTHS)} {1 + int(nxt() * 28)}"
        if name == "month":
            return pick(_MONTHS)
        if name == "order":
            return f"#{1_000_000 + int(nxt() * 9_000_000)}"
        if name == "ticket":
            return f"TCK-{100_000 + int(nxt() * 900_000)}"
        if name == "last4":
            return f"{int(nxt() * 10_000):04d}"
        if name in ("days", "mins"):
            return str(2 + int(nxt() * 9))
        if name == "hours":
            return pick(["1", "2", "4", "12", "24"])
        if name == "speed":
            return str(3 + int(nxt() * 40))
        if name == "points":
            return str(50 * (10 + int(nxt() * 90)))
        if name == "pct":
            return pick(["10", "15", "20", "25"])
        if name == "years":
            return str(2 + int(nxt() * 14))
        if name == "n":
            return str(3 + int(nxt() * 40))
        table = {"plan": _PLANS, "device": _DEVICES, "item": _ITEMS, "code": _CODES,
                 "time": _TIMES, "nth": _NTH}
        return pick(table[name])

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            values[name] = make(name)
        return values[name]

    return _PLACEHOLDER.sub(repl, text)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _compose(leaf: str, banks: dict, nxt: Callable[[], float]) -> tuple[str, float, list[str], str | None]:
    """Compose one summary for true leaf `leaf`.

    Returns (text, leaf_fraction, distractor_leaves, secondary_leaf): the share
    of content slots drawn from the leaf's own phrases, the other leaves whose
    phrases were borrowed, and the leaf of an off-branch secondary topic.
    """
    pools, path = banks["pools"], banks["path"]
    l1, l2 = path[leaf]

    def pick(seq):
        return seq[int(nxt() * len(seq))]

    n_leaf, n_slots, distractors, used = 0, 0, [], set()

    def draw_once(kind: str, probs: dict[str, float]) -> tuple[str, str | None]:
        r, acc, src = nxt(), 0.0, "l2"
        for name, p in probs.items():
            acc += p
            if r < acc:
                src = name
                break
        if src in ("sibling", "cousin"):
            group = banks["siblings" if src == "sibling" else "cousins"][leaf]
            if group:
                other = pick(group)
                return pick(pools[("leaf", other)][kind]), other
        if src == "l1" and pools[("l1", l1)][kind]:
            return pick(pools[("l1", l1)][kind]), None
        if src == "leaf":
            return pick(pools[("leaf", leaf)][kind]), leaf
        return pick(pools[("l2", l2)][kind]), None

    def phrase(kind: str, probs: dict[str, float] = SOURCE_PROBS) -> str:
        nonlocal n_leaf, n_slots
        for _ in range(4):  # avoid repeating a phrase within one summary
            text, src_leaf = draw_once(kind, probs)
            if text not in used:
                break
        used.add(text)
        n_slots += 1
        if src_leaf == leaf:
            n_leaf += 1
        elif src_leaf is not None:
            distractors.append(src_leaf)
        return text

    # The opener names the reason: its topic never comes from a cousin branch.
    topic = phrase("topics", TOPIC_SOURCE_PROBS)
    if nxt() < 0.8:
        opener = pick(_OPENERS).format(cust=pick(_CUSTOMERS), topic=topic)
    else:
        opener = pick(_OPENERS_NO_CUST).format(topic=topic)

    details = [pick(_DETAIL_T).format(x=phrase("details")) for _ in range(1 + (nxt() < 0.55))]
    actions = [pick(_ACTION_T).format(x=phrase("actions")) for _ in range(1 + (nxt() < 0.5))]
    o = phrase("outcomes")
    outcome = pick(_OUTCOME_T).format(x=o, X=_cap(o))

    verify = pick(_VERIFY) if nxt() < 0.55 else None
    hold = pick(_HOLD) if nxt() < 0.3 else None
    closing = pick(_CLOSING) if nxt() < 0.75 else None

    secondary_leaf, secondary = None, None
    if nxt() < P_SECONDARY:
        others = [x for x in banks["leaves"] if path[x][0] != l1]
        secondary_leaf = pick(others)
        secondary = pick(_SECONDARY).format(topic=pick(pools[("leaf", secondary_leaf)]["topics"]))

    # Assemble with some variation in sentence order.
    sents = [opener]
    if verify and nxt() < 0.5:
        sents.append(verify)
        verify = None
    sents += details
    if verify:
        sents.append(verify)
    if hold and nxt() < 0.5:
        sents.append(hold)
        hold = None
    sents += actions
    if hold:
        sents.append(hold)
    sents.append(outcome)
    if secondary:
        sents.insert(len(sents) - (nxt() < 0.5), secondary)
    if closing:
        sents.append(closing)

    values: dict[str, str] = {}
    text = " ".join(_cap(_fill(s, values, nxt)) for s in sents)
    return text, n_leaf / n_slots, distractors, secondary_leaf


def _summaries(true_leaves: list[str], banks: dict, rng: np.random.Generator) -> dict[str, list]:
    """Compose one summary per true leaf, resampling until 40-120 words."""
    out: dict[str, list] = {"summary": [], "leaf_frac": [], "distractors": [], "secondary": []}
    for leaf in true_leaves:
        while True:
            nxt = iter(rng.random(256).tolist()).__next__
            text, frac, dis, sec = _compose(leaf, banks, nxt)
            if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                break
        out["summary"].append(text)
        out["leaf_frac"].append(frac)
        out["distractors"].append(dis)
        out["secondary"].append(sec)
    return out


def lengthen_summary(summary: str, rng: np.random.Generator) -> str:
    """A transcript-like long version of ``summary`` (``LONG_MIN_WORDS``-``LONG_MAX_WORDS`` words, uniform):
    a greeting and verification first, closing sentences last, and between them process and hold sentences
    that name no reason, with ``summary`` (where the reason is stated) kept whole at a random position among
    them, so what decides the class can sit anywhere, also past a model's ``max_length``."""
    nxt = iter(rng.random(1024).tolist()).__next__

    def filled(template: str) -> str:
        return _cap(_fill(template, {}, nxt))

    def sentence(kind: str) -> str:
        options = _TRANSCRIPT[kind]
        return filled(options[int(nxt() * len(options))])

    target = int(LONG_MIN_WORDS + nxt() * (LONG_MAX_WORDS - LONG_MIN_WORDS + 1))
    head = [sentence("greeting"), *(sentence("verification") for _ in range(1 + (nxt() < 0.5)))]
    tail = [sentence("closing") for _ in range(1 + (nxt() < 0.6))]
    middle: list[str] = []
    deck: list[str] = []  # the process and hold sentences, shuffled, dealt without repeats until used up
    words = sum(len(x.split()) for x in [summary, *head, *tail])
    while words < target:
        if not deck:
            deck = [t for kind in ("process", "hold") for t in _TRANSCRIPT[kind]]
            deck = [deck[i] for i in np.argsort([nxt() for _ in deck])]
        middle.append(filled(deck.pop()))
        words += len(middle[-1].split())
    if words > LONG_MAX_WORDS and middle:  # the last sentence overshot the range
        middle.pop()
    middle.insert(int(nxt() * (len(middle) + 1)), summary)
    return " ".join([*head, *middle, *tail])


def _leaf_counts(n: int, n_leaves: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-ish per-leaf counts with a floor; also returns the leaf probabilities."""
    ranks = rng.permutation(n_leaves) + 1
    w = ranks.astype(float) ** -ZIPF_EXPONENT
    w /= w.sum()
    floor = min(MIN_PER_LEAF, n // n_leaves)
    counts = floor + rng.multinomial(n - floor * n_leaves, w)
    probs = (floor + (n - floor * n_leaves) * w) / max(n, 1)
    return counts, probs / probs.sum()


def _llm_labels(true_idx: np.ndarray, comp: dict, banks: dict,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulate an imperfect LLM labeler: noisy leaf indices and confidences."""
    leaves = banks["leaves"]
    index = {x: i for i, x in enumerate(leaves)}
    n = len(true_idx)
    has_dis = np.array([len(d) > 0 for d in comp["distractors"]], dtype=float)
    has_sec = np.array([s is not None for s in comp["secondary"]], dtype=float)
    ambiguity = np.clip(1.0 - np.asarray(comp["leaf_frac"]) + 0.4 * has_dis + 0.3 * has_sec, 0, 1.5)

    # Wrong rows: exactly NOISE_RATE of them, preferentially the ambiguous ones.
    n_wrong = int(round(NOISE_RATE * n))
    w = 0.15 + ambiguity
    wrong = np.zeros(n, dtype=bool)
    if n_wrong:
        wrong[rng.choice(n, size=n_wrong, replace=False, p=w / w.sum())] = True

    pred = true_idx.copy()
    for i in np.flatnonzero(wrong):
        leaf = leaves[true_idx[i]]
        r = rng.random()
        sec, dis = comp["secondary"][i], comp["distractors"][i]
        if dis and r < 0.55:
            cands = dis
        elif sec is not None and r < 0.75:
            cands = [sec]
        elif banks["siblings"][leaf] and r < 0.9:
            cands = banks["siblings"][leaf]
        elif banks["cousins"][leaf] and r < 0.97:
            cands = banks["cousins"][leaf]
        else:
            cands = [x for x in leaves if x != leaf]
        pred[i] = index[cands[int(rng.random() * len(cands))]]

    # Confidence: high when right and the text is clear, low-ish when wrong.
    amb = np.minimum(ambiguity, 1.0)
    noise = rng.normal(0.0, 1.0, n)
    conf = np.where(wrong, 0.705 + 0.07 * noise - 0.03 * amb, 0.93 - 0.15 * amb + 0.065 * noise)
    clump = rng.random(n) < 0.5  # LLMs like round numbers: 0.85, 0.9, 0.95
    conf = np.where(clump, np.round(conf * 20) / 20, np.round(conf, 2))
    conf = np.clip(conf, 0.5, 0.99).round(2).astype(np.float64)
    return pred, conf


def _generate(seed: int, n_labeled: int, n_unlabeled: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Full generator; the labeled frame also carries gold_level_1/2/3 columns."""
    rng = np.random.default_rng(seed)
    taxonomy = make_taxonomy()
    banks = _build_banks()
    leaves, path = banks["leaves"], banks["path"]

    counts, probs = _leaf_counts(n_labeled, len(leaves), rng)
    lab_idx = rng.permutation(np.repeat(np.arange(len(leaves)), counts))
    unl_idx = rng.choice(len(leaves), size=n_unlabeled, p=probs)

    lab = _summaries([leaves[i] for i in lab_idx], banks, rng)
    unl = _summaries([leaves[i] for i in unl_idx], banks, rng)
    pred_idx, conf = _llm_labels(lab_idx, lab, banks, rng)

    def paths(idx: np.ndarray) -> list[tuple[str, str, str]]:
        return [(*path[leaves[i]], leaves[i]) for i in idx]

    pred_p, gold_p, unl_p = paths(pred_idx), paths(lab_idx), paths(unl_idx)
    labeled = pd.DataFrame({
        "call_id": [f"CALL-{i + 1:06d}" for i in range(n_labeled)],
        "summary": lab["summary"],
        "level_1": [p[0] for p in pred_p],
        "level_2": [p[1] for p in pred_p],
        "level_3": [p[2] for p in pred_p],
        "confidence": conf,
        "gold_level_1": [p[0] for p in gold_p],
        "gold_level_2": [p[1] for p in gold_p],
        "gold_level_3": [p[2] for p in gold_p],
    })
    unlabeled = pd.DataFrame({
        "call_id": [f"UNL-{i + 1:06d}" for i in range(n_unlabeled)],
        "summary": unl["summary"],
        "level_1": [p[0] for p in unl_p],
        "level_2": [p[1] for p in unl_p],
        "level_3": [p[2] for p in unl_p],
    })
    return taxonomy, labeled, unlabeled


def generate_demo_data(seed: int = 0, n_labeled: int = 2400, n_unlabeled: int = 5000,
                       *, return_gold: bool = False, long: bool = False) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Returns (taxonomy, labeled, unlabeled).

    ``long``: every summary is :func:`lengthen_summary` of the short one (200-600 words); the rows, labels
    and confidences are those of the short demo with the same seed, so the two compare length alone.

    labeled columns: call_id (str), summary (str), level_1, level_2, level_3 (str),
    confidence (float64 in [0,1]); the labels are those of a simulated imperfect
    LLM labeler (~10% wrong). With ``return_gold=True`` the labeled frame also has
    the true gold_level_1, gold_level_2, gold_level_3.
    unlabeled columns: call_id, summary, plus the hidden gold level_1, level_2,
    level_3 (true labels, for benchmarks).
    """
    taxonomy, labeled, unlabeled = _generate(seed, n_labeled, n_unlabeled)
    if long:
        rng = np.random.default_rng([seed, 1])  # its own stream: the short demo's draws stay as they are
        for frame in (labeled, unlabeled):
            frame["summary"] = [lengthen_summary(text, rng) for text in frame["summary"]]
    if not return_gold:
        labeled = labeled.drop(columns=["gold_level_1", "gold_level_2", "gold_level_3"])
    return taxonomy, labeled, unlabeled


def write_demo_data(root: Path, seed: int = 0, n_labeled: int = 2400, n_unlabeled: int = 5000,
                    long: bool = False) -> None:
    """Writes root/taxonomy/taxonomy.json (indent=2), root/data/phase2_labeled.parquet,
    root/data/unlabeled_summaries.parquet (call_id, summary only) and root/data/demo_unlabeled_gold.parquet
    (call_id, level_1, level_2, level_3) and an empty root/data/relabeled.parquet (no imported LLM answers yet).
    Creates folders. Deterministic: same seed -> byte-identical files. ``long``: see :func:`generate_demo_data`."""
    root = Path(root)
    taxonomy, labeled, unlabeled = generate_demo_data(seed=seed, n_labeled=n_labeled, n_unlabeled=n_unlabeled,
                                                      long=long)
    (root / "taxonomy").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "taxonomy" / "taxonomy.json").write_text(json.dumps(taxonomy, indent=2) + "\n", encoding="utf-8")
    labeled.to_parquet(root / "data" / "phase2_labeled.parquet", index=False)
    unlabeled[["call_id", "summary"]].to_parquet(root / "data" / "unlabeled_summaries.parquet", index=False)
    unlabeled[["call_id", "level_1", "level_2", "level_3"]].to_parquet(
        root / "data" / "demo_unlabeled_gold.parquet", index=False)
    from callreason.relabel import empty_relabeled

    empty_relabeled().to_parquet(root / "data" / "relabeled.parquet", index=False)  # no LLM answers imported yet


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m callreason.demo --root . --seed 0``."""
    parser = argparse.ArgumentParser(description="Write the synthetic demo data set (seeded).")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root to write into")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--long", action="store_true",
                        help="transcript-like summaries of 200-600 words (same rows and labels as without)")
    args = parser.parse_args(argv)
    write_demo_data(args.root, seed=args.seed, long=args.long)
    print(f"wrote synthetic {'long ' if args.long else ''}demo data (seed={args.seed}) under {args.root.resolve()}")


if __name__ == "__main__":
    main()
