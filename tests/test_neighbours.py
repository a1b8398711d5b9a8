"""The nearest-neighbour companion: its vote, its blend, its files, and that every inference path uses it."""

import numpy as np
import torch
from safetensors.torch import load_file

from callreason.modeling import build_classifier, load_classifier, run_batched, save_classifier
from callreason.neighbours import FILE, FLOOR, K_NEIGHBOURS, NeighbourIndex, blend_neighbours

LABELS = ["a", "b", "c"]
TEXTS = ["card lost", "refund order late", "password reset login agent customer called", "bill payment"]


def test_the_vote_follows_the_nearest_rows_and_never_reaches_zero():
    vectors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    index = NeighbourIndex(vectors, torch.tensor([0, 0, 2, 2]), n_classes=3)
    log_p = index.log_proba(torch.tensor([[5.0, 0.2], [0.1, 3.0]]))  # scale does not matter (cosine)
    assert log_p.argmax(1).tolist() == [0, 2]
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(2))
    assert log_p[:, 1].exp().min() >= FLOOR / 3 - 1e-7  # class 1 has no row: the floor, not -inf


def test_only_the_k_nearest_rows_vote():
    near, far = [1.0, 0.0], [0.6, 0.8]
    vectors = torch.tensor([near] * K_NEIGHBOURS + [far] * 50)  # 50 class-1 rows, all further away
    labels = torch.tensor([0] * K_NEIGHBOURS + [1] * 50)
    log_p = NeighbourIndex(vectors, labels, n_classes=2).log_proba(torch.tensor([near]))
    assert log_p.exp()[0, 0] > 1 - FLOOR


def test_the_blend_is_the_documented_weighted_sum_and_off_at_weight_zero():
    head = torch.tensor([[2.0, 0.0, -1.0]])
    index = NeighbourIndex(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([2, 1]), n_classes=3)
    pooled = torch.tensor([[1.0, 0.0]])
    expected = 0.7 * torch.log_softmax(head, 1) + 0.3 * index.log_proba(pooled)
    torch.testing.assert_close(blend_neighbours(head, pooled, index, 0.3), expected)
    assert blend_neighbours(head, pooled, index, 0.0) is head and blend_neighbours(head, pooled, None, 0.5) is head


def test_a_model_with_neighbours_saves_them_and_every_inference_path_uses_them(tmp_path, tiny_model_dir):
    from callreason.modeling import predict_logits, run_batched_shared

    model, tokenizer = build_classifier(str(tiny_model_dir), LABELS, pooling="mean", max_length=32)
    with torch.no_grad():  # a head that picks class 0 for every text, whatever the random state the tests left
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    plain = run_batched(model, tokenizer, TEXTS, batch_size=2)
    pooled = run_batched(model, tokenizer, TEXTS, batch_size=2, output="pooled")
    model.neighbours = NeighbourIndex(torch.from_numpy(pooled), torch.tensor([2, 2, 2, 2]), len(LABELS))
    model.classifier_config.knn_weight = 0.5
    blended = run_batched(model, tokenizer, TEXTS, batch_size=3)
    assert (blended.argmax(1) == 2).all() and not (plain.argmax(1) == 2).all()

    save_classifier(model, tokenizer, tmp_path / "m")
    assert (tmp_path / "m" / FILE).exists()
    loaded, loaded_tok = load_classifier(tmp_path / "m")
    assert loaded.classifier_config.knn_weight == 0.5
    assert load_file(str(tmp_path / "m" / FILE))["vectors"].dtype == torch.float16  # half the disk
    np.testing.assert_allclose(predict_logits(loaded, loaded_tok, TEXTS), blended, atol=1e-3)
    other, _ = build_classifier(str(tiny_model_dir), ["x", "y"], pooling="mean", max_length=32)
    shared = run_batched_shared([loaded, other], loaded_tok, TEXTS, depth=1, batch_size=3)
    np.testing.assert_allclose(shared[0], blended, atol=1e-3)


def test_fit_level_indexes_its_training_rows_only_when_knn_weight_is_set(tmp_path, tiny_params, small_taxonomy):
    from callreason.dataset import encode_dataset
    from callreason.params import settings_from_params
    from callreason.training import fit_level
    from tests.conftest import make_labeled_rows

    dataset, _ = encode_dataset(make_labeled_rows(40), small_taxonomy, 0.2, 0.25, 42, 1)
    train, val = dataset[dataset["split"] == "train"], dataset[dataset["split"] == "val"]
    for weight in (0.0, 0.2):
        tiny_params["train"]["knn_weight"] = weight
        folder = tmp_path / f"w{weight}"
        fit_level("level_3", train, val, small_taxonomy.labels["level_3"], settings_from_params(tiny_params),
                  folder, None, tmp_path / "work")
        model, _ = load_classifier(folder)
        assert model.classifier_config.knn_weight == weight
        if weight == 0.0:
            assert not (folder / FILE).exists() and model.neighbours is None
        else:
            assert model.neighbours.labels.tolist() == train["level_3_id"].tolist()
