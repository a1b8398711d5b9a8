"""Long summaries: which part of a text reaches the encoder, and which pooling keeps the call reason.

    python -m benchmarks.long_texts                          # 3 draws of demo-long, the short demo beside it
    python -m benchmarks.long_texts --draws 1 --test-rows 500 # a quick look
    python -m benchmarks.long_texts --first-draw 2 --draws 1  # add draw 2 to the results file
    python -m benchmarks.long_texts --datasets demo-skewed-small demo-long-skewed-small  # a few hundred rows
    python -m benchmarks.long_texts --only 'windows-256-(mean|idf)'   # some strategies (TF-IDF + LR always runs)

A screening with the base encoder frozen (no fine-tuning, so each strategy costs one pass over the texts): every
strategy turns a summary into a vector (or, ``mil``, per-window log-probabilities), a logistic regression per level
(the pipeline's linear probe: ``train.probe_c``, class-balanced) is fitted on the LLM labels of the draw's labeled
rows that ``filter.min_confidence`` keeps, and each level's macro-F1 of its own argmax is scored on gold rows of the
unlabeled pool. The draws are those of ``benchmarks.noisy``'s ``demo-long``: the demo generator with ``seed = draw``,
each summary a 200-600-word transcript with the reason stated once at a random place (``python -m callreason.demo
--long``); ``demo`` is the same rows with their short summaries. ``demo-skewed-small`` and ``demo-long-skewed-small``
are ``benchmarks.noisy``'s draws of a few hundred of those rows, half in one level_1, scored on its 1,000 gold rows;
``banking77-skewed-small`` is its short-text counterpart (skipped when ``../shared/benchmarks/banking77`` is absent).
Strategies (``W`` tokens per window):

* ``truncate-N``: the first N tokens, what ``model.max_length`` does (N = 128, 256, 512);
* ``sentences-mean`` / ``-max`` / ``-mean+max`` / ``-mil``: the same poolings, each sentence its own unit (encoded
  alone, at most 128 tokens) instead of a fixed window; ``mean+max`` is both vectors side by side;
* ``head+tail-512``: the first 128 and the last 382 tokens (Sun et al. 2019's choice for long reviews);
* ``windows-W-mean``: the text cut into W-token windows, their pooled vectors averaged (weighted by tokens);
* ``windows-W-max``: the per-dimension max of the windows' pooled vectors;
* ``windows-W-mil``: multiple-instance: each window is a training row with its text's label, and a text's score
  for a class is the highest log-probability any of its windows gives it;
* ``windows-256-idf`` (short sets: ``windows-512-idf``, the whole text): ``windows-W-mean`` with each token's vector
  weighted by its inverse document frequency over the draw's training texts (``model.token_weighting: idf``);
* ``TF-IDF + LR``: the pipeline's TF-IDF companion recipe on the whole text.

Results: one JSON line per (data set, draw) in ``--out`` and a table (mean ± half-range over draws, seconds per
strategy for both passes) beside it as ``.md``; ``--summarize FILE`` redoes the table.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from benchmarks.common import ROOT, SHARED, append_jsonl, spread_probs
from callreason.demo import generate_demo_data, make_taxonomy
from callreason.io import load_params
from callreason.lexical import blend_log_proba, tfidf_union
from callreason.metrics import evaluation_metrics
from callreason.modeling import build_classifier, encoder_precision, pad_batch, token_idf
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.training import bf16_enabled

DATASETS = ("demo", "demo-long", "demo-skewed-small", "demo-long-skewed-small", "banking77-skewed-small")
WINDOWS = (64, 128, 256, 512)  # tokens per window, special tokens included
HEAD_TAIL = (128, 382)  # head+tail-512's first and last tokens
SENTENCE_TOKENS = 128  # a sentence unit is cut at this many tokens, special tokens included
BLEND_WEIGHTS = (0.3, 0.7)  # TF-IDF weights of the blended, jointly decoded scores (the pipeline picks 0-1)
IDF_WINDOW = 256  # windows-W-idf's W on long texts (the pipeline's windows); short texts: their first 512 tokens
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
UNSEEN_FLOOR = 1e-9  # probability of a class a probe never saw (its log is blended)


@torch.inference_mode()
def pooled_windows(model, windows: list[list[int]], pad_id: int, token_weight: np.ndarray | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """The encoder's pooled vectors ``(len(windows), hidden)``, length-sorted batches as the pipeline runs them;
    with ``token_weight``, each token's hidden state weighs ``token_weight[token id]`` in the mean."""
    out = np.zeros((len(windows), model.head.in_features), np.float32)
    order = np.argsort([-len(w) for w in windows], kind="stable")
    weight = None if token_weight is None else torch.as_tensor(token_weight, dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = pad_batch([windows[i] for i in index], pad_id)
        mask = batch["attention_mask"] if weight is None else weight[batch["input_ids"]] * batch["attention_mask"]
        with encoder_precision(model):
            hidden = model.encoder(**batch).last_hidden_state
            out[index] = model.pool_hidden(hidden, mask).float().numpy()
    return out


def encode_windows(model, tokenizer, texts: list[str], width: int,
                   token_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every consecutive ``width``-token window of ``texts`` (the tokenizer's overflowing windows, special tokens
    included): pooled vectors, the text each belongs to, its token count (its total weight with ``token_weight``)."""
    encoded = tokenizer(texts, truncation=True, max_length=width, return_overflowing_tokens=True)
    windows, owner = encoded["input_ids"], np.array(encoded["overflow_to_sample_mapping"])
    weights = [len(w) if token_weight is None else token_weight[w].sum() for w in windows]
    return pooled_windows(model, windows, tokenizer.pad_token_id, token_weight), owner, np.array(weights)


def encode_sentences(model, tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every sentence of ``texts`` encoded alone (cut at ``SENTENCE_TOKENS``), as :func:`encode_windows` returns
    windows: pooled vectors, the text each belongs to, its token count. A text without a sentence end is one unit."""
    units, owner = [], []
    for i, text in enumerate(texts):
        sentences = [part for part in SENTENCE_END.split(text) if part.strip()] or [text]
        units += sentences
        owner += [i] * len(sentences)
    ids = tokenizer(units, truncation=True, max_length=SENTENCE_TOKENS)["input_ids"]
    return pooled_windows(model, ids, tokenizer.pad_token_id), np.array(owner), np.array([len(row) for row in ids])


def head_tail(model, tokenizer, texts: list[str]) -> np.ndarray:
    """Pooled vectors of each text's first ``HEAD_TAIL[0]`` and last ``HEAD_TAIL[1]`` tokens (special tokens
    included)."""
    head, tail = HEAD_TAIL
    ids = tokenizer(texts, verbose=False)["input_ids"]  # untruncated: no warning about the model's length
    kept = [row if len(row) <= head + tail else row[:head] + row[-tail:] for row in ids]
    return pooled_windows(model, kept, tokenizer.pad_token_id)


def per_text(vectors: np.ndarray, owner: np.ndarray, counts: np.ndarray, n: int, how: str) -> np.ndarray:
    """One vector per text from its windows': ``first`` (truncation), token-weighted ``mean``, ``max``, or
    ``mean+max`` (the two side by side)."""
    if how == "mean+max":
        return np.hstack([per_text(vectors, owner, counts, n, "mean"), per_text(vectors, owner, counts, n, "max")])
    if how == "first":
        first = np.r_[True, owner[1:] != owner[:-1]]
        return vectors[first]
    if how == "mean":
        sums = np.zeros((n, vectors.shape[1]), np.float64)
        np.add.at(sums, owner, vectors * counts[:, None])
        return (sums / np.bincount(owner, weights=counts, minlength=n)[:, None]).astype(np.float32)
    out = np.full((n, vectors.shape[1]), -np.inf, np.float32)
    np.maximum.at(out, owner, vectors)
    return out


def probe(c: float, x_train, y_train: np.ndarray, seed: int) -> LogisticRegression:
    """The linear probe of the pipeline: class-balanced logistic regression."""
    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
    return model.fit(x_train, y_train)


def macro_f1(true: np.ndarray, predicted: np.ndarray) -> float:
    return round(float(f1_score(true, predicted, average="macro")), 4)


def probe_probs(c: float, x_train, y_train: np.ndarray, x_test, n_classes: int, seed: int) -> np.ndarray:
    """Class probabilities of a probe fitted on ``x_train`` (class ids), for ``x_test``."""
    model = probe(c, x_train, y_train, seed)
    return spread_probs(model.predict_proba(x_test), model.classes_, n_classes, UNSEEN_FLOOR)


def mil_probs(windows_train, windows_test, y_train: np.ndarray, n_texts: int, n_classes: int, c: float,
              seed: int) -> np.ndarray:
    """Multiple-instance: every unit (window or sentence) trains with its text's label; a text's score for a class
    is the highest log-probability any of its units gives it, normalised over the classes."""
    (x_train, owner_train, _), (x_test, owner_test, _) = windows_train, windows_test
    model = probe(c, x_train, y_train[owner_train], seed)
    best = np.full((n_texts, len(model.classes_)), -np.inf)
    np.maximum.at(best, owner_test, model.predict_log_proba(x_test))
    return spread_probs(softmax(best, axis=1), model.classes_, n_classes, UNSEEN_FLOOR)


def level_scores(truth: dict[str, np.ndarray], probs: dict[str, np.ndarray], lexical: dict[str, np.ndarray] | None,
                 taxonomy: Taxonomy) -> dict[str, Any]:
    """Each level's macro-F1 of its own argmax (``scores``, as the earlier screens: sklearn's macro over true and
    predicted classes), and (``joint``) of the best valid path when each level's probabilities are blended with the
    TF-IDF ``lexical`` ones at each of ``BLEND_WEIGHTS`` as the pipeline blends them
    (:func:`callreason.lexical.blend_log_proba`), keyed by weight, scored as the pipeline scores its models
    (:func:`callreason.metrics.evaluation_metrics`); for TF-IDF itself (``lexical`` None), its own path."""
    true_ids = np.stack([truth[lv] for lv in LEVELS], axis=1)

    def joint(level_probs: dict[str, np.ndarray]) -> dict[str, float]:
        metrics = evaluation_metrics(true_ids, [level_probs[lv] for lv in LEVELS], taxonomy)
        return {lv: metrics[lv]["macro_f1"] for lv in LEVELS}

    out: dict[str, Any] = {"scores": {lv: macro_f1(truth[lv], probs[lv].argmax(1)) for lv in LEVELS}}
    if lexical is None:
        out["joint"] = {"lexical": joint(probs)}
    else:
        out["joint"] = {str(w): joint({lv: softmax(blend_log_proba(np.log(probs[lv]), np.log(lexical[lv]), w), axis=1)
                                       for lv in LEVELS}) for w in BLEND_WEIGHTS}
    return out


def draw_rows(dataset: str, draw: int, params: dict[str, Any], test_rows: int
              ) -> tuple[pd.DataFrame, pd.DataFrame, Taxonomy]:
    """Draw ``draw`` of ``dataset``: the labeled rows the confidence filter keeps, the gold rows to score on, and
    the taxonomy."""
    if dataset.endswith("skewed-small"):
        from benchmarks.noisy import make_case

        case = make_case(dataset, draw)
        labeled, test, taxonomy = case.labeled, case.external, case.taxonomy
    else:
        _, labeled, pool = generate_demo_data(seed=draw, return_gold=True, long=dataset == "demo-long")
        test, taxonomy = pool.head(test_rows), Taxonomy.from_dict(make_taxonomy())
    train = labeled[labeled["confidence"] >= params["filter"]["min_confidence"]]
    return train.reset_index(drop=True), test.reset_index(drop=True), taxonomy


def one_draw(dataset: str, draw: int, params: dict[str, Any], test_rows: int, model, tokenizer,
             only: re.Pattern | None = None) -> dict[str, Any]:
    """Every strategy (those whose name ``only`` finds, when given) on one draw of ``dataset`` (the long ones: all
    of them; a short one: the whole text, its IDF-weighted mean and TF-IDF): ``{strategy: {scores, joint,
    seconds}}`` (see :func:`level_scores`)."""
    train, test, taxonomy = draw_rows(dataset, draw, params, test_rows)
    long = "long" in dataset
    c, seed = params["train"]["probe_c"], params["seed"]
    texts = train["summary"].tolist(), test["summary"].tolist()
    labels = {lv: taxonomy.ids(lv, train[lv]) for lv in LEVELS}
    truth = {lv: taxonomy.ids(lv, test[lv]) for lv in LEVELS}
    n_classes = {lv: len(taxonomy.labels[lv]) for lv in LEVELS}
    results: dict[str, Any] = {}
    start = time.perf_counter()
    vectorizer = tfidf_union()
    x_train, x_test = vectorizer.fit_transform(texts[0]), vectorizer.transform(texts[1])
    tfidf = {lv: probe_probs(20.0, x_train, labels[lv], x_test, n_classes[lv], seed) for lv in LEVELS}

    def wanted(*names: str) -> bool:
        return only is None or any(only.search(name) for name in names)

    def record(name: str, start: float, probs: dict[str, np.ndarray], encode_seconds: float | None = None) -> None:
        """Scores of ``probs``, blended with ``tfidf`` unless they are TF-IDF's own."""
        if not wanted(name) and probs is not tfidf:
            return
        seconds = time.perf_counter() - start if encode_seconds is None else encode_seconds
        lexical = None if probs is tfidf else tfidf
        results[name] = {**level_scores(truth, probs, lexical, taxonomy), "seconds": round(seconds, 1)}
        print(f"{dataset} draw {draw} {name}: {json.dumps(results[name])}", flush=True)

    def probes(x_train, x_test) -> dict[str, np.ndarray]:
        return {lv: probe_probs(c, x_train, labels[lv], x_test, n_classes[lv], seed) for lv in LEVELS}

    def multiple_instances(encoded) -> dict[str, np.ndarray]:
        return {lv: mil_probs(*encoded, labels[lv], len(test), n_classes[lv], c, seed) for lv in LEVELS}

    record("TF-IDF + LR", start, tfidf)
    for width in WINDOWS if long else (512,):
        poolings = ("first", "mean", "max") if long and width < 512 else ("first", "mean") if long else ("first",)
        names = [f"truncate-{width}" if how == "first" else f"windows-{width}-{how}" for how in poolings]
        if not wanted(*names, f"windows-{width}-mil"):
            continue
        start = time.perf_counter()
        encoded = [encode_windows(model, tokenizer, t, width) for t in texts]
        seconds = round(time.perf_counter() - start, 1)
        for how, name in zip(poolings, names):
            x_train, x_test = (per_text(*e, len(t), how) for e, t in zip(encoded, texts))
            record(name, time.perf_counter(), probes(x_train, x_test), seconds)
        if long and width <= 128:
            record(f"windows-{width}-mil", time.perf_counter(), multiple_instances(encoded), seconds)
    idf_width = IDF_WINDOW if long else 512
    if wanted(f"windows-{idf_width}-idf"):
        start = time.perf_counter()
        idf = token_idf(tokenizer(texts[0], verbose=False)["input_ids"], len(tokenizer)).numpy()
        encoded = [encode_windows(model, tokenizer, t, idf_width, idf) for t in texts]
        x_train, x_test = (per_text(*e, len(t), "mean" if long else "first") for e, t in zip(encoded, texts))
        record(f"windows-{idf_width}-idf", start, probes(x_train, x_test))
    if long and wanted(*(f"sentences-{how}" for how in ("mean", "max", "mean+max", "mil"))):
        start = time.perf_counter()
        encoded = [encode_sentences(model, tokenizer, t) for t in texts]
        seconds = round(time.perf_counter() - start, 1)
        for how in ("mean", "max", "mean+max"):
            x_train, x_test = (per_text(*e, len(t), how) for e, t in zip(encoded, texts))
            record(f"sentences-{how}", time.perf_counter(), probes(x_train, x_test), seconds)
        record("sentences-mil", time.perf_counter(), multiple_instances(encoded), seconds)
    if long and wanted("head+tail-512"):
        start = time.perf_counter()
        x_train, x_test = (head_tail(model, tokenizer, t) for t in texts)
        record("head+tail-512", start, probes(x_train, x_test))
    return results


def summary_table(lines: list[dict[str, Any]]) -> str:
    """Markdown: per data set and strategy, mean ± half-range over draws of each level's macro-F1 (its own argmax),
    of the joint path blended with TF-IDF at ``BLEND_WEIGHTS`` (level_1-3 at the first weight, level_3 at the
    second; empty for results without them), and seconds."""
    low, high = (str(w) for w in BLEND_WEIGHTS)

    def joint(result: dict[str, Any], weight: str, level: str) -> float:
        scores = result.get("joint", {})
        return scores.get(weight, scores.get("lexical", {})).get(level, np.nan)

    columns = [(f"{lv} macro-F1", lambda r, lv=lv: r["scores"][lv]) for lv in LEVELS] + [
        (f"{lv} joint, TF-IDF {low}", lambda r, lv=lv: joint(r, low, lv)) for lv in LEVELS] + [
        (f"level_3 joint, TF-IDF {high}", lambda r: joint(r, high, "level_3"))]
    cells: dict[tuple[str, str], list[list[float]]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    for line in lines:
        for name, result in line["strategies"].items():
            cells.setdefault((line["dataset"], name), []).append([value(result) for _, value in columns])
            seconds.setdefault((line["dataset"], name), []).append(result["seconds"])
    rows = ["| data set | strategy (frozen encoder + probe) | draws | " + " | ".join(h for h, _ in columns)
            + " | seconds |", "|---|---|---|" + "---|" * len(columns) + "---|"]
    for (dataset, name), values in cells.items():
        table = np.array(values, dtype=float)
        spread = (table.max(0) - table.min(0)) / 2
        rows.append(f"| {dataset} | {name} | {len(values)} | "
                    + " | ".join("" if np.isnan(m) else f"{m:.3f} ± {h:.3f}" for m, h in zip(table.mean(0), spread))
                    + f" | {np.mean(seconds[(dataset, name)]):.0f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=["demo", "demo-long"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--first-draw", type=int, default=0)
    parser.add_argument("--test-rows", type=int, default=1000,
                        help="gold pool rows scored per draw (demo, demo-long; the skewed-small sets have their own)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "long_texts.jsonl")
    parser.add_argument("--only", type=re.compile, metavar="REGEX",
                        help="only the strategies whose name this finds (TF-IDF + LR always runs)")
    parser.add_argument("--summarize", type=Path, metavar="JSONL", help="nothing runs: the table of this file's results")
    args = parser.parse_args()
    if args.summarize:
        lines = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
    else:
        params = load_params(ROOT / "params.yaml")
        model, tokenizer = build_classifier(params["model"]["base"], ["unused"], pooling=params["model"]["pooling"])
        model.classifier_config.bf16 = bf16_enabled(params["train"]["bf16"])  # as the pipeline runs it
        model.eval()
        lines = []
        for draw in range(args.first_draw, args.first_draw + args.draws):
            for dataset in args.datasets:
                if dataset.startswith("banking77") and not (SHARED / "banking77").exists():
                    print(f"{dataset}: skipped, {SHARED / 'banking77'} not found", flush=True)
                    continue
                line = {"dataset": dataset, "draw": draw, "bf16": model.classifier_config.bf16,
                        "strategies": one_draw(dataset, draw, params, args.test_rows, model, tokenizer,
                                                       args.only)}
                append_jsonl(args.out, line)
                lines.append(line)
    table = summary_table(lines)
    print(table)
    (args.summarize or args.out).with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
