"""The seed notebook's training recipe, kept as the baseline: a fresh classification head
(AutoModelForSequenceClassification), plain cross-entropy, lr 2e-5, 4 epochs, weight decay 0.01, fp32, batch 8,
max_length 512 with per-batch padding, evaluation and a checkpoint every epoch, best checkpoint restored at the end.
(The notebook selected on its test split; here it selects on the validation rows, which is fairer.)
``benchmarks.quality`` and ``benchmarks.speed`` run it at lr 1e-4 (their tables were measured so, as issue #3
described the recipe); ``benchmarks.peers`` runs both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from callreason.modeling import resolve_base_model

NOTEBOOK_EPOCHS = 4
NOTEBOOK_LEARNING_RATE = 2e-5


class _Rows(torch.utils.data.Dataset):
    def __init__(self, encodings: dict, labels: np.ndarray):
        self.encodings, self.labels = encodings, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.encodings.items()}, "labels": int(self.labels[i])}


def seed_recipe_probs(
    train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, level: str, n_classes: int, base: str,
    work: Path, epochs: int = NOTEBOOK_EPOCHS, learning_rate: float = NOTEBOOK_LEARNING_RATE, batch_size: int = 8,
    seed: int = 42,
) -> tuple[np.ndarray, dict]:
    """Train one level the seed's way; returns (test probabilities (n, n_classes), train metrics)."""
    path = resolve_base_model(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=n_classes)

    max_length = min(512, getattr(model.config, "max_position_embeddings", 512))  # 512, or less where the model has less

    def rows(frame: pd.DataFrame) -> _Rows:
        return _Rows(tokenizer(frame["summary"].tolist(), truncation=True, max_length=max_length),
                     frame[f"{level}_id"].to_numpy())

    def compute_metrics(prediction) -> dict:
        return {"macro_f1": f1_score(prediction.label_ids, prediction.predictions.argmax(-1), average="macro")}

    args = TrainingArguments(
        output_dir=str(work), eval_strategy="epoch", save_strategy="epoch", learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size, num_train_epochs=epochs,
        weight_decay=0.01, load_best_model_at_end=True, metric_for_best_model="macro_f1", logging_steps=50,
        report_to="none", seed=seed, use_cpu=not torch.cuda.is_available(), save_total_limit=2,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows(train), eval_dataset=rows(val),
                      processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=compute_metrics)
    result = trainer.train()
    logits = trainer.predict(rows(test)).predictions
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), result.metrics
