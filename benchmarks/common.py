"""Shared pieces of the benchmarks: data sets, one split for every approach, and the baselines.

Data sets: the committed demo data, and BANKING77 from ``../shared/benchmarks/banking77`` when that
folder exists (never copied into the repo). Every approach is scored on the same gold test rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from callreason.dataset import encode_dataset
from callreason.io import load_params
from callreason.lexical import tfidf_union
from callreason.metrics import evaluation_metrics
from callreason.modeling import build_classifier, run_batched
from callreason.params import settings_from_params
from callreason.predict import HierarchicalPredictor
from callreason.run import training_rows
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy
from callreason.training import fit_level
from callreason.validation import filter_confident, validate_labeled

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"


def load_benchmark(name: str, params: dict[str, Any], subset_seed: int = 0) -> tuple[pd.DataFrame, Taxonomy]:
    """``demo``, ``banking77-1940`` (stratified 1,940-row subset, drawn with ``subset_seed``) or
    ``banking77`` (all 7,846 rows), validated and filtered like the pipeline's filter stage."""
    if name == "demo":
        source, taxonomy_path = ROOT / params["data"]["labeled"], ROOT / params["data"]["taxonomy"]
    else:
        source, taxonomy_path = SHARED / "banking77" / "labeled.parquet", SHARED / "banking77" / "taxonomy.json"
    taxonomy = Taxonomy.load(taxonomy_path)
    frame, _ = validate_labeled(pd.read_parquet(source), taxonomy, str(source))
    frame, _ = filter_confident(frame, params["filter"]["min_confidence"], str(source))
    if name == "banking77-1940":
        from sklearn.model_selection import train_test_split

        frame, _ = train_test_split(frame, train_size=1940, stratify=frame["level_3"], random_state=subset_seed)
    return frame.reset_index(drop=True), taxonomy


def split_dataset(frame: pd.DataFrame, taxonomy: Taxonomy, params: dict[str, Any]) -> pd.DataFrame:
    """The pipeline's own encode step: label ids and the call_id-hash split."""
    split = params["split"]
    data, _ = encode_dataset(frame, taxonomy, split["test_fraction"], split["val_fraction"], params["seed"],
                             split["min_rows_per_class"])
    return data


def score(test: pd.DataFrame, level_probs: list[np.ndarray], taxonomy: Taxonomy) -> dict[str, Any]:
    return evaluation_metrics(test[[f"{lv}_id" for lv in LEVELS]].to_numpy(), level_probs, taxonomy)


def spread_probs(probs: np.ndarray, classes: np.ndarray, n_classes: int, floor: float = 0.0) -> np.ndarray:
    """``probs`` over a model's ``classes`` as ``(n, n_classes)``; a class it never saw gets ``floor`` (> 0 for
    logarithms: the rows are then renormalised)."""
    out = np.full((len(probs), n_classes), floor)
    out[:, classes] = probs
    return out / out.sum(1, keepdims=True) if floor > 0 else out


def full_probs(model: Any, features: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` spread over all ``n_classes`` (classes absent from training get 0)."""
    return spread_probs(model.predict_proba(features), model.classes_, n_classes)


def tfidf_lr(train: pd.DataFrame, test: pd.DataFrame, taxonomy: Taxonomy,
             class_weight: str | None = None) -> list[np.ndarray]:
    """(a) the pipeline's TF-IDF recipe (:func:`callreason.lexical.tfidf_union`), logistic regression per level
    (``class_weight="balanced"``: each class weighted by the inverse of its rows, for skewed classes)."""
    vectorizer = tfidf_union()
    x_train, x_test = vectorizer.fit_transform(train["summary"]), vectorizer.transform(test["summary"])
    return [full_probs(LogisticRegression(C=20, max_iter=3000, class_weight=class_weight)
                       .fit(x_train, train[f"{lv}_id"]), x_test, len(taxonomy.labels[lv])) for lv in LEVELS]


def frozen_embeddings_lr(train: pd.DataFrame, test: pd.DataFrame, taxonomy: Taxonomy, base: str) -> list[np.ndarray]:
    """(b) frozen pooled embeddings of ``base`` (mean pooling for sentence models), logistic regression."""
    model, tokenizer = build_classifier(base, ["x"], max_length=256)
    x_train = run_batched(model, tokenizer, train["summary"].tolist(), output="pooled")
    x_test = run_batched(model, tokenizer, test["summary"].tolist(), output="pooled")
    return [full_probs(LogisticRegression(C=10, max_iter=3000).fit(x_train, train[f"{lv}_id"]), x_test,
                       len(taxonomy.labels[lv])) for lv in LEVELS]


def pipeline_levels(data: pd.DataFrame, taxonomy: Taxonomy, params: dict[str, Any], work: Path,
                    levels: tuple[str, ...] = LEVELS) -> tuple[list[np.ndarray], dict[str, Any]]:
    """(d) the train stages as configured in params.yaml, then calibrated joint decoding."""
    train, val, test = (training_rows(data, (side,)) for side in ("train", "val", "test"))
    summaries = {}
    for level in levels:
        summaries[level] = fit_level(level, train, val, taxonomy.labels[level], settings_from_params(params), work / level,
                                     work / "dvclive" / level, work / "scratch" / level)
    RunFolder(work).write_label_encoders(taxonomy)
    predictor = HierarchicalPredictor.load(work, calibrated=False)
    predictor.fit_temperatures(val)
    return predictor.level_probs(test["summary"].tolist()), summaries


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def print_table(rows: list[dict[str, Any]], title: str) -> str:
    """A markdown table of per-level macro-F1, path accuracy and seconds; returned and printed."""
    lines = [f"### {title}", "", "| approach | L1 macro-F1 | L2 macro-F1 | L3 macro-F1 | path acc | seconds |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        m = row["metrics"]
        lines.append(f"| {row['approach']} | {m['level_1']['macro_f1']:.3f} | {m['level_2']['macro_f1']:.3f} | "
                     f"{m['level_3']['macro_f1']:.3f} | {m['path']['accuracy']:.3f} | {row['seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def default_params() -> dict[str, Any]:
    return load_params(ROOT / "params.yaml")


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines results file ``path`` (a run's lines survive an interruption)."""
    with Path(path).open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def dump(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2))


def tiny_run_folder(work: Path) -> tuple[Path, np.ndarray]:
    """A run folder of three untrained one-layer BERTs (hidden size 32) over the demo taxonomy, under ``work``,
    and 2,000 demo summaries: for measuring the prediction code's memory and overhead, not a model's speed."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from callreason.demo import generate_demo_data
    from callreason.modeling import save_classifier

    taxonomy_dict, labeled, _ = generate_demo_data(seed=1, n_labeled=2000, n_unlabeled=10)
    taxonomy = Taxonomy.from_dict(taxonomy_dict)
    words = sorted({w for s in labeled["summary"] for w in s.lower().split()})[:3000]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(work / "base")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(work / "base")
    for level in LEVELS:
        model, tokenizer = build_classifier(str(work / "base"), taxonomy.labels[level], max_length=128)
        save_classifier(model, tokenizer, work / "models" / level)
    RunFolder(work / "models").write_label_encoders(taxonomy)
    return work / "models", labeled["summary"].to_numpy()
