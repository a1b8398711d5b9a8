import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from callreason.dataset import encode_dataset
from callreason.modeling import build_classifier, load_classifier, run_batched
from callreason.params import settings_from_params
from callreason.training import fit_level, fit_linear_probe
from tests.conftest import make_labeled_rows


def test_linear_probe_gives_absent_classes_the_lowest_scores(tiny_model_dir):
    model, tokenizer = build_classifier(str(tiny_model_dir), ["a", "b", "c", "d"], pooling="mean", max_length=32)
    texts = ["refund order"] * 6 + ["password reset"] * 6 + ["late fee bill"] * 6
    labels = np.array([0] * 6 + [2] * 6 + [3] * 6)
    features = run_batched(model, tokenizer, texts, output="pooled")
    fit_linear_probe(model, features, labels, c=1e4, seed=0)
    logits = run_batched(model, tokenizer, texts)
    assert (logits.argmax(1) != 1).all()
    assert f1_score(labels, logits.argmax(1), average="macro") > 0.9


def test_fit_level_trains_and_saves_a_loadable_model(tmp_path, tiny_params, small_taxonomy):
    data, _ = encode_dataset(make_labeled_rows(80), small_taxonomy, 0.2, 0.15, 0, 1)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    summary = fit_level("level_3", train, val, small_taxonomy.labels["level_3"], settings_from_params(tiny_params),
                        tmp_path / "level_3", tmp_path / "live", tmp_path / "scratch")
    assert summary["train_rows"] == len(train) and summary["classes"] == 5
    assert summary["best_val_macro_f1"] > 0.5
    model, tokenizer = load_classifier(tmp_path / "level_3")
    assert model.classifier_config.labels == small_taxonomy.labels["level_3"]
    assert (tmp_path / "live" / "metrics.json").exists()
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").glob("checkpoint-*"))
    json.dumps(summary)
    # the profile's phases (tiny_params freeze no layers, so there is no frozen_bottom phase)
    phases = summary["seconds"]
    assert list(phases) == ["load", "tokenize", "probe", "fine_tune", "companions", "save"]
    assert all(seconds >= 0 for seconds in phases.values()) and sum(phases.values()) > phases["fine_tune"] > 0


def test_same_data_params_and_seed_give_identical_results(tmp_path, tiny_params, small_taxonomy):
    data, _ = encode_dataset(make_labeled_rows(60, seed=1), small_taxonomy, 0.2, 0.15, 0, 1)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    runs = []
    for name in ("a", "b"):
        summary = fit_level("level_2", train, val, small_taxonomy.labels["level_2"], settings_from_params(tiny_params),
                            tmp_path / name, tmp_path / f"live_{name}", tmp_path / f"scratch_{name}")
        model, tokenizer = load_classifier(tmp_path / name)
        logits = run_batched(model, tokenizer, val["summary"].tolist())
        runs.append(({k: v for k, v in summary.items() if "second" not in k}, logits))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_a_run_interrupted_after_a_checkpoint_resumes_to_the_same_model(tmp_path, tiny_model_dir, tiny_params,
                                                                         small_taxonomy):
    from dataclasses import replace

    import pytest
    from transformers import TrainerCallback

    from callreason.training import fit_settings, train_classifier

    data, _ = encode_dataset(make_labeled_rows(80), small_taxonomy, 0.2, 0.15, 0, 1)
    train, val = data[data["split"] == "train"], data[data["split"] == "val"]
    base = fit_settings(settings_from_params(tiny_params), "level_3")
    settings = replace(base, epochs=3, train=replace(base.train, patience=5, batch_size=8, frozen_layers=1, resume=True))

    def run(work, callbacks=()):
        model, tokenizer = build_classifier(str(tiny_model_dir), small_taxonomy.labels["level_3"], pooling="mean",
                                            max_length=32)
        summary = train_classifier(model, tokenizer, train["summary"].tolist(), train["level_3_id"].to_numpy(),
                                   val["summary"].tolist(), val["level_3_id"].to_numpy(), settings, work,
                                   callbacks=list(callbacks))
        return summary, run_batched(model, tokenizer, val["summary"].tolist())

    class KillAfterSecondCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.epoch >= 2:
                raise KeyboardInterrupt

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    full_count, resumed_count = CountSteps(), CountSteps()
    uninterrupted, uninterrupted_logits = run(tmp_path / "a", [full_count])
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", [KillAfterSecondCheckpoint()])
    assert [p.name for p in (tmp_path / "b").glob("checkpoint-*")]
    resumed, resumed_logits = run(tmp_path / "b", [resumed_count])
    assert resumed_count.steps * 3 == full_count.steps  # only the third epoch ran again
    assert resumed["best_epoch"] == uninterrupted["best_epoch"]
    assert resumed["best_val_macro_f1"] == uninterrupted["best_val_macro_f1"]
    np.testing.assert_allclose(resumed_logits, uninterrupted_logits, atol=1e-5)


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    from callreason.training import resumable_checkpoint

    (tmp_path / "checkpoint-4").mkdir(parents=True)
    (tmp_path / "run.json").write_text('{"fingerprint": "other"}')
    assert resumable_checkpoint(tmp_path, "this") is None
    assert not (tmp_path / "checkpoint-4").exists()


def run_keep_best(val_scores: list[float], probe_score: float, patience: int) -> tuple[int, float, int]:
    """Feed ``val_scores`` (one per epoch) to KeepBestCallback; returns (epochs run, best epoch, restored weight)."""
    from types import SimpleNamespace

    import torch

    from callreason.training import KeepBestCallback

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)  # the linear probe's weights
    callback = KeepBestCallback(model, probe_score, patience)
    control = SimpleNamespace(should_training_stop=False)
    epochs = 0
    for epoch, score in enumerate(val_scores, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # weights after this epoch
        epochs = epoch
        callback.on_evaluate(None, SimpleNamespace(epoch=float(epoch)), control, metrics={"eval_macro_f1": score})
        if control.should_training_stop:
            break
    callback.on_train_end(None, None, control)
    return epochs, callback.best_epoch, int(model.weight.item())


def test_early_stopping_keeps_the_best_epoch_and_never_stops_on_the_first_epochs_dip():
    # moving off the linear probe often dips below it first: the first fine-tuning epoch is not a bad epoch
    assert run_keep_best([0.80, 0.86, 0.88, 0.87, 0.90], probe_score=0.84, patience=1) == (4, 3.0, 3)
    assert run_keep_best([0.80, 0.83, 0.82], probe_score=0.84, patience=1) == (2, 0.0, 0)  # the probe stays
    assert run_keep_best([0.80, 0.83, 0.85, 0.86], probe_score=0.84, patience=2) == (4, 4.0, 4)
    assert run_keep_best([0.90, 0.89, 0.88, 0.95], probe_score=0.84, patience=2) == (3, 1.0, 1)
    assert run_keep_best([1.0, 0.5], probe_score=0.84, patience=3) == (1, 1.0, 1)  # perfect: nothing left to gain


def test_the_levels_of_a_run_encode_their_rows_once_and_train_what_each_would_alone(tmp_path, tiny_params,
                                                                                  small_taxonomy, monkeypatch):
    """fit_levels shares each row set's frozen-bottom outputs and starting pooled vectors between the levels:
    the bottom runs once per row set, and every level's model, choices and curves are those of the level
    trained alone; the neighbour index (built from the cached bottom) holds the vectors a full pass gives."""
    import callreason.training as training
    from callreason.neighbours import NeighbourIndex
    from callreason.run import fit_levels, training_rows
    from callreason.taxonomy import LEVELS

    params = {**tiny_params, "train": {**tiny_params["train"], "frozen_layers": 1, "knn_weight": 0.2}}
    settings = settings_from_params(params)
    data, _ = encode_dataset(make_labeled_rows(60), small_taxonomy, 0.25, 0.2, 0, 1)
    train, val = training_rows(data, ("train",)), training_rows(data, ("val",))
    bottom_rows: list[int] = []
    real_bottom = training.bottom_layers_output

    def counted(model, tokenizer, token_ids, *args, **kwargs):
        bottom_rows.append(len(token_ids))
        return real_bottom(model, tokenizer, token_ids, *args, **kwargs)

    monkeypatch.setattr(training, "bottom_layers_output", counted)
    together = fit_levels(train, val, small_taxonomy, settings, tmp_path / "run", tmp_path / "scratch")
    assert sorted(bottom_rows) == sorted([len(train), len(val)])  # once per row set, not once per level
    assert [("frozen_bottom" in together[level]["seconds"]) for level in LEVELS] == [True, False, False]
    texts = val["summary"].tolist() + train["summary"].tolist()[:5]
    for level in LEVELS:
        alone = fit_level(level, train, val, small_taxonomy.labels[level], settings, tmp_path / "alone" / level,
                          None, tmp_path / "scratch_alone")
        same_choices = ("best_epoch", "epochs_run", "lexical_weight", "linear_probe_val_macro_f1", "best_val_macro_f1")
        assert {k: together[level][k] for k in same_choices} == {k: alone[k] for k in same_choices}
        for a, b in zip(together[level]["curve"], alone["curve"]):
            assert a == pytest.approx(b, abs=1e-5)
        model, tokenizer = load_classifier(tmp_path / "run" / level)
        reference, _ = load_classifier(tmp_path / "alone" / level)
        np.testing.assert_allclose(run_batched(model, tokenizer, texts), run_batched(reference, tokenizer, texts),
                                   atol=1e-5)
        full_pass = run_batched(model, tokenizer, train["summary"].tolist(), output="pooled")
        expected = NeighbourIndex(torch.from_numpy(full_pass), torch.zeros(len(train)), 1).vectors
        np.testing.assert_allclose(model.neighbours.vectors.numpy(), expected.numpy(), atol=2e-3)  # float16 on disk


def test_a_level_reading_long_texts_in_windows_learns_a_reason_that_truncation_cuts_off(tmp_path, tiny_params,
                                                                                       small_taxonomy):
    """The reason words sit after 24 filler tokens: a model truncated at 16 tokens never sees them, one that reads
    up to 4 windows of 16 does; the folder records its windows and predicts as it trained."""
    from callreason.run import fit_levels, training_rows
    from callreason.taxonomy import LEVELS

    rows = make_labeled_rows(90)
    rows["summary"] = "agent customer called about " * 6 + rows["summary"]
    data, _ = encode_dataset(rows, small_taxonomy, 0.25, 0.2, 0, 1)
    train, val = training_rows(data, ("train",)), training_rows(data, ("val",))
    scores = {}
    for windows in (1, 4):
        params = {**tiny_params, "model": {**tiny_params["model"], "max_length": 16, "max_windows": windows},
                  "train": {**tiny_params["train"], "frozen_layers": 1, "lexical_blend": False, "knn_weight": 0.2}}
        fits = fit_levels(train, val, small_taxonomy, settings_from_params(params), tmp_path / f"w{windows}",
                          tmp_path / "scratch")
        model, tokenizer = load_classifier(tmp_path / f"w{windows}" / "level_3")
        assert model.classifier_config.max_windows == windows == fits["level_3"]["max_windows"]
        predicted = run_batched(model, tokenizer, val["summary"].tolist()).argmax(1)
        scores[windows] = f1_score(val["level_3_id"], predicted, average="macro")
        assert [fits[level]["max_windows"] for level in LEVELS] == [windows] * 3
    assert scores[1] < 0.3 and scores[4] > 0.6  # measured: 0.09 and 0.71


def test_levels_with_idf_token_weighting_keep_the_training_texts_idf_and_predict_as_they_trained(
        tmp_path, tiny_params, small_taxonomy):
    """``model.token_weighting: idf``: each level's folder holds the IDF of its training texts' tokens (as the model
    reads them: 4 windows of 16), the filler every summary has weighs least, and the folder predicts as it trained."""
    from callreason.modeling import token_idf, tokenize
    from callreason.run import fit_levels, training_rows
    from callreason.taxonomy import LEVELS

    rows = make_labeled_rows(90)
    rows["summary"] = "agent customer called about " * 3 + rows["summary"]
    data, _ = encode_dataset(rows, small_taxonomy, 0.25, 0.2, 0, 1)
    train, val = training_rows(data, ("train",)), training_rows(data, ("val",))
    params = {**tiny_params, "model": {**tiny_params["model"], "max_length": 16, "max_windows": 4,
                                       "token_weighting": "idf"},
              "train": {**tiny_params["train"], "frozen_layers": 1, "knn_weight": 0.2}}
    fits = fit_levels(train, val, small_taxonomy, settings_from_params(params), tmp_path / "run", tmp_path / "scratch")
    for level in LEVELS:
        model, tokenizer = load_classifier(tmp_path / "run" / level)
        assert model.classifier_config.token_weighting == fits[level]["token_weighting"] == "idf"
        expected = token_idf(tokenize(tokenizer, train["summary"].tolist(), 16, 4), len(tokenizer))
        torch.testing.assert_close(model.token_weights, expected)
        filler = tokenizer("customer", add_special_tokens=False)["input_ids"][0]
        assert model.token_weights[filler] == 1.0 < model.token_weights.max()
        predicted = run_batched(model, tokenizer, val["summary"].tolist()).argmax(1)
        assert f1_score(val[f"{level}_id"], predicted, average="macro") > 0.3
