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
