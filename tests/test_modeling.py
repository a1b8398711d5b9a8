import numpy as np
import pytest
import torch

from callreason.io import atomic_path
from callreason.modeling import build_classifier, load_classifier, run_batched, save_classifier

LABELS = ["a", "b", "c"]


def test_save_and_load_give_the_same_logits_from_safetensors_only(tmp_path, tiny_model_dir):
    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, max_length=32)
    texts = ["card lost", "refund order late", "password reset login agent customer called"]
    before = run_batched(model, tokenizer, texts, batch_size=2)
    save_classifier(model, tokenizer, tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"model.safetensors", "head.safetensors", "classifier.json", "config.json"} <= files
    assert not any(name.endswith((".bin", ".pkl", ".pt")) for name in files)
    loaded, loaded_tok = load_classifier(tmp_path / "m")
    assert loaded.encoder.config.id2label == {0: "a", 1: "b", 2: "c"}
    np.testing.assert_allclose(run_batched(loaded, loaded_tok, texts, batch_size=3), before, atol=1e-5)


def test_batched_inference_keeps_input_order(tiny_model_dir):
    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, max_length=32)
    texts = ["card", "refund order late fee charge twice", "login", "bill payment"]
    together = run_batched(model, tokenizer, texts, batch_size=2)
    one_by_one = np.vstack([run_batched(model, tokenizer, [t], batch_size=1) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_loss_uses_sample_weights(tiny_model_dir):
    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, max_length=32)
    batch = tokenizer(["card", "login"], return_tensors="pt", padding=True)
    labels = torch.tensor([0, 1])
    only_first = model(**batch, labels=labels, sample_weight=torch.tensor([1.0, 0.0]))["loss"]
    first_alone = model(**tokenizer(["card"], return_tensors="pt"), labels=labels[:1])["loss"]
    torch.testing.assert_close(only_first, first_alone, atol=1e-5, rtol=1e-4)


def test_interrupted_write_leaves_previous_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights").write_text("half")
            raise KeyboardInterrupt
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_cached_bottom_layers_give_the_same_logits_as_the_full_encoder(tiny_model_dir):
    from callreason.modeling import bottom_layers_output, tokenize
    from callreason.training import PadCollator, TokenizedRows, model_outputs

    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, pooling="mean", max_length=32)
    texts = ["card lost", "refund order late fee charge twice", "login"]
    full = run_batched(model, tokenizer, texts, batch_size=2)
    ids = tokenize(tokenizer, texts, 32)
    rows = TokenizedRows(ids, np.zeros(3), cached_hidden=bottom_layers_output(model, tokenizer, ids, n_layers=1),
                         cached_depth=1)
    np.testing.assert_allclose(model_outputs(model, rows, tokenizer.pad_token_id, batch_size=2), full, atol=1e-5)
    batch = PadCollator(tokenizer.pad_token_id)([rows[i] for i in range(3)])
    assert batch["cached_hidden"].shape[:2] == batch["attention_mask"].shape == batch["input_ids"].shape
    with torch.no_grad():  # the Trainer's call: the layers above the cached ones run (input_ids only weigh tokens)
        np.testing.assert_allclose(model(**batch)["logits"].numpy(), full, atol=1e-5)


def test_levels_sharing_frozen_bottom_layers_run_them_once_with_the_same_logits(tiny_model_dir):
    from callreason.modeling import run_batched_shared, shared_bottom_depth, transformer_layers

    built = [build_classifier(str(tiny_model_dir), labels, pooling="mean", max_length=32)
             for labels in (LABELS, ["x", "y"], ["p", "q", "r", "s"])]
    models, tokenizers = [m for m, _ in built], [t for _, t in built]
    torch.manual_seed(1)
    with torch.no_grad():
        for model in models[1:]:  # fine-tuned top layer, frozen bottom layer and embeddings
            for parameter in transformer_layers(model.encoder)[1].parameters():
                parameter.add_(0.1 * torch.randn_like(parameter))
    assert shared_bottom_depth(models, tokenizers) == 1
    texts = ["card lost", "refund order late fee charge twice", "login", "bill payment agent"]
    shared = run_batched_shared(models, tokenizers[0], texts, depth=1, batch_size=3)
    for model, tokenizer, logits in zip(models, tokenizers, shared):
        np.testing.assert_allclose(logits, run_batched(model, tokenizer, texts, batch_size=3), atol=1e-5)
    assert not np.allclose(shared[0][:, :2], shared[1])

    embedding = models[2].encoder.embeddings.word_embeddings.weight
    original = embedding.detach().clone()
    with torch.no_grad():
        embedding[5] += 1.0
    assert shared_bottom_depth(models, tokenizers) == 0
    with torch.no_grad():
        embedding.copy_(original)
    assert shared_bottom_depth(models, tokenizers) == 1
    models[1].classifier_config.max_length = 16
    assert shared_bottom_depth(models, tokenizers) == 0


def test_a_model_trained_in_bf16_runs_its_passes_without_gradients_in_bf16_where_bf16_is_native(tiny_model_dir,
                                                                                               monkeypatch):
    """classifier_config.bf16 (set by fit_level from train.bf16) puts the encoder's inference passes under bf16
    autocast on hardware with native bf16, and only there; the shared-bottom and cached-bottom paths give the
    same numbers as the plain one in bf16 too, so training, evaluation and predict agree."""
    import callreason.modeling as modeling
    from callreason.modeling import bottom_layers_output, run_batched_shared, tokenize
    from callreason.training import TokenizedRows, model_outputs

    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, pooling="mean", max_length=32)
    texts = ["card lost", "refund order late fee charge twice", "login", "bill payment agent"]
    float32 = run_batched(model, tokenizer, texts, batch_size=3)
    model.classifier_config.bf16 = True
    monkeypatch.setattr(modeling, "native_bf16", lambda device=None: False)  # an AVX2 CPU: bf16 stays off
    np.testing.assert_array_equal(run_batched(model, tokenizer, texts, batch_size=3), float32)
    monkeypatch.setattr(modeling, "native_bf16", lambda device=None: True)
    bf16 = run_batched(model, tokenizer, texts, batch_size=3)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, float32)
    np.testing.assert_allclose(bf16, float32, atol=0.05)
    np.testing.assert_allclose(run_batched_shared([model], tokenizer, texts, depth=1, batch_size=3)[0], bf16, atol=1e-6)
    ids = tokenize(tokenizer, texts, 32)
    rows = TokenizedRows(ids, np.zeros(len(ids)), cached_hidden=bottom_layers_output(model, tokenizer, ids, n_layers=1),
                         cached_depth=1)
    np.testing.assert_allclose(model_outputs(model, rows, tokenizer.pad_token_id, batch_size=3), bf16, atol=1e-2)


def _windowed(tiny_model_dir, pooling: str):
    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, pooling=pooling, max_length=16, max_windows=4)
    model.eval()
    return model, tokenizer


LONG = " ".join(["customer called about card lost", "agent reset password", "refund order late fee"] * 4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_long_text_read_in_windows_pools_what_each_window_gives_alone(tiny_model_dir, pooling):
    from callreason.modeling import tokenize, window_spans

    model, tokenizer = _windowed(tiny_model_dir, pooling)
    ids = tokenize(tokenizer, [LONG, "login"], 16, max_windows=4)
    windows = [ids[0][a:b] for a, b in window_spans(len(ids[0]), 16)]
    assert len(windows) == 4 and all(w[0] == tokenizer.cls_token_id and w[-1] == tokenizer.sep_token_id for w in windows)
    assert ids[1] == tokenize(tokenizer, ["login"], 16)[0]  # a short text is one window, as before
    with torch.no_grad():
        outputs = [model.encoder(input_ids=torch.tensor([w])).last_hidden_state[0] for w in windows]
    if pooling == "mean":
        expected = torch.cat(outputs).mean(0)
    else:
        expected = torch.stack([o[0] for o in outputs]).mean(0)
    pooled = run_batched(model, tokenizer, [LONG, "login"], batch_size=2, output="pooled")
    np.testing.assert_allclose(pooled[0], expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(pooled[1], run_batched(model, tokenizer, ["login"], output="pooled")[0], atol=1e-5)
    truncated, _ = build_classifier(str(tiny_model_dir), LABELS, pooling=pooling, max_length=16)
    truncated.load_state_dict(model.state_dict())
    assert not np.allclose(run_batched(truncated, tokenizer, [LONG], output="pooled")[0], pooled[0], atol=1e-3)


def test_windowed_texts_give_the_same_vectors_from_cached_bottom_layers_shared_levels_and_training_batches(
        tiny_model_dir):
    from callreason.modeling import bottom_layers_output, run_batched_shared, tokenize
    from callreason.training import PadCollator, TokenizedRows, model_outputs

    model, tokenizer = _windowed(tiny_model_dir, "mean")
    texts = [LONG, "login", LONG[:100], "refund order late fee charge twice"]
    full = run_batched(model, tokenizer, texts, batch_size=3)
    ids = tokenize(tokenizer, texts, 16, max_windows=4)
    rows = TokenizedRows(ids, np.arange(4) % 3, cached_hidden=bottom_layers_output(model, tokenizer, ids, n_layers=1),
                         cached_depth=1)
    assert [len(h) for h in rows.cached_hidden] == [len(i) for i in ids]
    np.testing.assert_allclose(model_outputs(model, rows, tokenizer.pad_token_id, batch_size=3), full, atol=1e-5)
    np.testing.assert_allclose(run_batched_shared([model, model], tokenizer, texts, depth=1, batch_size=3)[1], full,
                               atol=1e-5)
    batch = PadCollator(tokenizer.pad_token_id, window=16)([rows[i] for i in range(4)])
    assert batch["window_owner"].tolist() == [0, 0, 0, 0, 1, 2, 2, 3]
    assert batch["cached_hidden"].shape[:2] == batch["attention_mask"].shape == (8, 16)
    with torch.no_grad():
        out = model(**batch)  # what the Trainer calls: logits and the loss over the 4 texts, not the 8 windows
    np.testing.assert_allclose(out["logits"].numpy(), full, atol=1e-5)
    assert out["loss"].shape == ()


def _idf_weighted(tiny_model_dir):
    from callreason.modeling import token_idf, tokenize

    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, pooling="mean", max_length=16, max_windows=4,
                                        token_weighting="idf")
    training_texts = [LONG, "login", "customer called about card lost", "customer called refund order late"]
    model.token_weights = token_idf(tokenize(tokenizer, training_texts, 16, max_windows=4), len(tokenizer))
    return model.eval(), tokenizer


def test_idf_gives_every_text_s_tokens_weight_one_and_a_token_in_no_text_the_most():
    from callreason.modeling import token_idf

    weights = token_idf([[1, 5, 7, 2], [1, 5, 5, 2], [1, 6, 2]], vocab_size=9)
    assert weights.shape == (9,) and weights.dtype == torch.float32
    assert weights[1] == weights[2] == 1.0  # in every text (the special tokens)
    np.testing.assert_allclose(weights[5].item(), np.log(4 / 3) + 1, rtol=1e-6)  # two texts; counted once per text
    np.testing.assert_allclose(weights[8].item(), np.log(4) + 1, rtol=1e-6)  # in none
    assert weights[7] == weights[6] > weights[5]


def test_idf_pooling_is_the_token_weighted_mean_over_all_windows(tiny_model_dir):
    from callreason.modeling import tokenize, window_spans

    model, tokenizer = _idf_weighted(tiny_model_dir)
    ids = tokenize(tokenizer, [LONG], 16, max_windows=4)[0]
    windows = [ids[a:b] for a, b in window_spans(len(ids), 16)]
    with torch.no_grad():
        hidden = torch.cat([model.encoder(input_ids=torch.tensor([w])).last_hidden_state[0] for w in windows])
    weight = model.token_weights[torch.tensor(ids)]
    assert weight.min() == 1.0 and weight.max() > 1.5  # CLS/SEP weigh 1, the rarer words more
    assert not model.classifier_config.normalize  # the tiny BERT is no sentence-transformers model
    expected = (hidden * weight[:, None]).sum(0) / weight.sum()
    pooled = run_batched(model, tokenizer, [LONG, "login"], batch_size=2, output="pooled")
    np.testing.assert_allclose(pooled[0], expected.numpy(), atol=1e-5)
    plain, _ = build_classifier(str(tiny_model_dir), LABELS, pooling="mean", max_length=16, max_windows=4)
    plain.load_state_dict(model.state_dict(), strict=False)
    assert not np.allclose(run_batched(plain.eval(), tokenizer, [LONG], output="pooled")[0], pooled[0], atol=1e-3)


def test_idf_pooling_gives_the_same_logits_from_cached_bottom_layers_shared_levels_training_batches_and_disk(
        tiny_model_dir, tmp_path):
    from callreason.modeling import TOKEN_WEIGHTS_FILE, bottom_layers_output, run_batched_shared, tokenize
    from callreason.training import PadCollator, TokenizedRows, model_outputs

    model, tokenizer = _idf_weighted(tiny_model_dir)
    texts = [LONG, "login", LONG[:100], "refund order late fee charge twice"]
    full = run_batched(model, tokenizer, texts, batch_size=3)
    ids = tokenize(tokenizer, texts, 16, max_windows=4)
    rows = TokenizedRows(ids, np.arange(4) % 3, cached_hidden=bottom_layers_output(model, tokenizer, ids, n_layers=1),
                         cached_depth=1)
    np.testing.assert_allclose(model_outputs(model, rows, tokenizer.pad_token_id, batch_size=3), full, atol=1e-5)
    np.testing.assert_allclose(run_batched_shared([model, model], tokenizer, texts, depth=1, batch_size=3)[1], full,
                               atol=1e-5)
    with torch.no_grad():
        out = model(**PadCollator(tokenizer.pad_token_id, window=16)([rows[i] for i in range(4)]))
    np.testing.assert_allclose(out["logits"].numpy(), full, atol=1e-5)
    save_classifier(model, tokenizer, tmp_path / "m")
    assert (tmp_path / "m" / TOKEN_WEIGHTS_FILE).exists()
    loaded, loaded_tokenizer = load_classifier(tmp_path / "m")
    assert loaded.classifier_config.token_weighting == "idf"
    torch.testing.assert_close(loaded.token_weights, model.token_weights)
    np.testing.assert_allclose(run_batched(loaded, loaded_tokenizer, texts, batch_size=2), full, atol=1e-5)


def test_idf_weighting_refuses_cls_pooling_with_the_fix(tiny_model_dir):
    from callreason.errors import InputError

    with pytest.raises(InputError, match="model.token_weighting idf: it weighs the tokens of mean pooling, and "
                                         "model.pooling is cls .*set model.pooling: mean, or model.token_weighting: none"):
        build_classifier(str(tiny_model_dir), LABELS, pooling="cls", token_weighting="idf")


def test_auto_token_weighting_is_idf_under_mean_pooling_and_none_under_cls(tiny_model_dir):
    choices = {pooling: build_classifier(str(tiny_model_dir), LABELS, pooling=pooling, token_weighting="auto")[0]
               .classifier_config.token_weighting for pooling in ("mean", "cls", "auto")}
    assert choices == {"mean": "idf", "cls": "none", "auto": "none"}  # auto pooling: cls for a plain BERT
