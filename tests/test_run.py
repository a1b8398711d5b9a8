"""Runs: promotion never ships a worse model, the refit sees every gold row, and the test rows never
influence a choice that the held-out estimate reports on."""

import json

import numpy as np
import pytest
import torch

from callreason.dataset import encode_dataset
from callreason.modeling import row_losses
from callreason.params import settings_from_params
from callreason.run import ALL_SIDES, fit_levels, promotion_decision, training_rows
from callreason.run_folder import RunFolder
from tests.conftest import make_labeled_rows


def scores(level_3: float, path: float) -> dict:
    return {"level_3": {"macro_f1": level_3}, "path": {"accuracy": path}}


@pytest.mark.parametrize("heldout, retrained, promoted", [
    (scores(0.80, 0.85), scores(0.81, 0.86), True),    # better on both
    (scores(0.80, 0.85), scores(0.81, 0.85), True),    # better level_3, same path accuracy
    (scores(0.80, 0.85), scores(0.79, 0.90), False),   # worse level_3
    (scores(0.80, 0.85), scores(0.80, 0.85), False),   # a tie keeps the held-out run
    (scores(0.80, 0.85), scores(0.85, 0.84), False),   # better level_3 but worse paths
])
def test_promotion_never_picks_the_worse_run(heldout, retrained, promoted):
    decision = promotion_decision(heldout, retrained)
    assert decision["promoted"] is promoted
    assert decision["level_3_macro_f1_gain"] == pytest.approx(retrained["level_3"]["macro_f1"]
                                                              - heldout["level_3"]["macro_f1"])


def test_the_test_rows_change_no_choice_of_the_held_out_run_and_the_refit_sees_them(tmp_path, tiny_params,
                                                                                   small_taxonomy):
    """Relabel every test row: the held-out run (best epoch, blend weight, max_length, weights) is the same,
    so nothing reported as held-out was chosen on test rows; the refit trains on every row."""
    tiny_params = {**tiny_params, "epochs": 3, "train": {**tiny_params["train"], "drop_suspect_labels": True}}
    settings = settings_from_params(tiny_params)
    data, _ = encode_dataset(make_labeled_rows(90), small_taxonomy, 0.25, 0.2, 0, 1)
    relabeled = data.copy()
    test = relabeled["split"] == "test"
    relabeled.loc[test, "level_3_id"] = (relabeled.loc[test, "level_3_id"] + 1) % len(small_taxonomy.labels["level_3"])
    relabeled.loc[test, "summary"] = "customer called about " + relabeled.loc[test, "summary"]

    def heldout(frame, name):
        from callreason.run import suspect_call_ids

        suspects = suspect_call_ids(training_rows(frame, ("train", "val")), small_taxonomy, settings)
        fit_levels(training_rows(frame, ("train",), suspects), training_rows(frame, ("val",)), small_taxonomy,
                   settings, tmp_path / name, tmp_path / "scratch", levels=("level_3",))
        record = RunFolder(tmp_path / name).training_records(("level_3",))["level_3"]
        weights = (tmp_path / name / "level_3" / "model.safetensors").read_bytes()
        return {k: record[k] for k in ("best_epoch", "lexical_weight", "max_length", "train_rows")}, weights

    assert heldout(data, "a") == heldout(relabeled, "b")

    replays = RunFolder(tmp_path / "a").training_records(("level_3",))
    every_row = training_rows(data, ALL_SIDES)
    fit_levels(every_row, every_row.iloc[:0], small_taxonomy, settings, tmp_path / "final", tmp_path / "scratch",
               levels=("level_3",), replays=replays)
    record = json.loads((tmp_path / "final" / "level_3" / "training.json").read_text())
    assert record["train_rows"] == len(data) and record["val_rows"] == 0
    assert record["epochs_run"] == round(replays["level_3"]["best_epoch"])
    assert record["lexical_weight"] == replays["level_3"]["lexical_weight"]


def test_confidence_weighting_weighs_each_rows_loss_by_its_confidence(tiny_model_dir):
    """The batch loss is sum(w_i * loss_i) / sum(w_i): a row at confidence 0.5 counts half a row at 1.0."""
    from callreason.modeling import build_classifier

    model, tokenizer = build_classifier(str(tiny_model_dir), ["a", "b", "c"], pooling="mean", max_length=16,
                                        label_smoothing=0.1)
    batch = tokenizer(["refund order", "password reset", "late fee bill"], padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 2])
    weights = torch.tensor([1.0, 0.5, 0.25])
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                    sample_weight=weights)
        per_row = row_losses(out["logits"].float(), labels, "cross_entropy", 0.1)
    assert out["loss"].item() == pytest.approx(float((per_row * weights).sum() / weights.sum()), rel=1e-6)
    with torch.no_grad():
        dropped = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                        sample_weight=torch.tensor([1.0, 0.0, 0.0]))
    assert dropped["loss"].item() == pytest.approx(per_row[0].item(), rel=1e-6)  # weight 0: the row is ignored


def test_noise_tolerant_losses_cap_the_pull_of_a_row_the_model_finds_unlikely():
    """For a confidently contradicted label, cross-entropy grows without bound; GCE stays below 1/q and
    bootstrapping below cross-entropy; for a row the model already gets right all three are small."""
    logits = torch.tensor([[8.0, 0.0, 0.0], [8.0, 0.0, 0.0]])
    labels = torch.tensor([2, 0])  # row 0: contradicted, row 1: agreed
    ce, gce, boot = (row_losses(logits, labels, kind) for kind in ("cross_entropy", "gce", "bootstrap"))
    assert ce[0] > 7.9 and gce[0] < 1 / 0.7 and boot[0] < ce[0]
    assert max(ce[1], gce[1], boot[1]) < 0.01
    with pytest.raises(ValueError, match="unknown loss"):
        row_losses(logits, labels, "hinge")
    assert np.isfinite(gce.numpy()).all()


def test_class_balance_weights_rare_classes_up_or_adjusts_the_logits():
    from callreason.training import class_balance

    labels = np.array([0] * 8 + [1] * 2)  # class 2 has no rows
    assert class_balance(labels, 3, "none", None) == (None, None, None)
    loss_w, convex_w, adjustment = class_balance(labels, 3, "reweight", None)
    assert loss_w is convex_w and loss_w.mean() == pytest.approx(1.0)
    assert loss_w[labels == 1].sum() == pytest.approx(loss_w[labels == 0].sum())  # each class weighs the same
    loss_w, convex_w, adjustment = class_balance(labels, 3, "logit_adjust", np.full(10, 0.5, np.float32))
    assert (loss_w == 0.5).all() and convex_w[labels == 1].sum() == pytest.approx(convex_w[labels == 0].sum())
    assert adjustment[0] == pytest.approx(np.log(0.8)) and adjustment[1] == pytest.approx(np.log(0.2))
