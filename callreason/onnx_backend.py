"""ONNX export of a run folder, and the ONNX Runtime backend of ``predict`` (a fast CPU path).

``callreason export --format onnx --models models/final --output models/final-onnx [--int8]`` writes a
complete run folder whose level models are ONNX graphs (``level_N/model.onnx``: the fine-tuned encoder, its
pooling and the head; outputs the head's logits and the pooled vector). Everything else is copied as it is:
tokenizer, ``classifier.json``, the TF-IDF and neighbour companions (run in NumPy/PyTorch as before), label
encoders, temperatures, metadata and the model card. ``--int8`` quantizes the weights of the matrix products
dynamically (ONNX Runtime ``quantize_dynamic``). ``callreason predict --models models/final-onnx`` then runs
ONNX Runtime instead of PyTorch, with the same checks, chunking and output.

``onnx`` and ``onnxruntime`` are an optional extra (``pip install -e .[onnx]``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from callreason.errors import InputError
from callreason.io import atomic_path, check_outputs
from callreason.modeling import (
    ClassifierConfig,
    TextClassifier,
    in_length_order,
    load_classifier,
    pad_batch,
    tokenize,
)
from callreason.neighbours import blend_neighbours
from callreason.predict import HierarchicalPredictor
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

ONNX_FILE = "model.onnx"
FORMAT = "onnx"
WEIGHT_FILES = ("model.safetensors", "head.safetensors")
"""The PyTorch weights an export leaves out (the ONNX graph holds them)."""
OPSET = 17
INSTALL_HINT = "install the ONNX extra: pip install -e .[onnx] (onnx, onnxruntime)"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"onnxruntime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


class LogitsAndPooled(nn.Module):
    """What the ONNX graph computes: the head's logits and the pooled vector for padded token ids."""

    def __init__(self, model: TextClassifier):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.model.pool(input_ids, attention_mask)
        return self.model.head(pooled), pooled


def is_onnx_folder(folder: Path) -> bool:
    """Whether ``folder`` is an ONNX export (its ``metadata.json`` says ``"format": "onnx"``)."""
    run = RunFolder(folder)
    return run.metadata_path.exists() and run.read_metadata().get("format") == FORMAT


def export_level(model: TextClassifier, target: Path, int8: bool) -> None:
    """``model`` as ``target`` (an ONNX file with dynamic batch and sequence axes); ``int8``: dynamically
    quantized weights."""
    import warnings

    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0, 0], [101, 7592, 102, 0, 0, 0, 0, 0]])
    ids = ids.clamp(max=model.encoder.config.vocab_size - 1)
    mask = (torch.arange(ids.shape[1])[None, :] < torch.tensor([[6], [3]])).long()
    plain = target.with_suffix(".fp32.onnx") if int8 else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes cover
        torch.onnx.export(LogitsAndPooled(model).eval(), (ids, mask), str(plain),
                          input_names=["input_ids", "attention_mask"], output_names=["logits", "pooled"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                        "logits": {0: "batch"}, "pooled": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8)
        plain.unlink()


def export_run(models: Path, output: Path, int8: bool = False) -> dict[str, Any]:
    """Export the run folder ``models`` to ``output`` (see the module docstring); ``output`` is replaced only
    when complete, and only if it is missing or an earlier ONNX export. Returns what was written."""
    models, output = Path(models), Path(output)
    run = RunFolder(models)
    run.check_exists()
    if is_onnx_folder(models):
        raise InputError(f"{models}: is already an ONNX export; give the PyTorch run folder, e.g. models/final")
    check_outputs({output: "folder"}, [models], clash_fix="export to a folder outside the run folder")
    if output.is_dir() and any(output.iterdir()) and not is_onnx_folder(output):
        raise InputError(f"{output}: --output is an existing folder that is not an ONNX export; give a new folder "
                         "path (nothing was written)")
    _onnxruntime()
    sizes = {}
    with atomic_path(output) as tmp:
        shutil.copytree(models, tmp, ignore=shutil.ignore_patterns(*WEIGHT_FILES, ".gitignore"))
        for level in LEVELS:
            model, _ = load_classifier(run.level(level))
            export_level(model, tmp / level / ONNX_FILE, int8)
            sizes[level] = (tmp / level / ONNX_FILE).stat().st_size
        metadata = run.read_metadata()
        RunFolder(tmp).write_metadata({**metadata, "format": FORMAT, "exported_from": str(models),
                                       "onnx": {"opset": OPSET, "quantization": "int8 dynamic" if int8 else "none"}})
        card = RunFolder(tmp).model_card_path
        if card.exists():
            note = (f"\n> ONNX export of `{models}` ({'int8 dynamic quantization' if int8 else 'float32'}): predict with "
                    f"`callreason predict --models {output} --input new_calls.parquet --output predictions.parquet`.\n")
            text = card.read_text(encoding="utf-8")
            head, _, body = text.partition("\n---\n")
            card.write_text(f"{head}\n---\n{note}{body}", encoding="utf-8")
    return {"levels": sizes, "int8": int8}


class OnnxClassifier:
    """One level's exported model: an ONNX Runtime session over the encoder and head, with the level's
    ``classifier_config`` and companions (``lexical``, ``neighbours``) as :class:`TextClassifier` has them."""

    def __init__(self, folder: Path, threads: int | None = None):
        from transformers import AutoTokenizer

        from callreason.io import read_json
        from callreason.lexical import LexicalModel
        from callreason.modeling import loading
        from callreason.neighbours import FILE as NEIGHBOURS_FILE
        from callreason.neighbours import NeighbourIndex
        from callreason.run_folder import DAMAGED

        ort = _onnxruntime()
        folder = Path(folder)
        if not (folder / ONNX_FILE).exists():
            raise InputError(f"{folder}: no {ONNX_FILE}; {DAMAGED}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        with loading(str(folder), DAMAGED):
            self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
            self.classifier_config = ClassifierConfig(**read_json(folder / "classifier.json", "classifier config",
                                                                  DAMAGED))
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.lexical = LexicalModel.load(folder) if (folder / "lexical.json").exists() else None
            self.neighbours = (NeighbourIndex.load(folder, len(self.classifier_config.labels))
                               if (folder / NEIGHBOURS_FILE).exists() else None)

    def transformer_logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """The logits :func:`callreason.modeling.run_batched` gives (head + neighbour vote), ``(n, k)``."""
        token_ids = tokenize(self.tokenizer, texts, self.classifier_config.max_length)
        config = self.classifier_config

        def compute(index: np.ndarray) -> torch.Tensor:
            batch = pad_batch([token_ids[i] for i in index], self.tokenizer.pad_token_id)
            logits, pooled = self.session.run(None, {"input_ids": batch["input_ids"].numpy(),
                                                     "attention_mask": batch["attention_mask"].numpy()})
            return blend_neighbours(torch.from_numpy(logits), torch.from_numpy(pooled), self.neighbours,
                                    config.knn_weight)

        return in_length_order(np.array([len(t) for t in token_ids]), batch_size, compute, len(config.labels))


class OnnxPredictor(HierarchicalPredictor):
    """:class:`HierarchicalPredictor` over an ONNX export: each level runs its own graph (no shared bottom)."""

    def __post_init__(self):
        self.shared_depth = 0

    @classmethod
    def load(cls, models_dir: str | Path, batch_size: int = 64, calibrated: bool = True,
             taxonomy: Taxonomy | None = None) -> "OnnxPredictor":
        """Load an ONNX export (see :func:`export_run`): its level sessions, taxonomy and temperatures."""
        run = RunFolder(models_dir)
        taxonomy = taxonomy or run.read_taxonomy()
        models = [OnnxClassifier(run.level(level)) for level in LEVELS]
        for level, model in zip(LEVELS, models):
            if model.classifier_config.labels != taxonomy.labels[level]:
                raise InputError(f"{run.level(level)}: its labels differ from the taxonomy in {run.label_encoders}; "
                                 "export the run folder again")
        fitted = run.read_temperatures() if calibrated and run.has_calibration() else {}
        return cls(taxonomy, [(m, m.tokenizer) for m in models], [fitted.get(level, 1.0) for level in LEVELS],
                   batch_size)

    def level_logits(self, texts: list[str]) -> list[np.ndarray]:
        from callreason.modeling import predict_logits

        return [predict_logits(m, tok, texts, transformer_logits=m.transformer_logits(texts, self.batch_size))
                for m, tok in self.models]


def load_predictor(models_dir: str | Path, batch_size: int = 64, backend: str = "auto") -> HierarchicalPredictor:
    """The predictor of a run folder for ``backend``: ``torch``, ``onnx`` (a folder written by
    ``callreason export --format onnx``, run on ONNX Runtime) or ``auto`` (what the folder holds)."""
    root = Path(models_dir)
    onnx = is_onnx_folder(root)
    if backend == "onnx" and not onnx:
        raise InputError(f"{root}: --backend onnx needs an ONNX export of the run folder; write one with "
                         f"`callreason export --format onnx --models {root} --output {root}-onnx`")
    if backend == "torch" and onnx:
        raise InputError(f"{root}: holds ONNX models only (an export); use --backend onnx or give the PyTorch run "
                         "folder it was exported from")
    return (OnnxPredictor if onnx else HierarchicalPredictor).load(root, batch_size=batch_size)
