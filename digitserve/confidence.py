"""How sure a model is: calibrated probabilities and the reasons to doubt an answer.

``Calibrated`` is the last step of the default model's pipeline. It wraps the
fitted ensemble, rescales its probabilities with a temperature fitted on
held-out training digits (so that "80% sure" is right about 80% of the time),
and learns from those digits what a normal answer looks like: how much ink a
digit has, how close it lies to the nearest training digits (which the
ensemble's nearest-neighbours member already searches, and how much of it
that member's projection leaves out), and how confident
the model is. ``doubts`` turns those figures into a reason per image, or
"" when there is none; the server puts it in every reply.

Like every pickled class of the models, a change to what ``Calibrated``
stores changes the artifact format (``digitserve.artifacts.FORMAT_VERSION``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from digitserve.contract import PIXELS
from digitserve.unsure import BLANK, UNDECIDED, UNLIKE



def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The mean gap between confidence and accuracy over equal-width confidence bins, weighted by size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            gap += chosen.sum() * abs(correct[chosen].mean() - confidence[chosen].mean())
    return float(gap / len(labels))


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, 1e-12))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The power on the probabilities (a factor on their logarithms) that minimises the log loss."""
    from scipy.optimize import minimize_scalar

    logs = _log(probabilities)
    rows = np.arange(len(labels))

    def log_loss(log_t: float) -> float:
        return -np.mean(np.log(np.maximum(_softmax(logs * np.exp(log_t))[rows, labels], 1e-12)))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-4, 4), method="bounded").x))


class Calibrated(ClassifierMixin, BaseEstimator):
    """A fitted classifier with temperature-scaled probabilities and learnt limits of normal.

    ``model`` takes the features of ``DigitFeatures`` and has a member named
    ``neighbours``: a pipeline of ``Projection`` and ``NearestNeighbours``.
    How unlike the training digits an image is, is measured there twice: the
    mean distance to its nearest training digits, and the share of its
    features the projection leaves out. ``fit`` learns from held-out digits
    only; the model itself is never refitted, so it may be swapped for one
    trained on more digits afterwards (``set_params(model=...)``).
    ``unlike_quantile`` is the share of held-out digits of each answered
    class allowed beyond each of the two measures, ``undecided_quantile`` the
    share below the confidence limit.
    """

    def __init__(self, model: Any = None, neighbours: str = "knn", unlike_quantile: float = 0.0025,
                 undecided_quantile: float = 0.008):
        self.model = model
        self.neighbours = neighbours
        self.unlike_quantile = unlike_quantile
        self.undecided_quantile = undecided_quantile

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float32)
        self.classes_ = np.asarray(self.model.classes_)
        self.n_features_in_ = X.shape[1]
        self.temperature_ = fit_temperature(self.model.predict_proba(X), np.searchsorted(self.classes_, y))
        probabilities = self.predict_proba(X)
        unlikeness, answers = self.unlikeness(X), probabilities.argmax(axis=1)
        # Per answered digit: a 1 is far more compact than an 8, so a letter
        # read as a 1 stands out sooner than one read as an 8.
        self.max_unlikeness_ = np.stack([np.quantile(unlikeness[answers == c] if (answers == c).sum() > 1
                                                     else unlikeness, 1 - self.unlike_quantile, axis=0)
                                         for c in range(len(self.classes_))])
        self.min_confidence_ = float(np.quantile(probabilities.max(axis=1), self.undecided_quantile))
        # Half the inked pixels of the barest held-out digit is no digit at all.
        self.min_ink_ = float(_inked(X).min() / 2)
        return self

    def predict_proba(self, X):
        return _softmax(_log(self.model.predict_proba(X)) * self.temperature_)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def unlikeness(self, X) -> np.ndarray:
        """(n, 2): mean distance to the nearest training digits, share of features left out by the projection."""
        member = self.model.named_estimators_[self.neighbours]
        member = getattr(member, "estimator", member)  # unwrap a FrozenEstimator
        projection, knn = member[:-1], member[-1]
        dist, _ = knn.kneighbors(projection.transform(X))
        return np.column_stack([dist.mean(axis=1), projection[-1].residuals(X).max(axis=1)])

    def doubts(self, X, probabilities: np.ndarray) -> list[str]:
        """For each image, the first reason to doubt its answer, or ""."""
        X = np.asarray(X, dtype=np.float32)
        blank = _inked(X) < self.min_ink_
        unlike = (self.unlikeness(X) > self.max_unlikeness_[probabilities.argmax(axis=1)]).any(axis=1)
        undecided = probabilities.max(axis=1) < self.min_confidence_
        return [BLANK if b else UNLIKE if u else UNDECIDED if d else ""
                for b, u, d in zip(blank.tolist(), unlike.tolist(), undecided.tolist())]


def _inked(X: np.ndarray) -> np.ndarray:
    """Pixels more than half inked, of the 784 deskewed pixels (0..1) that start the features."""
    return (X[:, :PIXELS] > 0.5).sum(axis=1)


def doubts(estimator: Any, images: np.ndarray, probabilities: np.ndarray) -> list[str]:
    """Why to doubt each answer of a served pipeline ("" for none).

    Models without a ``Calibrated`` last step have learnt no limits and are
    never doubted.
    """
    last = estimator[-1] if hasattr(estimator, "steps") else None
    if not isinstance(last, Calibrated):
        return [""] * len(images)
    return last.doubts(estimator[:-1].transform(images), probabilities)
