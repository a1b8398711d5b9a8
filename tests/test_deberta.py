"""The seed's model family: a tiny random DeBERTa-v3 laid out like microsoft/deberta-v3-base on the Hub
(SentencePiece ``spm.model`` converted at load time, a bare ``tokenizer_config.json``, relative attention in
``config.json``, ``pytorch_model.bin`` weights) goes through train -> save -> load -> evaluate -> predict,
with the README's DeBERTa settings and with the defaults; the layer cache is exact for DeBERTa and MPNet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from callreason.dataset import encode_dataset
from callreason.modeling import build_classifier, pad_batch, run_bottom, supports_layer_cache
from callreason.params import settings_from_params
from callreason.predict import HierarchicalPredictor
from callreason.run import fit_levels, training_rows, write_run_files
from callreason.taxonomy import LEVELS
from tests.conftest import make_labeled_rows


@pytest.fixture(scope="module")
def deberta_dir(tmp_path_factory) -> Path:
    import sentencepiece as spm
    from transformers import DebertaV2Config, DebertaV2Model

    from callreason.demo import generate_demo_data

    folder = tmp_path_factory.mktemp("deberta_v3_tiny")
    _, labeled, _ = generate_demo_data(seed=1, n_labeled=300, n_unlabeled=1)
    texts = labeled["summary"].tolist() + make_labeled_rows(40)["summary"].tolist()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=str(folder / "spm"), vocab_size=600, model_type="unigram",
        pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3,
        unk_piece="[UNK]", user_defined_symbols=["[MASK]"], minloglevel=2)
    (folder / "spm.vocab").unlink()
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": false, "vocab_type": "spm"}')
    config = DebertaV2Config(vocab_size=600, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=512, relative_attention=True,
                             position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                             pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_biased_input=False,
                             type_vocab_size=0, layer_norm_eps=1e-7, pad_token_id=0)
    torch.manual_seed(0)
    model = DebertaV2Model(config)
    config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "pytorch_model.bin", "spm.model",
                                                       "tokenizer_config.json"]
    return folder


@pytest.fixture(scope="module")
def mpnet_dir(tmp_path_factory, tiny_model_dir) -> Path:
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path_factory.mktemp("mpnet_tiny")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130)
    MPNetModel(config).save_pretrained(folder)
    return folder


def cached_and_direct_logits(folder: Path, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a fresh classifier computed through the whole encoder and from a cached bottom of ``depth``
    layers, on a padded batch of texts of different lengths."""
    model, tokenizer = build_classifier(str(folder), ["a", "b", "c"], max_length=64)
    model.eval()
    texts = ["the customer was charged twice for the same bill and wants one payment refunded",
             "refund", "password reset after the account was locked out twice this week"]
    batch = pad_batch(tokenizer(texts)["input_ids"], tokenizer.pad_token_id)
    assert supports_layer_cache(model.encoder)
    with torch.no_grad():
        direct = model.head(model.pool(**batch))
        hidden = run_bottom(model.encoder, batch["input_ids"], batch["attention_mask"], depth)
        cached = model.head(model.pool_from(hidden, batch["attention_mask"], depth))
    return direct.numpy(), cached.numpy()


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_the_deberta_v3_layer_cache_is_exact(deberta_dir, depth):
    direct, cached = cached_and_direct_logits(deberta_dir, depth)
    np.testing.assert_allclose(cached, direct, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 3])
def test_the_mpnet_layer_cache_is_exact(mpnet_dir, depth):
    direct, cached = cached_and_direct_logits(mpnet_dir, depth)
    np.testing.assert_allclose(cached, direct, atol=1e-5)


def test_the_hub_layout_loads_offline_with_cls_pooling(deberta_dir):
    model, tokenizer = build_classifier(str(deberta_dir), ["a", "b"], pooling="auto", max_length=32)
    assert model.classifier_config.pooling == "cls" and model.encoder.config.model_type == "deberta-v2"
    ids = tokenizer("customer asked for a refund")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and len(ids) > 3


@pytest.mark.parametrize("setting", ["readme", "defaults"])
def test_deberta_trains_saves_loads_evaluates_and_predicts(tmp_path, tiny_params, small_taxonomy, deberta_dir,
                                                          setting, capsys):
    """README's DeBERTa settings (full fine-tuning, batch 16) and the defaults (train.frozen_layers 4 on a
    2-layer model: clamped to 2 and said)."""
    train = {**tiny_params["train"], "batch_size": 16 if setting == "readme" else 8,
             "frozen_layers": 0 if setting == "readme" else 4}
    params = {**tiny_params, "epochs": 2, "model": {**tiny_params["model"], "base": str(deberta_dir), "pooling": "auto"},
              "train": train}
    settings = settings_from_params(params)
    data, _ = encode_dataset(make_labeled_rows(90), small_taxonomy, 0.2, 0.15, 0, 1)
    fits = fit_levels(training_rows(data, ("train",)), training_rows(data, ("val",)), small_taxonomy, settings,
                      tmp_path / "run", tmp_path / "scratch")
    if setting == "defaults":
        assert "frozen_layers 4 > the 2 layers" in capsys.readouterr().out
        assert all(fit["frozen_layers"] == 2 for fit in fits.values())
    for level in LEVELS:
        assert (tmp_path / "run" / level / "model.safetensors").exists()
        assert not list((tmp_path / "run" / level).glob("*.bin"))
    write_run_files(tmp_path / "run", small_taxonomy, settings, {lv: 1.0 for lv in LEVELS})
    predictor = HierarchicalPredictor.load(tmp_path / "run")
    test = training_rows(data, ("test",))
    frame = predictor.predict_frame(test["call_id"].tolist(), test["summary"].tolist())
    assert all(small_taxonomy.is_valid_path(*row) for row in frame[list(LEVELS)].itertuples(index=False))
    if setting == "defaults":  # every layer frozen: the three level models share all of them
        assert predictor.shared_depth == 2
    if predictor.shared_depth:  # the shared-bottom path gives what each level's own forward gives
        shared = predictor.level_logits(test["summary"].tolist())
        predictor.shared_depth = 0
        np.testing.assert_allclose(np.concatenate(shared, 1),
                                   np.concatenate(predictor.level_logits(test["summary"].tolist()), 1), atol=1e-4)
    json.dumps(fits)
