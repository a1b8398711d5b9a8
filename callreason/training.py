"""Fine-tuning one level's classifier with the Hugging Face Trainer.

The recipe, each step measured by ``benchmarks/quality.py``:
1. linear probe: the head starts as a logistic regression fitted on frozen pooled embeddings
   (a fresh random head at a small learning rate is what loses to TF-IDF at ~30 rows per class);
2. fine-tune encoder and head together with separate learning rates, label smoothing and optional
   per-row weights (LLM confidence, pseudo-label down-weighting);
3. evaluate macro-F1 on the validation slice every epoch, keep the best weights in memory
   (the linear probe itself counts as epoch 0), stop early after ``patience`` epochs without gain
   (the first epoch is exempt: moving off the probe often lowers the score before it raises it).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from callreason.distributed import is_main_process
from callreason.io import atomic_path
from callreason.lexical import LexicalModel, choose_blend_weight
from callreason.modeling import (
    TextClassifier,
    bottom_layers_output,
    build_classifier,
    encoder_precision,
    in_length_order,
    load_base_tokenizer,
    native_bf16,
    pad_batch,
    row_losses,
    save_classifier,
    shared_modules,
    supports_layer_cache,
    token_idf,
    tokenize,
    transformer_layers,
    window_spans,
    window_width,
)
from callreason.neighbours import NeighbourIndex
from callreason.params import LevelSettings, Settings, TrainSettings
from callreason.run_folder import write_training_record
from callreason.timing import PhaseTimer

INFERENCE_BATCH_RATIO = 4
"""Rows per inference batch inside training, per training row of a batch."""


@dataclass(frozen=True)
class FitSettings:
    """What one level's fine-tuning needs, from params.yaml (see :func:`fit_settings`): the ``train:`` section,
    the level's learning rates, the top-level ``epochs``/``seed``, and the batch size of the inference passes
    inside training (frozen-layer cache, probe features, validation scores, neighbour index)."""

    epochs: int
    seed: int
    eval_batch_size: int
    train: TrainSettings
    rates: LevelSettings


def fit_settings(settings: Settings, level: str) -> FitSettings:
    """:class:`FitSettings` for ``level``. Inference inside training runs at ``INFERENCE_BATCH_RATIO`` x
    ``train.batch_size`` (no gradients, so that fits wherever training does): training reads no ``evaluate:`` key."""
    return FitSettings(epochs=settings.epochs, seed=settings.seed,
                       eval_batch_size=INFERENCE_BATCH_RATIO * settings.train.batch_size,
                       train=settings.train, rates=settings.levels[level])


def bf16_enabled(setting: str | bool) -> bool:
    """``auto``: bf16 only where the hardware runs it natively (CUDA with bf16, CPU with AVX512-BF16/AMX).

    Measured here: on a CPU without them, bf16 autocast made MiniLM training ~20x slower than fp32.
    """
    return native_bf16() if setting == "auto" else bool(setting)


class TokenizedRows(torch.utils.data.Dataset):
    """Rows tokenized once: ``input_ids`` (unpadded), ``labels``, ``sample_weight`` and, when the
    embeddings and the first ``cached_depth`` layers were run once, their output ``cached_hidden``
    (tokens, hidden)."""

    def __init__(self, token_ids: list[list[int]], labels: np.ndarray, weights: np.ndarray | None = None,
                 cached_hidden: list[torch.Tensor] | None = None, cached_depth: int = 0, key: tuple | None = None):
        self.token_ids = token_ids
        self.labels = np.asarray(labels, dtype=np.int64)
        self.weights = np.ones(len(token_ids), np.float32) if weights is None else np.asarray(weights, np.float32)
        self.cached_hidden = cached_hidden
        self.cached_depth = cached_depth
        self.key = key  # what SharedEncodings knows these texts by (None: not shared)

    def __len__(self) -> int:
        return len(self.token_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = {"input_ids": self.token_ids[i], "labels": int(self.labels[i]), "sample_weight": float(self.weights[i])}
        if self.cached_hidden is not None:
            row["cached_hidden"], row["cached_depth"] = self.cached_hidden[i], self.cached_depth
        return row


class PadCollator:
    """Pads ``input_ids`` (and ``cached_hidden``) to a multiple of 8 and stacks labels and weights. ``window``: the
    model reads long texts in windows of that many tokens (:func:`callreason.modeling.window_width`)."""

    def __init__(self, pad_id: int, window: int | None = None):
        self.pad_id, self.window = pad_id, window

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([r["input_ids"] for r in rows], self.pad_id, window=self.window)
        if "cached_hidden" in rows[0]:  # input_ids stay: a model that weighs tokens pools by them
            windows = [row["cached_hidden"][start:stop] for row in rows
                       for start, stop in window_spans(len(row["input_ids"]), self.window)]
            batch["cached_hidden"] = pad_hidden(windows, batch["attention_mask"].shape[1])
            batch["cached_depth"] = rows[0]["cached_depth"]
        if "labels" in rows[0]:
            batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
            batch["sample_weight"] = torch.tensor([r["sample_weight"] for r in rows], dtype=torch.float32)
        return batch


def pad_hidden(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Stack (tokens, hidden) tensors into (batch, width, hidden), zero-padded."""
    out = torch.zeros((len(rows), width, rows[0].shape[1]), dtype=rows[0].dtype)
    for i, row in enumerate(rows):
        out[i, : row.shape[0]] = row
    return out


@torch.inference_mode()
def model_outputs(model: TextClassifier, rows: TokenizedRows, pad_id: int, batch_size: int,
                  output: str = "logits") -> np.ndarray:
    """Logits or pooled vectors for ``rows`` (using their cached bottom-layer outputs if present),
    run in length-sorted batches, returned in row order."""
    model.eval()
    collate = PadCollator(pad_id, window_width(model.classifier_config))
    device = next(model.parameters()).device

    def compute(index: np.ndarray) -> torch.Tensor:
        batch = collate([{k: v for k, v in rows[i].items() if k not in ("labels", "sample_weight")} for i in index])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with encoder_precision(model):
            pooled = model.pool(batch.pop("input_ids", None), **batch).float()
        return model.logits_from_pooled(pooled) if output == "logits" else pooled

    width = model.head.out_features if output == "logits" else model.head.in_features
    return in_length_order(np.array([len(ids) for ids in rows.token_ids]), batch_size, compute, width)


def pooled_logits(model: TextClassifier, pooled: np.ndarray) -> np.ndarray:
    """``model``'s logits ``(n, k)`` for pooled vectors ``pooled`` ``(n, hidden)`` (the head, and the neighbours'
    vote when the model has one)."""
    with torch.inference_mode():
        vectors = torch.from_numpy(pooled).to(model.head.weight.device)
        return model.logits_from_pooled(vectors).float().cpu().numpy()


class SharedEncodings:
    """What the levels of one run compute identically before any of them trains, computed by the first level
    that needs it and kept for the others (:func:`callreason.run.fit_levels` holds one per run): each list of
    texts' token ids and frozen-bottom outputs (:func:`cached_rows`), and its pooled vectors under the untrained
    encoder (:meth:`starting_pooled`: the linear probe's features and the starting scores). Keyed by the base
    encoder, pooling (with its token weights), max_length, frozen depth and the texts themselves, so a level whose
    inputs differ computes its own. The neighbour index and validation scores after training reuse the frozen-bottom outputs,
    so only the trained layers run again (and nothing does for a level that kept its probe)."""

    def __init__(self) -> None:
        self._encoded: dict[tuple, tuple[list[list[int]], list[torch.Tensor] | None, int]] = {}
        self._pooled: dict[tuple, np.ndarray] = {}

    @staticmethod
    def key(model: TextClassifier, texts: list[str], depth: int) -> tuple:
        """What makes two levels' encodings of ``texts`` the same: base encoder, pooling (and its token weights),
        max_length, depth."""
        config = model.classifier_config
        digest = hashlib.sha256("\x1f".join(texts).encode())
        if model.token_weights is not None:
            digest.update(model.token_weights.cpu().numpy().tobytes())
        return (model.encoder.name_or_path, config.pooling, config.normalize, config.max_length, config.max_windows,
                depth, digest.hexdigest())

    def encoded(self, key: tuple, compute) -> tuple[list[list[int]], list[torch.Tensor] | None, int]:
        """``(token_ids, frozen-bottom outputs or None, depth)`` under ``key``, from ``compute()`` the first time."""
        if key not in self._encoded:
            self._encoded[key] = compute()
        return self._encoded[key]

    def starting_pooled(self, model: TextClassifier, rows: TokenizedRows, pad_id: int, batch_size: int) -> np.ndarray:
        """Pooled vectors ``(n, hidden)`` of ``rows`` under the untrained encoder: call it before ``model`` trains."""
        if rows.key is None:
            return model_outputs(model, rows, pad_id, batch_size, output="pooled")
        if rows.key not in self._pooled:
            self._pooled[rows.key] = model_outputs(model, rows, pad_id, batch_size, output="pooled")
        return self._pooled[rows.key]


class KeepBestCallback(TrainerCallback):
    """Keeps the best weights (by ``eval_macro_f1``) in memory, restores them at the end, stops early
    after ``patience`` epochs without gain; the first fine-tuning epoch never counts as one.

    No checkpoint is written for this, unlike ``load_best_model_at_end``. When the Trainer saves a
    checkpoint (``train.resume``), the best weights so far are saved beside it (``state_dir``), so a
    resumed run restores the same best model as an uninterrupted one.
    """

    def __init__(self, model: TextClassifier, start_score: float, patience: int, state_dir: Path | None = None):
        self.model = model
        self.best_score = start_score
        self.best_epoch = 0.0
        self.best_state = copy.deepcopy(model.state_dict())
        self.patience = patience
        self.bad_epochs = 0
        self.state_dir = state_dir
        if state_dir is not None and (state_dir / "keep_best.json").exists():
            saved = json.loads((state_dir / "keep_best.json").read_text())
            self.best_score, self.best_epoch, self.bad_epochs = saved["score"], saved["epoch"], saved["bad_epochs"]
            self.best_state = load_file(str(state_dir / "keep_best.safetensors"))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        score = metrics["eval_macro_f1"]
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, state.epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            if score >= 1.0:  # nothing left to gain on the validation slice
                control.should_training_stop = True
        elif round(state.epoch) > 1:  # leaving the linear probe often dips first: not a bad epoch
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if self.state_dir is None:
            return
        save_file({k: v.contiguous() for k, v in self.best_state.items()}, str(self.state_dir / "keep_best.safetensors"))
        (self.state_dir / "keep_best.json").write_text(json.dumps(
            {"score": self.best_score, "epoch": self.best_epoch, "bad_epochs": self.bad_epochs}))

    def on_train_end(self, args, state, control, **kwargs):
        self.model.load_state_dict(self.best_state)


def run_fingerprint(model: TextClassifier, settings: FitSettings, train_set: "TokenizedRows",
                    val_set: "TokenizedRows") -> str:
    """SHA-256 of what determines a training run: settings, classifier config, tokens, labels, weights."""
    digest = hashlib.sha256(json.dumps([dataclasses.asdict(settings), vars(model.classifier_config)], sort_keys=True,
                                       default=str).encode())
    for rows in (train_set, val_set):
        digest.update(json.dumps(rows.token_ids).encode())
        digest.update(rows.labels.tobytes())
        digest.update(rows.weights.tobytes())
    return digest.hexdigest()


def resumable_checkpoint(work_dir: Path, fingerprint: str) -> str | None:
    """The last Trainer checkpoint in ``work_dir`` if it belongs to this exact run, else None.

    A ``work_dir`` left by a different run (other data or settings) is cleared first.
    """
    marker = work_dir / "run.json"
    if work_dir.exists() and (not marker.exists() or json.loads(marker.read_text())["fingerprint"] != fingerprint):
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": fingerprint}))
    return get_last_checkpoint(str(work_dir))


def fit_linear_probe(model: TextClassifier, features: np.ndarray, labels: np.ndarray, c: float, seed: int,
                     sample_weight: np.ndarray | None = None) -> None:
    """Initialise ``model.head`` from a logistic regression on frozen pooled embeddings ``features``
    (n, hidden). Classes absent from ``labels`` get zero weights and a bias below every present class.
    """
    probe = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, labels, sample_weight=sample_weight)
    n_classes = model.head.out_features
    weight = np.zeros((n_classes, features.shape[1]), np.float32)
    bias = np.zeros(n_classes, np.float32)
    if len(probe.classes_) == 2:  # sklearn's binary case has one row of coefficients
        coef = np.vstack([-probe.coef_[0] / 2, probe.coef_[0] / 2])
        intercept = np.array([-probe.intercept_[0] / 2, probe.intercept_[0] / 2])
    else:
        coef, intercept = probe.coef_, probe.intercept_
    weight[probe.classes_] = coef
    bias[:] = intercept.min() - 10.0
    bias[probe.classes_] = intercept
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))


def freeze_bottom_layers(model: TextClassifier, n_layers: int) -> None:
    """Freeze the embeddings (and the relative-position parts every layer reads, see
    :func:`callreason.modeling.shared_modules`) and the first ``n_layers`` transformer layers (0 = train all)."""
    if n_layers <= 0:
        return
    encoder = model.encoder
    for p in (p for module in shared_modules(encoder) for p in module.parameters()):
        p.requires_grad = False
    for layer in transformer_layers(encoder)[:n_layers]:
        for p in layer.parameters():
            p.requires_grad = False


def make_optimizer(model: TextClassifier, settings: FitSettings) -> torch.optim.Optimizer:
    """AdamW with the encoder at ``encoder_lr`` and the head at ``head_lr``; no decay on biases/norms."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = settings.rates.head_lr if name.startswith("head.") else settings.rates.encoder_lr
        decay = 0.0 if (p.ndim == 1 or "LayerNorm" in name or "layernorm" in name) else settings.train.weight_decay
        groups.setdefault((lr, decay), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])


class FixedSchedule(TrainerCallback):
    """Keeps the weights of the last epoch: nothing is chosen on validation rows.

    ``stop_after`` ends training after that many epochs while the learning-rate schedule still spans
    ``epochs``: a refit on every row replays the held-out run's best epoch on the same trajectory.
    """

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.last_score: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.last_score = metrics["eval_macro_f1"]

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stop_after is not None and round(state.epoch) >= self.stop_after:
            control.should_training_stop = True


class EpochCurves(TrainerCallback):
    """Per-epoch training curves: training loss and validation macro-F1, with the linear probe as epoch 0.

    Rows ``{"epoch", "train_loss", "val_macro_f1"}`` accumulate in :attr:`rows`; with a DVCLive ``live``
    each value is also logged at step = epoch as it arrives (``plots/metrics/train_loss.tsv``,
    ``plots/metrics/val_macro_f1.tsv``).
    """

    def __init__(self, probe_train_loss: float, probe_val_f1: float | None, live: Any = None):
        self.rows: list[dict[str, Any]] = []
        self.live = live
        self.record(0, "train_loss", probe_train_loss)
        self.record(0, "val_macro_f1", probe_val_f1)

    def record(self, epoch: float, name: str, value: float | None) -> None:
        epoch = int(round(epoch))
        if not self.rows or self.rows[-1]["epoch"] != epoch:
            self.rows.append({"epoch": epoch, "train_loss": None, "val_macro_f1": None})
        self.rows[-1][name] = None if value is None else round(float(value), 6)
        if self.live is not None and value is not None:
            self.live.step = epoch
            self.live.log_metric(name, round(float(value), 6))
            self.live.make_summary()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.epoch is not None:
            self.record(state.epoch, "train_loss", logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.record(state.epoch, "val_macro_f1", metrics["eval_macro_f1"])


def cached_rows(model: TextClassifier, tokenizer: PreTrainedTokenizerBase, texts: list[str], labels: np.ndarray,
                settings: FitSettings, sample_weight: np.ndarray | None = None,
                timer: PhaseTimer | None = None, shared: SharedEncodings | None = None) -> TokenizedRows:
    """``texts`` tokenized once; with frozen bottom layers (``settings.train.frozen_layers``) on an encoder that
    supports it, their output is computed once here and training runs only the layers above. With ``shared``,
    another level of the run that encoded the same texts already did both. ``timer`` records the phases
    ``tokenize`` and ``frozen_bottom``."""
    timer = timer or PhaseTimer()
    frozen = min(settings.train.frozen_layers, len(transformer_layers(model.encoder)))
    depth = frozen if frozen > 0 and supports_layer_cache(model.encoder) else 0

    def compute() -> tuple[list[list[int]], list[torch.Tensor] | None, int]:
        with timer.phase("tokenize"):
            token_ids = tokenize(tokenizer, texts, model.classifier_config.max_length, model.classifier_config.max_windows)
        if depth and token_ids:
            with timer.phase("frozen_bottom"):
                return token_ids, bottom_layers_output(model, tokenizer, token_ids, depth, settings.eval_batch_size), depth
        return token_ids, None, 0

    key = None if shared is None else SharedEncodings.key(model, texts, depth)
    token_ids, hidden, depth = compute() if shared is None else shared.encoded(key, compute)
    return TokenizedRows(token_ids, labels, sample_weight, hidden, depth, key=key)


@torch.inference_mode()
def training_loss(model: TextClassifier, rows: TokenizedRows, pad_id: int, batch_size: int,
                  logits: np.ndarray | None = None) -> float:
    """The model's (weighted) mean training loss on ``rows``, as the Trainer computes it (from ``logits``, the
    model's on ``rows``, when given)."""
    logits = torch.from_numpy(model_outputs(model, rows, pad_id, batch_size) if logits is None else logits)
    if model.loss_offsets is not None:
        logits = logits + model.loss_offsets
    losses = row_losses(logits, torch.tensor(rows.labels), model.loss, model.label_smoothing)
    weights = torch.tensor(rows.weights)
    return float((losses * weights).sum() / weights.sum().clamp(min=1e-9))


def macro_f1_of(model: TextClassifier, rows: TokenizedRows, pad_id: int, batch_size: int,
                logits: np.ndarray | None = None) -> float:
    """Macro-F1 of ``model``'s argmax on ``rows`` (of ``logits``, the model's on ``rows``, when given); -1.0 when
    there are none."""
    if not len(rows):
        return -1.0
    logits = model_outputs(model, rows, pad_id, batch_size) if logits is None else logits
    return float(f1_score(rows.labels, logits.argmax(1), average="macro"))


def training_arguments(settings: FitSettings, work_dir: Path, evaluate: bool) -> TrainingArguments:
    """Trainer arguments: one pass per epoch over length-grouped batches, no checkpoints unless ``resume``."""
    return TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.train.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        warmup_steps=settings.train.warmup_ratio,
        lr_scheduler_type="linear",
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="epoch" if settings.train.resume else "no",
        save_total_limit=1,
        logging_strategy="epoch",
        report_to="none",
        bf16=bf16_enabled(settings.train.bf16),
        tf32=torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8,
        use_cpu=not torch.cuda.is_available(),
        seed=settings.seed,
        data_seed=settings.seed,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def compute_macro_f1(prediction) -> dict[str, float]:
    """The Trainer's ``compute_metrics``: validation macro-F1 of the argmax."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"macro_f1": float(f1_score(prediction.label_ids, logits.argmax(-1), average="macro"))}


def train_classifier(
    model: TextClassifier,
    tokenizer: PreTrainedTokenizerBase,
    train_texts: list[str],
    train_labels: np.ndarray,
    val_texts: list[str],
    val_labels: np.ndarray,
    settings: FitSettings,
    work_dir: Path,
    sample_weight: np.ndarray | None = None,
    callbacks: list[TrainerCallback] | None = None,
    stop_after_epoch: int | None = None,
    live: Any = None,
    probe_weight: np.ndarray | None = None,
    logit_adjustment: np.ndarray | None = None,
    timer: PhaseTimer | None = None,
    shared: SharedEncodings | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` in place; returns a summary (best epoch, validation macro-F1, timings).

    ``train_labels``/``val_labels`` are class ids into ``model.classifier_config.labels``. Steps: tokenize
    (and cache the frozen bottom layers), fit the linear probe, fine-tune. With validation rows and
    ``settings.train.early_stopping`` the best epoch is kept (the probe counts as epoch 0); otherwise the last.
    ``stop_after_epoch`` (a refit, no validation rows) stops after that many epochs of the ``epochs``-long
    schedule; 0 keeps the linear probe. ``work_dir`` is Trainer scratch: with ``settings.train.resume`` a
    checkpoint is written there every epoch and a rerun of the same run continues from the last one.
    The per-epoch curves (:class:`EpochCurves`, also logged to the DVCLive ``live`` if given) are in the
    summary under ``curve``. ``probe_weight``: row weights of the linear probe (default ``sample_weight``);
    ``logit_adjustment``: ``(k,)`` added to the logits in the training loss only (see :func:`class_balance`).
    ``timer`` records the phases ``tokenize``, ``frozen_bottom``, ``probe`` (its features and fit, the
    starting validation score and training loss) and ``fine_tune`` (the epochs with their validation passes).
    ``shared``: what the other levels of the run already encoded (:class:`SharedEncodings`); ``model`` must then
    be untrained, fresh from the base encoder.
    """
    torch.manual_seed(settings.seed)
    timer = timer or PhaseTimer()
    shared = shared or SharedEncodings()
    train_set = cached_rows(model, tokenizer, train_texts, train_labels, settings, sample_weight, timer, shared)
    val_set = cached_rows(model, tokenizer, val_texts, val_labels, settings, timer=timer, shared=shared)
    n_layers = len(transformer_layers(model.encoder))
    pad_id = tokenizer.pad_token_id
    with timer.phase("probe"):
        train_pooled = shared.starting_pooled(model, train_set, pad_id, settings.eval_batch_size)
        if settings.train.linear_probe:
            fit_linear_probe(model, train_pooled, train_labels, settings.train.probe_c, settings.seed,
                             sample_weight if probe_weight is None else probe_weight)
        if logit_adjustment is not None:
            model.loss_offsets = torch.tensor(logit_adjustment, dtype=torch.float32)
        val_logits = (pooled_logits(model, shared.starting_pooled(model, val_set, pad_id, settings.eval_batch_size))
                      if len(val_set) else None)
        start_f1 = macro_f1_of(model, val_set, pad_id, settings.eval_batch_size, val_logits)
        probe_f1 = start_f1 if len(val_set) else None
        curves = EpochCurves(training_loss(model, train_set, pad_id, settings.eval_batch_size,
                                           pooled_logits(model, train_pooled)), probe_f1, live)
    summary = {"linear_probe_val_macro_f1": probe_f1, "best_val_macro_f1": probe_f1, "best_epoch": 0.0,
               "epochs_run": 0.0, "train_seconds": 0.0, "train_samples_per_second": math.nan,
               "bf16": bf16_enabled(settings.train.bf16), "curve": curves.rows}
    if stop_after_epoch == 0:
        model.eval()
        return summary
    checkpoint = None
    if settings.train.resume:
        checkpoint = resumable_checkpoint(work_dir, run_fingerprint(model, settings, train_set, val_set))
        if checkpoint:
            print(f"resuming from {checkpoint}", flush=True)
    freeze_bottom_layers(model, min(settings.train.frozen_layers, n_layers))
    if len(val_set) and settings.train.early_stopping and stop_after_epoch is None:
        selection: TrainerCallback = KeepBestCallback(model, start_f1, settings.train.patience,
                                                      state_dir=work_dir if settings.train.resume else None)
    else:
        selection = FixedSchedule(stop_after_epoch)
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, work_dir, evaluate=bool(len(val_set))),
        data_collator=PadCollator(pad_id, window_width(model.classifier_config)),
        train_dataset=train_set,
        eval_dataset=val_set if len(val_set) else None,
        processing_class=tokenizer,
        compute_metrics=compute_macro_f1,
        optimizers=(make_optimizer(model, settings), None),
        callbacks=[selection, curves, *(callbacks or [])],
    )
    with timer.phase("fine_tune"):
        result = trainer.train(resume_from_checkpoint=checkpoint)
    model.loss_offsets = None
    for p in model.parameters():
        p.requires_grad = True
    model.eval()
    if isinstance(selection, KeepBestCallback):
        summary.update(best_val_macro_f1=selection.best_score, best_epoch=selection.best_epoch)
    else:
        summary.update(best_val_macro_f1=selection.last_score, best_epoch=trainer.state.epoch)
    summary.update(epochs_run=trainer.state.epoch, train_seconds=result.metrics.get("train_runtime", math.nan),
                   train_samples_per_second=result.metrics.get("train_samples_per_second", math.nan))
    return summary


def token_limit(tokenizer: PreTrainedTokenizerBase) -> int:
    """The most tokens a text is read at once: the tokenizer's own limit, at most 512."""
    return min(512, tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else 512)


def token_lengths(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[int]:
    """Tokens per text, special tokens included, nothing cut."""
    return [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]


def rounded_p99(lengths: list[int], cap: int) -> int:
    """The 99th percentile of ``lengths`` rounded up to a multiple of 8, at least 16, at most ``cap``."""
    p99 = int(np.percentile(lengths, 99)) if lengths else cap
    return int(min(cap, max(16, -(-p99 // 8) * 8)))


def choose_max_length(tokenizer: PreTrainedTokenizerBase, texts: list[str], setting: int | str) -> int:
    """``auto``: the 99th percentile of token lengths rounded up to a multiple of 8, capped at 512."""
    if setting != "auto":
        return min(int(setting), token_limit(tokenizer))
    return rounded_p99(token_lengths(tokenizer, texts), token_limit(tokenizer))


WINDOW_TOKENS = 256
"""``model.max_windows: auto`` with ``max_length: auto`` reads texts longer than this in windows of this many
tokens: what all-MiniLM-L6-v2 reads by default (its sentence-transformers ``max_seq_length``); on the long demo
256-token windows gave its encoder a better validation macro-F1 than one 512-token pass (benchmarks/README.md,
Long summaries)."""
MAX_AUTO_WINDOWS = 8
"""The most windows ``model.max_windows: auto`` reads of one text."""


def choose_reading(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int | str,
                   max_windows: int | str) -> tuple[int, int]:
    """``(max_length, max_windows)`` for a held-out run on ``texts``. A number of windows: ``max_length`` as
    :func:`choose_max_length` picks it. ``auto``: where the 99th-percentile text fits in one window (``max_length``
    tokens; for ``auto`` :data:`WINDOW_TOKENS`), one window (so short texts get ``max_length: auto``'s length, as
    with ``max_windows: 1``); else windows of that width, as many as that text needs, at most
    :data:`MAX_AUTO_WINDOWS`."""
    if max_windows != "auto":
        return choose_max_length(tokenizer, texts, max_length), int(max_windows)
    limit = token_limit(tokenizer)
    window = min(limit, WINDOW_TOKENS if max_length == "auto" else int(max_length))
    lengths = token_lengths(tokenizer, texts)
    p99 = int(np.percentile(lengths, 99)) if lengths else 0
    if p99 <= window:
        return (rounded_p99(lengths, limit) if max_length == "auto" else window), 1
    return window, min(MAX_AUTO_WINDOWS, -(-p99 // window))


def class_balance(labels: np.ndarray, n_classes: int, mode: str, sample_weight: np.ndarray | None
                  ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Row weights of the fine-tuning loss, row weights of the convex models (linear probe, TF-IDF companion)
    and the loss's logit adjustment, for ``train.class_balance``:

    * ``none``: ``sample_weight`` everywhere, no adjustment;
    * ``reweight``: each row also weighted by ``n / (k_present * rows of its class)`` (class-balanced loss),
      normalised to mean 1, everywhere;
    * ``logit_adjust``: the convex models reweighted as above; the fine-tuning loss keeps ``sample_weight``
      and adds ``log prior(class)`` to the logits (Menon et al. 2021), so the model learns balanced scores
      without the noisy gradients of large weights. ``labels``: class ids ``(n,)``.
    """
    if mode == "none":
        return sample_weight, sample_weight, None
    base = np.ones(len(labels), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    per_class = np.divide(len(labels), (counts > 0).sum() * counts, out=np.zeros(n_classes), where=counts > 0)
    balanced = (base * per_class[labels]).astype(np.float32)
    balanced *= len(balanced) / balanced.sum()
    if mode == "reweight":
        return balanced, balanced, None
    prior = np.where(counts > 0, counts / counts.sum(), 1.0 / max(len(labels), 1))
    return sample_weight, balanced, np.log(prior).astype(np.float32)


def attach_lexical_model(model: TextClassifier, train_rows: pd.DataFrame, val_rows: pd.DataFrame, level: str,
                         sample_weight: np.ndarray | None = None, weight: float | None = None,
                         val_logits: np.ndarray | None = None) -> float:
    """Fit the TF-IDF companion on ``train_rows`` and attach it with blend ``weight`` (when None, chosen by
    log-loss on ``val_rows``, whose transformer logits are ``val_logits``). Returns the weight."""
    lexical = LexicalModel.fit(train_rows["summary"].tolist(), train_rows[f"{level}_id"].to_numpy(),
                               model.head.out_features, sample_weight=sample_weight)
    if weight is None:
        weight = choose_blend_weight(val_logits, lexical.log_proba(val_rows["summary"].tolist()),
                                     val_rows[f"{level}_id"].to_numpy())
    model.lexical = lexical if weight > 0 else None
    model.classifier_config.lexical_weight = weight
    return weight


def attach_neighbours(model: TextClassifier, pooled: np.ndarray, labels: np.ndarray, weight: float) -> None:
    """Index the trained encoder's pooled vectors ``pooled`` ``(n, hidden)`` of the training rows, whose class ids
    are ``labels`` (the nearest-neighbour companion, :mod:`callreason.neighbours`), and give its vote ``weight``
    in the model's logits."""
    index = NeighbourIndex(torch.from_numpy(pooled), torch.tensor(labels), model.head.out_features)
    model.neighbours = index.to(next(model.parameters()).device)
    model.classifier_config.knn_weight = weight


def fit_level(
    level: str,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    labels: list[str],
    settings: Settings,
    model_dir: Path,
    live_dir: Path | None,
    work_dir: Path,
    sample_weight: np.ndarray | None = None,
    replay: dict[str, Any] | None = None,
    shared: SharedEncodings | None = None,
) -> dict[str, Any]:
    """Train ``level``'s classifier on ``train_rows`` (columns ``summary``, ``{level}_id``) and save it.

    Held-out run (``replay`` None): ``val_rows`` choose the epoch (``train.early_stopping``) and the
    TF-IDF blend weight. Refit (``replay``: the ``training.json`` record of a held-out run's model, and
    ``val_rows`` empty): no choice is made, the held-out run's are replayed (its max_length, its best epoch
    inside the same schedule, its blend weight). Retrain (``replay`` and ``val_rows``): max_length and epochs
    are replayed, ``val_rows`` choose the blend weight. The folder is written to a temporary sibling and moved
    into place when complete, so an interrupted run leaves the previous model intact. Returns the training
    summary (also saved in the folder as ``training.json``), with ``seconds`` per phase: ``load``, those of
    :func:`train_classifier`, ``companions`` (neighbour index and TF-IDF companion) and ``save``. ``shared``:
    the run's :class:`SharedEncodings`, so levels trained on the same rows encode them once.
    """
    from dvclive import Live

    fit = fit_settings(settings, level)
    if settings.train.confidence_weighting and sample_weight is None:
        sample_weight = train_rows["confidence"].to_numpy(np.float32)
    loss_weight, convex_weight, adjustment = class_balance(
        train_rows[f"{level}_id"].to_numpy(), len(labels), fit.train.class_balance, sample_weight)
    model_settings = settings.model
    timer = PhaseTimer()
    with timer.phase("load"):
        if replay is None:
            tokenizer = load_base_tokenizer(model_settings.base, model_settings.revision)
            max_length, max_windows = choose_reading(tokenizer, train_rows["summary"].tolist(),
                                                     model_settings.max_length, model_settings.max_windows)
        else:
            max_length, max_windows = replay["max_length"], replay.get("max_windows", 1)
        model, tokenizer = build_classifier(
            model_settings.base, labels, pooling=model_settings.pooling, max_length=max_length,
            revision=model_settings.revision, label_smoothing=fit.train.label_smoothing, level=level,
            loss=fit.train.loss, max_windows=max_windows, token_weighting=model_settings.token_weighting,
        )
        model.classifier_config.bf16 = bf16_enabled(fit.train.bf16)  # its passes without gradients too
        if model.classifier_config.token_weighting == "idf":
            token_ids = tokenize(tokenizer, train_rows["summary"].tolist(), max_length, max_windows)
            model.token_weights = token_idf(token_ids, model.encoder.get_input_embeddings().num_embeddings)
    depth = len(transformer_layers(model.encoder))
    if fit.train.frozen_layers > depth:
        print(f"{level}: train.frozen_layers {fit.train.frozen_layers} > the {depth} layers of {model_settings.base}: "
              f"freezing all {depth} (the head and the pooling train)", flush=True)
        fit = dataclasses.replace(fit, train=dataclasses.replace(fit.train, frozen_layers=depth))
    live = None
    if is_main_process() and live_dir is not None:
        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    shared = shared or SharedEncodings()
    train_texts, train_ids = train_rows["summary"].tolist(), train_rows[f"{level}_id"].to_numpy()
    val_texts, val_ids = val_rows["summary"].tolist(), val_rows[f"{level}_id"].to_numpy()
    summary = train_classifier(
        model, tokenizer, train_texts, train_ids, val_texts, val_ids,
        fit, work_dir, sample_weight=loss_weight, live=live, probe_weight=convex_weight, logit_adjustment=adjustment,
        stop_after_epoch=None if replay is None else int(round(replay["best_epoch"])), timer=timer, shared=shared,
    )
    def trained_pooled(texts: list[str], ids: np.ndarray) -> np.ndarray:
        """The trained model's pooled vectors of ``texts``: its starting ones when it kept the probe (the encoder
        is as it started), else the trained layers over the cached bottom."""
        rows = cached_rows(model, tokenizer, texts, ids, fit, shared=shared)
        if summary["best_epoch"] == 0:
            return shared.starting_pooled(model, rows, tokenizer.pad_token_id, fit.eval_batch_size)
        return model_outputs(model, rows, tokenizer.pad_token_id, fit.eval_batch_size, output="pooled")

    with timer.phase("companions"):
        if fit.train.knn_weight > 0:
            attach_neighbours(model, trained_pooled(train_texts, train_ids), train_ids, fit.train.knn_weight)
        if settings.train.lexical_blend:
            weight = None if replay is None or len(val_rows) else replay.get("lexical_weight", 0.0)
            val_logits = None if weight is not None else pooled_logits(model, trained_pooled(val_texts, val_ids))
            summary["lexical_weight"] = attach_lexical_model(model, train_rows, val_rows, level, convex_weight, weight,
                                                             val_logits)
    class_ids = np.bincount(train_rows[f"{level}_id"].to_numpy(), minlength=len(labels))
    summary.update({"level": level, "train_rows": len(train_rows), "val_rows": len(val_rows),
                    "class_rows": {label: int(n) for label, n in zip(labels, class_ids) if n},
                    "knn_weight": fit.train.knn_weight,
                    "max_length": max_length, "max_windows": model.classifier_config.max_windows,
                    "token_weighting": model.classifier_config.token_weighting,
                    "classes": len(labels), "frozen_layers": fit.train.frozen_layers,
                    "replayed": replay is not None})
    if is_main_process():
        with timer.phase("save"), atomic_path(model_dir) as tmp:
            save_classifier(model, tokenizer, tmp)
            write_training_record(tmp, {**summary, "seconds": timer.rounded()})
        shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints are scratch once the model is saved
    return {**summary, "seconds": timer.rounded()}
