"""A TF-IDF + logistic regression companion model, blended with the transformer's probabilities.

At ~30 rows per class a bag of n-grams catches exact product words the encoder blurs; the blend
weight is chosen on the validation slice (0 when it does not help). Saved without pickle:
vocabularies in ``lexical.json``, idf and coefficients in ``lexical.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy.sparse import hstack
from scipy.special import log_softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from callreason.calibration import fit_temperature

VECTORIZERS = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "sublinear_tf": True, "min_df": 1, "max_features": 100_000},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2, "max_features": 100_000},
}
FIT_ONLY = ("vocabulary", "max_features", "min_df", "max_df")  # settings that shape the fit, not the transform


def make_vectorizers() -> dict[str, TfidfVectorizer]:
    """The project's one TF-IDF recipe: word 1-2 grams + char_wb 2-5 grams, sublinear tf (the blend companion,
    ``label_issues``' out-of-fold model and the benchmarks' baseline all use it)."""
    return {name: TfidfVectorizer(**kw) for name, kw in VECTORIZERS.items()}


def tfidf_union() -> FeatureUnion:
    """:func:`make_vectorizers` as one scikit-learn transformer (their columns side by side)."""
    return FeatureUnion(list(make_vectorizers().items()))


BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Candidate weights of the TF-IDF companion; 1.0 is the companion alone (for data where a bag of words wins)."""


class LexicalModel:
    """TF-IDF (word 1-2 + char 2-5 grams) + multinomial logistic regression over ``n_classes``."""

    def __init__(self, vectorizers: dict[str, TfidfVectorizer], coef: np.ndarray, intercept: np.ndarray):
        self.vectorizers, self.coef, self.intercept = vectorizers, coef, intercept

    @classmethod
    def fit(cls, texts: list[str], labels: np.ndarray, n_classes: int, c: float = 20.0,
            sample_weight: np.ndarray | None = None) -> "LexicalModel":
        vectorizers = make_vectorizers()
        features = hstack([v.fit_transform(texts) for v in vectorizers.values()]).tocsr()
        probe = LogisticRegression(C=c, max_iter=3000).fit(features, labels, sample_weight=sample_weight)
        coef = np.zeros((n_classes, features.shape[1]), np.float32)
        intercept = np.full(n_classes, -30.0, np.float32)  # classes without rows: never likely
        if len(probe.classes_) == 2:
            coef[probe.classes_] = np.vstack([-probe.coef_[0] / 2, probe.coef_[0] / 2])
            intercept[probe.classes_] = [-probe.intercept_[0] / 2, probe.intercept_[0] / 2]
        else:
            coef[probe.classes_], intercept[probe.classes_] = probe.coef_, probe.intercept_
        return cls(vectorizers, coef, intercept)

    def features(self, texts: list[str]):
        """The TF-IDF features of ``texts``: a sparse ``(n, features)`` matrix."""
        return hstack([v.transform(texts) for v in self.vectorizers.values()]).tocsr()

    @cached_property
    def features_key(self) -> str:
        """A digest of the vectorizers (settings, vocabularies, idf): models with the same key compute the same
        :meth:`features`, so the levels of a run, fitted on the same texts, need them once."""
        digest = hashlib.sha256()
        for name, vectorizer in self.vectorizers.items():
            transform_params = {k: v for k, v in vectorizer.get_params().items() if k not in FIT_ONLY}
            digest.update(json.dumps([name, vectorizer.get_feature_names_out().tolist(),
                                      repr(sorted(transform_params.items()))]).encode())
            digest.update(np.asarray(vectorizer.idf_, np.float64).tobytes())
        return digest.hexdigest()

    def log_proba(self, texts: list[str], features=None) -> np.ndarray:
        """Log-probabilities, shape (n, n_classes); ``features``: :meth:`features` of ``texts`` when already known."""
        features = self.features(texts) if features is None else features
        return log_softmax(features @ self.coef.T + self.intercept, axis=1)

    def save(self, folder: Path) -> None:
        config = {name: {"vocabulary": v.get_feature_names_out().tolist(), **{k: list(x) if isinstance(x, tuple) else x
                                                                             for k, x in VECTORIZERS[name].items()}}
                  for name, v in self.vectorizers.items()}
        (Path(folder) / "lexical.json").write_text(json.dumps(config))
        save_file({"coef": self.coef, "intercept": self.intercept,
                   **{f"idf_{name}": v.idf_.astype(np.float64) for name, v in self.vectorizers.items()}},
                  str(Path(folder) / "lexical.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> "LexicalModel":
        config = json.loads((Path(folder) / "lexical.json").read_text())
        arrays = load_file(str(Path(folder) / "lexical.safetensors"))
        vectorizers = {}
        for name, settings in config.items():
            vocabulary = settings.pop("vocabulary")
            settings.pop("max_features", None)
            settings["ngram_range"] = tuple(settings["ngram_range"])
            vectorizer = TfidfVectorizer(vocabulary=vocabulary, **settings)
            vectorizer.idf_ = arrays[f"idf_{name}"]
            vectorizers[name] = vectorizer
        return cls(vectorizers, arrays["coef"], arrays["intercept"])


def shared_log_probas(models: Sequence[LexicalModel | None], texts: list[str]) -> list[np.ndarray | None]:
    """Each model's :meth:`LexicalModel.log_proba` of ``texts`` (None where the model is None), computing the
    features once per distinct vectorizer fit (:attr:`LexicalModel.features_key`)."""
    features: dict[str, object] = {}
    log_probas = []
    for model in models:
        if model is None:
            log_probas.append(None)
            continue
        if model.features_key not in features:
            features[model.features_key] = model.features(texts)
        log_probas.append(model.log_proba(texts, features[model.features_key]))
    return log_probas


def blend_log_proba(transformer_logits: np.ndarray, lexical_log_proba: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - w) log p_transformer + w log p_lexical``: logits of the blended model, (n, k)."""
    if weight == 0.0:
        return transformer_logits
    return (1.0 - weight) * log_softmax(transformer_logits, axis=1) + weight * lexical_log_proba


def choose_blend_weight(transformer_logits: np.ndarray, lexical_log_proba: np.ndarray, labels: np.ndarray) -> float:
    """The weight in ``BLEND_WEIGHTS`` with the lowest validation log-loss (after temperature scaling)."""
    if len(labels) < 2:
        return 0.0
    losses = []
    for weight in BLEND_WEIGHTS:
        logits = blend_log_proba(transformer_logits, lexical_log_proba, weight)
        t = fit_temperature(logits, labels)
        losses.append(-log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean())
    return float(BLEND_WEIGHTS[int(np.argmin(losses))])
