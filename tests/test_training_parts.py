"""The pieces of one level's training: optimizer groups, frozen layers, max length, bf16, and calibration."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from callreason.evaluation import evaluate_run, headline_metrics, write_evaluation
from callreason.modeling import build_classifier, save_classifier
from callreason.params import settings_from_params
from callreason.predict import HierarchicalPredictor
from callreason.taxonomy import LEVELS
from callreason.training import (
    WINDOW_TOKENS,
    bf16_enabled,
    choose_max_length,
    choose_reading,
    fit_settings,
    freeze_bottom_layers,
    make_optimizer,
)


@pytest.fixture()
def tiny(tiny_model_dir):
    return build_classifier(str(tiny_model_dir), ["a", "b", "c"], pooling="mean", max_length=32)


def test_the_optimizer_gives_the_head_and_the_encoder_their_own_rates_and_no_decay_to_biases(tiny, tiny_params):
    model, _ = tiny
    base = fit_settings(settings_from_params(tiny_params), "level_3")
    settings = replace(base, rates=replace(base.rates, encoder_lr=1e-5, head_lr=1e-3),
                       train=replace(base.train, weight_decay=0.05))
    freeze_bottom_layers(model, 1)
    groups = make_optimizer(model, settings).param_groups
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert by_param[id(names["head.weight"])] == (1e-3, 0.05) and by_param[id(names["head.bias"])] == (1e-3, 0.0)
    top = [n for n in names if n.startswith("encoder.encoder.layer.1.") and n.endswith("dense.weight")][0]
    assert by_param[id(names[top])] == (1e-5, 0.05)
    assert all(by_param[id(p)][1] == 0.0 for n, p in names.items() if "LayerNorm" in n and id(p) in by_param)
    frozen = [n for n in names if n.startswith(("encoder.embeddings.", "encoder.encoder.layer.0."))]
    assert frozen and not any(id(names[n]) in by_param for n in frozen)  # frozen: not in the optimizer


def test_freezing_the_bottom_layers_leaves_the_top_and_the_head_trainable(tiny):
    model, _ = tiny
    freeze_bottom_layers(model, 0)
    assert all(p.requires_grad for p in model.parameters())
    freeze_bottom_layers(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.")) for n in trainable)
    assert any(n.startswith("encoder.encoder.layer.1.") for n in trainable) and "head.weight" in trainable


def test_max_length_auto_is_the_99th_percentile_rounded_up_to_8_and_capped(tiny):
    _, tokenizer = tiny
    texts = ["refund order"] * 99 + ["card " * 300]
    assert choose_max_length(tokenizer, texts, "auto") == 16  # p99 of 4-token rows, at least 16
    assert choose_max_length(tokenizer, ["card " * 40] * 10, "auto") == 48  # 42 tokens -> 48
    assert choose_max_length(tokenizer, texts, 24) == 24
    assert choose_max_length(tokenizer, ["card " * 2000] * 5, "auto") <= 512


def test_max_windows_auto_reads_only_texts_longer_than_a_window_in_windows(tiny):
    _, tokenizer = tiny
    short = ["refund order"] * 99 + ["card " * 300]  # the 99th percentile is short: one window, as max_windows 1
    assert choose_reading(tokenizer, short, "auto", "auto") == (choose_max_length(tokenizer, short, "auto"), 1) == (16, 1)
    mid = ["card " * 200] * 10  # 202 tokens fit in one 256-token window: read whole, nothing windowed
    assert choose_reading(tokenizer, mid, "auto", "auto") == (208, 1)
    long = ["card " * 600] * 10  # 602 tokens: three 256-token windows
    assert choose_reading(tokenizer, long, "auto", "auto") == (WINDOW_TOKENS, 3)
    assert choose_reading(tokenizer, long, 128, "auto") == (128, 5)  # a set max_length is the window width
    assert choose_reading(tokenizer, ["card " * 5000] * 3, "auto", "auto") == (WINDOW_TOKENS, 8)  # at most 8
    assert choose_reading(tokenizer, long, "auto", 1) == (choose_max_length(tokenizer, long, "auto"), 1)  # a number
    assert choose_reading(tokenizer, long, 64, 4) == (64, 4)


def test_bf16_follows_the_setting_and_auto_asks_the_hardware(monkeypatch):
    assert bf16_enabled(True) is True and bf16_enabled(False) is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert bf16_enabled("auto") is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert bf16_enabled("auto") is True


def test_calibration_softens_overconfident_models_and_evaluate_run_writes_its_outputs(tmp_path, monkeypatch,
                                                                                    tiny_model_dir, small_taxonomy):
    """Heads scaled up 50x are overconfident on random features: the fitted temperatures exceed 1, and
    evaluate_run's headline and per-class report agree on macro-F1."""
    from tests.conftest import make_labeled_rows

    for level in LEVELS:
        model, tokenizer = build_classifier(str(tiny_model_dir), small_taxonomy.labels[level], pooling="mean",
                                            max_length=32, level=level)
        with torch.no_grad():
            model.head.weight.mul_(50.0)
        save_classifier(model, tokenizer, tmp_path / "run" / level)
    predictor = HierarchicalPredictor.load(tmp_path / "run", calibrated=False, taxonomy=small_taxonomy)
    rows = make_labeled_rows(40)
    for level in LEVELS:
        rows[f"{level}_id"] = small_taxonomy.ids(level, rows[level].tolist())
    report = predictor.fit_temperatures(rows.iloc[:20])
    assert all(t > 1.0 for t in report["temperature"].values())
    assert all(report["val_ece_after"][lv] <= report["val_ece_before"][lv] + 1e-9 for lv in LEVELS)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    evaluation = evaluate_run(predictor, rows.iloc[20:], rows.iloc[:20], median_confidence=float(rows["confidence"].median()))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # scoring writes nothing
    write_evaluation(evaluation, small_taxonomy, "evaluate", tmp_path / "plots/evaluate", tmp_path / "reports",
                     tmp_path / "pred.parquet")
    details = evaluation.details
    headline = headline_metrics(details, train_rows=30, val_rows=20)
    for level in LEVELS:
        assert headline[level]["macro_f1"] == details["per_class"][level]["macro avg"]["f1-score"]
    assert pd.read_parquet(tmp_path / "pred.parquet").shape[0] == 20
    assert (tmp_path / "reports/evaluate_errors.md").exists() and (tmp_path / "plots/evaluate/confusion_level_3.png").exists()
    assert np.isfinite(headline["ece"]["level_3"])
    assert headline["rows"] == {"train": 30, "val": 20, "test": 20}
