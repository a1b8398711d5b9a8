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
    TOKEN_WEIGHTS_FILE,
    TextClassifier,
    in_length_order,
    load_classifier,
    load_companions,
    pad_batch,
    read_classifier_config,
    run_bottom,
    shared_bottom_depth,
    tokenize,
    window_matrix,
    window_width,
)
from callreason.neighbours import blend_neighbours
from callreason.predict import HierarchicalPredictor
from callreason.run_folder import RunFolder
from callreason.taxonomy import LEVELS, Taxonomy

ONNX_FILE = "model.onnx"
BOTTOM_FILE = "shared_bottom.onnx"
FORMAT = "onnx"
WEIGHT_FILES = ("model.safetensors", "head.safetensors", TOKEN_WEIGHTS_FILE)
"""The PyTorch weights an export leaves out (the ONNX graph holds them)."""
OPSET = 17
WINDOWS_INPUT = "window_weights"
"""The third input of a level graph that reads long texts in windows: (texts, rows) 0/1, see TextClassifier.pool."""
TOKEN_IDS_INPUT = "token_ids"
"""The last input of a level graph after the shared bottom whose pooling weighs tokens: the padded token ids."""
INSTALL_HINT = "install the ONNX extra: pip install -e .[onnx] (onnx, onnxruntime)"


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"onnxruntime is not installed; {INSTALL_HINT}") from None
    return onnxruntime


class LogitsAndPooled(nn.Module):
    """What a level's ONNX graph computes: the head's logits and the pooled vector, from padded token ids, or
    (``start_layer`` > 0) from the output of the shared bottom (:class:`SharedBottom`). Its inputs: those two,
    ``window_weights`` for a level that reads long texts in windows, and the token ids again (``TOKEN_IDS_INPUT``)
    for a level that starts from the shared bottom and weighs tokens in its pooling."""

    def __init__(self, model: TextClassifier, start_layer: int = 0):
        super().__init__()
        self.model, self.start_layer = model, start_layer
        self.windowed = model.classifier_config.max_windows > 1
        self.token_ids = bool(start_layer) and model.token_weights is not None

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor,
                *extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window_weights = extra[0] if self.windowed else None
        if self.start_layer:
            input_ids = extra[-1] if self.token_ids else None
            pooled = self.model.pool_from(inputs, attention_mask, self.start_layer, window_weights=window_weights,
                                          input_ids=input_ids)
        else:
            pooled = self.model.pool(inputs, attention_mask, window_weights=window_weights)
        return self.model.head(pooled), pooled


class SharedBottom(nn.Module):
    """The embeddings and the ``depth`` bottom layers the three levels share (frozen in training): run once per
    batch for all levels, as the PyTorch predictor does."""

    def __init__(self, model: TextClassifier, depth: int):
        super().__init__()
        self.model, self.depth = model, depth

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return run_bottom(self.model.encoder, input_ids, attention_mask, self.depth)


def is_onnx_folder(folder: Path) -> bool:
    """Whether ``folder`` is an ONNX export (its ``metadata.json`` says ``"format": "onnx"``)."""
    run = RunFolder(folder)
    return run.metadata_path.exists() and run.read_metadata().get("format") == FORMAT


def _sample_inputs(model: TextClassifier) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0, 0], [101, 7592, 102, 0, 0, 0, 0, 0]])
    ids = ids.clamp(max=model.encoder.config.vocab_size - 1)
    return ids, (torch.arange(ids.shape[1])[None, :] < torch.tensor([[6], [3]])).long()


def export_graph(module: nn.Module, inputs: tuple[torch.Tensor, ...], names: tuple[list[str], list[str]],
                 target: Path, int8: bool) -> None:
    """``module`` as the ONNX file ``target`` with dynamic batch (and token) axes; ``int8``: dynamically
    quantized weights."""
    import warnings

    input_names, output_names = names
    axes = {name: {0: "batch", 1: "tokens"} for name in input_names if name != WINDOWS_INPUT}
    windowed = WINDOWS_INPUT in input_names  # rows are windows; the outputs have one row per text
    if windowed:
        axes[WINDOWS_INPUT] = {0: "texts", 1: "batch"}
    axes.update({name: ({0: "batch", 1: "tokens"} if name == "hidden" else {0: "texts" if windowed else "batch"})
                 for name in output_names})
    plain = target.with_suffix(".fp32.onnx") if int8 else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes cover
        torch.onnx.export(module.eval(), inputs, str(plain), input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
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
    loaded = [load_classifier(run.level(level)) for level in LEVELS]
    depth = shared_bottom_depth([m for m, _ in loaded], [tok for _, tok in loaded])
    with atomic_path(output) as tmp:
        shutil.copytree(models, tmp, ignore=shutil.ignore_patterns(*WEIGHT_FILES, ".gitignore"))
        ids, mask = _sample_inputs(loaded[0][0])
        with torch.no_grad():  # not inference_mode: the tracer cannot take inference tensors
            hidden = run_bottom(loaded[0][0].encoder, ids, mask, depth) if depth else None
        if depth:
            export_graph(SharedBottom(loaded[0][0], depth), (ids, mask), (["input_ids", "attention_mask"], ["hidden"]),
                         tmp / BOTTOM_FILE, int8)
            sizes["shared_bottom"] = (tmp / BOTTOM_FILE).stat().st_size
        for level, (model, _) in zip(LEVELS, loaded):
            graph = LogitsAndPooled(model, depth)
            inputs, names = (hidden if depth else ids, mask), ["hidden" if depth else "input_ids", "attention_mask"]
            if graph.windowed:  # the sample's two rows as two windows of one text
                inputs, names = (*inputs, torch.ones((1, len(ids)))), [*names, WINDOWS_INPUT]
            if graph.token_ids:
                inputs, names = (*inputs, ids), [*names, TOKEN_IDS_INPUT]
            export_graph(graph, inputs, (names, ["logits", "pooled"]), tmp / level / ONNX_FILE, int8)
            sizes[level] = (tmp / level / ONNX_FILE).stat().st_size
        metadata = run.read_metadata()
        RunFolder(tmp).write_metadata({**metadata, "format": FORMAT, "exported_from": str(models),
                                       "onnx": {"opset": OPSET, "quantization": "int8 dynamic" if int8 else "none",
                                                "shared_bottom_layers": depth}})
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

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer

        from callreason.modeling import loading
        from callreason.run_folder import DAMAGED

        ort = _onnxruntime()
        folder = Path(folder)
        if not (folder / ONNX_FILE).exists():
            raise InputError(f"{folder}: no {ONNX_FILE}; {DAMAGED}")
        self.classifier_config = read_classifier_config(folder)
        with loading(str(folder), DAMAGED):
            self.session = ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.lexical, self.neighbours = load_companions(folder, len(self.classifier_config.labels))

    def outputs(self, inputs: np.ndarray, attention_mask: np.ndarray, window_weights: np.ndarray | None = None,
                token_ids: np.ndarray | None = None) -> torch.Tensor:
        """The logits :func:`callreason.modeling.run_batched` gives (head + neighbour vote) for one padded batch:
        ``inputs`` are token ids, or the shared bottom's output when the export has one; ``window_weights``
        (texts, rows): which rows are windows of which text, for a level that reads long texts in windows;
        ``token_ids``: the padded token ids, which a graph after the shared bottom takes when it weighs tokens."""
        names = [node.name for node in self.session.get_inputs()]
        feed = {names[0]: inputs, "attention_mask": attention_mask}
        if self.classifier_config.max_windows > 1:
            feed[WINDOWS_INPUT] = window_weights if window_weights is not None else np.eye(len(inputs), dtype=np.float32)
        if TOKEN_IDS_INPUT in names:
            feed[TOKEN_IDS_INPUT] = token_ids
        logits, pooled = self.session.run(None, feed)
        return blend_neighbours(torch.from_numpy(logits), torch.from_numpy(pooled), self.neighbours,
                                self.classifier_config.knn_weight)


class OnnxPredictor(HierarchicalPredictor):
    """:class:`HierarchicalPredictor` over an ONNX export: the shared bottom graph (when the export has one) runs
    once per batch, then each level's graph."""

    bottom: Any = None  # an ONNX Runtime session of shared_bottom.onnx, or None

    def __post_init__(self):
        self.shared_depth = 0

    LABELS_FIX = "export the run folder again"

    @classmethod
    def load(cls, models_dir: str | Path, batch_size: int = 64, calibrated: bool = True,
             taxonomy: Taxonomy | None = None) -> "OnnxPredictor":
        """Load an ONNX export (see :func:`export_run`): its sessions, taxonomy and temperatures."""
        predictor = super().load(models_dir, batch_size, calibrated, taxonomy)
        bottom = RunFolder(models_dir).root / BOTTOM_FILE
        if bottom.exists():
            predictor.bottom = _onnxruntime().InferenceSession(str(bottom), providers=["CPUExecutionProvider"])
        return predictor

    @classmethod
    def load_level(cls, folder: Path) -> tuple["OnnxClassifier", object]:
        model = OnnxClassifier(folder)
        return model, model.tokenizer

    def level_logits(self, texts: list[str]) -> list[np.ndarray]:
        from callreason.modeling import blended_logits

        groups = [self.models] if self.bottom is not None else [[model] for model in self.models]
        transformer = [z for group in groups for z in self._transformer_logits(group, texts)]
        return blended_logits(self.models, texts, transformer)

    def _transformer_logits(self, models: list, texts: list[str]) -> list[np.ndarray]:
        """Each of ``models``' transformer logits over length-sorted batches (the shared bottom run once per batch
        when the export has one; then ``models`` are all three levels)."""
        first, tokenizer = models[0]
        config = first.classifier_config
        token_ids = tokenize(tokenizer, texts, config.max_length, config.max_windows)
        widths = [len(m.classifier_config.labels) for m, _ in models]

        def compute(index: np.ndarray) -> torch.Tensor:
            batch = pad_batch([token_ids[i] for i in index], tokenizer.pad_token_id, window=window_width(config))
            ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
            weights = window_matrix(batch["window_owner"]).numpy() if "window_owner" in batch else None
            inputs = ids if self.bottom is None else self.bottom.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            return torch.cat([m.outputs(inputs, mask, weights, ids) for m, _ in models], dim=1)

        logits = in_length_order(np.array([len(t) for t in token_ids]), self.batch_size, compute, sum(widths))
        return np.split(logits, np.cumsum(widths)[:-1], axis=1)


def check_backend(models_dir: str | Path, backend: str = "auto") -> bool:
    """Whether ``models_dir`` is run on ONNX Runtime for ``backend`` (``torch``, ``onnx`` or ``auto``: what the
    folder holds); a backend the folder cannot serve is an :class:`InputError`."""
    root = Path(models_dir)
    onnx = is_onnx_folder(root)
    if backend == "onnx" and not onnx:
        raise InputError(f"{root}: --backend onnx needs an ONNX export of the run folder; write one with "
                         f"`callreason export --format onnx --models {root} --output {root}-onnx`")
    if backend == "torch" and onnx:
        raise InputError(f"{root}: holds ONNX models only (an export); use --backend onnx or give the PyTorch run "
                         "folder it was exported from")
    return onnx


def load_predictor(models_dir: str | Path, batch_size: int = 64, backend: str = "auto") -> HierarchicalPredictor:
    """The predictor of a run folder for ``backend`` (see :func:`check_backend`)."""
    onnx = check_backend(models_dir, backend)
    return (OnnxPredictor if onnx else HierarchicalPredictor).load(Path(models_dir), batch_size=batch_size)
