"""Domain-adaptive pretraining (the lever #11 leaves last): does adapting the encoder to the user's summaries
before fine-tuning raise level_3?

    python -m benchmarks.adaptation --datasets banking77-clean --draws 3      # ~3 min a draw here

The embedded encoder is a sentence-transformers model with no masked-language-model head, so the adaptation is
unsupervised SimCSE (Gao et al., 2021): each summary is encoded twice with dropout on, and the two views of a
summary must find each other among the batch (in-batch negatives, cosine / temperature). It sees only text the
user has: every summary of the labeled file (labels unused) and the unlabeled pool; never the gold rows that
score. For each draw of ``benchmarks.noisy``: the level_3 pipeline (held-out run, then the refit on every row)
with ``model.base`` as in params.yaml and with the adapted copy, scored on the external gold rows. One JSON
line per draw in ``--out``; a summary is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from benchmarks.common import ROOT, append_jsonl
from benchmarks.noisy import DATASETS, make_case, run_pipeline
from callreason.io import load_params
from callreason.modeling import resolve_base_model
from callreason.params import settings_from_params

LEVEL = "level_3"
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def simcse_loss(encoder, tokenizer, texts: list[str], temperature: float = 0.05, max_length: int = 128) -> torch.Tensor:
    """In-batch contrastive loss of two dropout views of each text (dropout must be on: ``encoder.train()``)."""
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    views = [F.normalize(mean_pool(encoder(**tokens).last_hidden_state, tokens["attention_mask"]), dim=-1)
             for _ in range(2)]
    return F.cross_entropy(views[0] @ views[1].T / temperature, torch.arange(len(texts)))


def simcse_adapt(texts: list[str], base_path: str, out: Path, epochs: int = 1, lr: float = 3e-5,
                 batch_size: int = 64, temperature: float = 0.05, max_length: int = 128, seed: int = 42) -> Path:
    """Unsupervised SimCSE on ``texts`` from the encoder at ``base_path``; the adapted encoder, its tokenizer and
    the sentence-transformers files (so pooling stays ``mean``) are written to ``out``."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    encoder = AutoModel.from_pretrained(base_path)
    encoder.train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    unique = sorted(set(texts))
    for _ in range(epochs):
        order = rng.permutation(len(unique))
        for start in range(0, len(order) - 1, batch_size):
            batch = [unique[i] for i in order[start:start + batch_size]]
            if len(batch) < 2:
                continue
            loss = simcse_loss(encoder, tokenizer, batch, temperature, max_length)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    encoder.eval()
    out.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (Path(base_path) / name).exists():
            shutil.copy(Path(base_path) / name, out / name)
    if (Path(base_path) / "1_Pooling").is_dir():
        shutil.copytree(Path(base_path) / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["banking77-clean"], choices=DATASETS)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--first-draw", type=int, default=0)
    parser.add_argument("--epochs", nargs="+", type=int, default=[1], help="SimCSE epochs; one adapted run each")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "noisy" / "adaptation.jsonl")
    args = parser.parse_args()
    settings = settings_from_params(load_params(ROOT / "params.yaml"))
    base_path = resolve_base_model(settings.model.base)
    results = []
    for name in args.datasets:
        for draw in range(args.first_draw, args.first_draw + args.draws):
            case = make_case(name, draw)
            texts = case.labeled["summary"].tolist() + case.pool["summary"].tolist()
            result = {"dataset": name, "draw": draw, "texts": len(set(texts)), "lr": args.lr}
            with tempfile.TemporaryDirectory() as work:
                run = run_pipeline(case, settings, Path(work) / "base", (LEVEL,))
                result["base"] = run["final"][LEVEL]["macro_f1"]
                for epochs in args.epochs:
                    start = time.perf_counter()
                    adapted = simcse_adapt(texts, base_path, Path(work) / f"adapted{epochs}", epochs=epochs, lr=args.lr,
                                           seed=settings.seed)
                    result[f"adapt_seconds_{epochs}"] = round(time.perf_counter() - start, 1)
                    adapted_settings = dataclasses.replace(
                        settings, model=dataclasses.replace(settings.model, base=str(adapted)))
                    run = run_pipeline(case, adapted_settings, Path(work) / f"run{epochs}", (LEVEL,))
                    result[f"adapted_{epochs}"] = run["final"][LEVEL]["macro_f1"]
            results.append(result)
            print(json.dumps(result), flush=True)
            append_jsonl(args.out, result)
    for name in args.datasets:
        rows = [r for r in results if r["dataset"] == name]
        line = f"{name}: base {np.mean([r['base'] for r in rows]):.4f}"
        for epochs in args.epochs:
            gains = [r[f"adapted_{epochs}"] - r["base"] for r in rows]
            line += (f"; SimCSE {epochs} epoch(s) {np.mean([r[f'adapted_{epochs}'] for r in rows]):.4f} "
                     f"(per draw {' / '.join(f'{g:+.4f}' for g in gains)})")
        print(line)


if __name__ == "__main__":
    main()
