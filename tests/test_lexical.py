import numpy as np
from scipy.special import log_softmax

from callreason.lexical import LexicalModel, blend_log_proba, choose_blend_weight

TEXTS = ["refund my order", "order refund late", "card stolen today", "stolen card blocked", "password reset",
         "reset password now"]
LABELS = np.array([0, 0, 2, 2, 3, 3])


def test_lexical_model_round_trips_without_pickle(tmp_path):
    model = LexicalModel.fit(TEXTS * 3, np.tile(LABELS, 3), n_classes=4)
    model.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"lexical.json", "lexical.safetensors"}
    loaded = LexicalModel.load(tmp_path)
    new = ["my refund is late", "card was stolen", "password"]
    np.testing.assert_allclose(loaded.log_proba(new), model.log_proba(new), atol=1e-5)
    assert (loaded.log_proba(new).argmax(1) == [0, 2, 3]).all()
    assert (loaded.log_proba(new)[:, 1] < -10).all()  # a class without rows is never likely


def test_blend_weight_is_zero_when_the_lexical_model_is_useless_and_positive_when_it_helps():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    good = np.eye(4)[labels] * 4 + rng.normal(0, 1, (200, 4))
    noise = rng.normal(0, 1, (200, 4))
    assert choose_blend_weight(good, log_softmax(noise * 3, axis=1), labels) == 0.0
    weak = np.eye(4)[labels] * 0.5 + rng.normal(0, 1, (200, 4))
    assert choose_blend_weight(weak, log_softmax(good, axis=1), labels) > 0.0
    np.testing.assert_array_equal(blend_log_proba(good, noise, 0.0), good)


def test_levels_fitted_on_the_same_texts_compute_their_features_once(tmp_path, monkeypatch):
    from callreason.lexical import shared_log_probas

    texts = TEXTS * 3
    coarse = LexicalModel.fit(texts, np.tile([0, 0, 1, 1, 1, 1], 3), n_classes=2)
    fine = LexicalModel.fit(texts, np.tile(LABELS, 3), n_classes=4)
    fine.save(tmp_path)
    reloaded = LexicalModel.load(tmp_path)  # a level loaded from its folder matches a fit of the same texts
    other = LexicalModel.fit(texts[:8], np.tile(LABELS, 3)[:8], n_classes=4)  # another vocabulary
    assert coarse.features_key == fine.features_key == reloaded.features_key != other.features_key
    new = ["my refund is late", "card was stolen", "password"]
    expected = [coarse.log_proba(new), fine.log_proba(new), None, other.log_proba(new)]
    calls = []
    original = LexicalModel.features
    monkeypatch.setattr(LexicalModel, "features", lambda self, t: calls.append(self) or original(self, t))
    shared = shared_log_probas([coarse, reloaded, None, other], new)
    assert len(calls) == 2  # one for the three alike, one for the other vocabulary
    assert shared[2] is None
    for got, want in zip([shared[0], shared[1], shared[3]], [expected[0], expected[1], expected[3]]):
        np.testing.assert_allclose(got, want, atol=1e-5)
