"""How sure a model is: calibrated probabilities and the reasons to doubt an answer.

``Calibrated`` is the last step of the default model's pipeline. It wraps the
fitted ensemble, rescales its probabilities with a temperature fitted on
held-out training digits (so that "80% sure" is right about 80% of the time),
and learns from those digits what a normal answer looks like: how much ink a
digit has, how close it lies to the nearest training digits (which the
ensemble's nearest-neighbours member already searches, and how much of it
that member's projection leaves out), how much it looks like a non-digit to
a small learnt judge of shapes, and how confident the model is. ``assess``
answers a batch with probabilities and a reason to doubt each answer ("" when
there is none) in one pass over the members; the server puts both in every
reply.

Like every pickled class of the models, a change to what ``Calibrated``
stores changes the artifact format (``digitserve.artifacts.FORMAT_VERSION``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from digitserve.contract import IMAGE_SIDE, PIXELS
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

    ``model`` is a soft ``VotingClassifier`` over pipelines that take the
    features of ``DigitFeatures``; its member ``neighbours`` is a pipeline of
    ``Projection`` and ``NearestNeighbours``, and its member ``shapes`` starts
    with a ``Projection``. How unlike the training digits an image is, is
    measured three ways: the mean distance to its nearest training digits, the
    share of its features the neighbours' projection leaves out, and how sure a
    small network (``hidden`` units; on the ``shapes`` member's projection, what
    it leaves out and the features themselves, see ``_shape``) is that the image
    is no digit. That network learns from training digits against drawn
    non-digits (trainer.nondigits) and keeps the projection it learnt on; the
    limits learn from held-out digits only. The
    model itself is never refitted, so it may be swapped for one trained on
    more digits afterwards (``set_params(model=...)``). ``unlike_quantiles`` are the shares of held-out
    digits of each answered class allowed beyond each measure (distance, left out, rejection),
    ``undecided_quantile`` the share below the confidence limit. The judge is
    ``judges`` networks, each from its own seed, folded into one that answers
    their mean (``_fit_rejecter``).
    """

    def __init__(self, model: Any = None, neighbours: str = "knn", shapes: str = "svm",
                 unlike_quantiles: tuple[float, float, float] = (0.001, 0.001, 0.006),
                 undecided_quantile: float = 0.002, hidden: int = 64, judges: int = 4,
                 random_state: int = 0):
        self.model = model
        self.neighbours = neighbours
        self.shapes = shapes
        self.unlike_quantiles = unlike_quantiles
        self.undecided_quantile = undecided_quantile
        self.hidden = hidden
        self.judges = judges
        self.random_state = random_state

    def fit(self, X, y, digits: np.ndarray, non_digits: np.ndarray, n_jobs: int = 1):
        """Learn from held-out digits ``X``, ``y``; the judge of shapes from ``digits`` against ``non_digits``.

        All three are features of ``DigitFeatures``; ``digits`` may be the
        members' own training digits (and digits drawn anew from them): the
        limits are learnt from ``X`` alone. ``n_jobs`` processes fit the
        judge's networks side by side.
        """
        X = np.asarray(X, dtype=np.float32)
        self.classes_ = np.asarray(self.model.classes_)
        self.n_features_in_ = X.shape[1]
        # The judge's own copy: a swapped-in model's projection is fitted anew, and its
        # components may come out in another order or with flipped signs.
        self.shape_projection_ = self._member(self.shapes)[0]
        self.rejecter_ = self._fit_rejecter(np.asarray(digits, np.float32), np.asarray(non_digits, np.float32),
                                            n_jobs)
        raw, unlikeness = self._pass(X)
        self.temperature_ = fit_temperature(raw, np.searchsorted(self.classes_, y))
        probabilities = self._scaled(raw)
        answers = probabilities.argmax(axis=1)
        # Per answered digit: a 1 is far more compact than an 8, so a letter
        # read as a 1 stands out sooner than one read as an 8. Most of the
        # share of digits doubted goes to the judge of shapes, which tells
        # non-digits best; little to a low confidence, which mostly doubts
        # digits drawn unlike MNIST's (0.2%: at 0.4% it doubted 0.2% more
        # held-out digits and not one letter more).
        keep = 1 - np.asarray(self.unlike_quantiles)
        self.max_unlikeness_ = np.stack([_column_quantiles(unlikeness[answers == c] if (answers == c).sum() > 1
                                                           else unlikeness, keep)
                                         for c in range(len(self.classes_))])
        self.min_confidence_ = float(np.quantile(probabilities.max(axis=1), self.undecided_quantile))
        # Half the inked pixels of the barest held-out digit is no digit at all.
        self.min_ink_ = float(_inked(X).min() / 2)
        return self

    def _fit_rejecter(self, digits: np.ndarray, non_digits: np.ndarray, n_jobs: int = 1) -> list[np.ndarray]:
        """The judge of shapes as plain arrays: [weights, bias] per layer, the input scaling folded in.

        One network's answers on the rare held-out digits that set the limits
        (the 0.6% that look least like digits) hang on its seed: with seeds 0,
        1 and 2, 83.7% to 89.9% of the fonts' letters were flagged, and a
        class's limit moved from 0.2 to 0.95. The mean of ``judges`` networks
        (each more regularised, alpha 1e-2 rather than 1e-3) moved far less:
        91.8% and 93.3% for two sets of seeds.
        """
        from joblib import Parallel, delayed
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        shapes = np.vstack([self._shape(digits), self._shape(non_digits)])
        scaler = StandardScaler().fit(shapes)
        scaled, labels = scaler.transform(shapes), np.r_[np.zeros(len(digits)), np.ones(len(non_digits))]
        # Each network is fitted in one thread of its own process: most of its time is small
        # products that a second thread per product would hardly speed up.
        networks = Parallel(n_jobs=min(n_jobs, self.judges))(
            delayed(MLPClassifier((self.hidden,), alpha=1e-2, max_iter=300,
                                  random_state=100 * self.random_state + j).fit)(scaled, labels)
            for j in range(self.judges))
        return average_networks([fold_network(scaler, net) for net in networks])

    def _member(self, name: str):
        member = self.model.named_estimators_[name]
        return getattr(member, "estimator", member)  # unwrap a FrozenEstimator

    def _shape(self, X: np.ndarray) -> np.ndarray:
        """What the judge of shapes sees: its projection of the features, the shares it leaves out,
        the pixels pooled 2x2 and the gradient histograms.

        The projection keeps what digits have in common; a J's hook or a Q's
        tail is in what it leaves out, so the judge sees the features
        themselves too (the pixels coarser: 196 instead of 784 numbers).
        """
        half = IMAGE_SIDE // 2
        pooled = X[:, :PIXELS].reshape(-1, half, 2, half, 2).mean(axis=(2, 4)).reshape(len(X), half * half)
        return np.hstack([self.shape_projection_.transform(X), self.shape_projection_.residuals(X), pooled,
                          X[:, PIXELS:]])

    def rejection(self, shape: np.ndarray) -> np.ndarray:
        """How sure the judge of shapes is that each image is no digit, 0..1."""
        return network_output(self.rejecter_, shape)

    def _unlikeness(self, X: np.ndarray, dist: np.ndarray, shape: np.ndarray) -> np.ndarray:
        """(n, 3): mean neighbour distance, share left out by the neighbours' projection, rejection."""
        left_out = self._member(self.neighbours)[0].residuals(X).max(axis=1)
        return np.column_stack([dist.mean(axis=1), left_out, self.rejection(shape)])

    def _pass(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vote's raw probabilities and the unlikeness of each image, each member run once.

        The same arithmetic as ``VotingClassifier.predict_proba``, except that
        the neighbours member votes from the search the unlikeness needs too.
        """
        probabilities, dist = [], None
        for name in self.model.named_estimators_:
            member = self._member(name)
            projected = X
            for _, step in member.steps[:-1]:
                projected = step.transform(projected)
            last = member.steps[-1][1]
            if name == self.neighbours:
                dist, idx = last.kneighbors(projected)
                probabilities.append(last.vote(dist, idx))
            else:
                probabilities.append(last.predict_proba(projected))
        raw = np.average(probabilities, axis=0, weights=self.model.weights)
        return raw, self._unlikeness(X, dist, self._shape(X))

    def _scaled(self, raw: np.ndarray) -> np.ndarray:
        return _softmax(_log(raw) * self.temperature_)

    def predict_proba(self, X):
        return self._scaled(self.model.predict_proba(X))

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def assess(self, X) -> tuple[np.ndarray, list[str]]:
        """The calibrated probabilities of each image and the first reason to doubt its answer, or ""."""
        X = np.asarray(X, dtype=np.float32)
        raw, unlikeness = self._pass(X)
        probabilities = self._scaled(raw)
        return probabilities, self._reasons(X, probabilities, unlikeness)

    def doubts(self, X, probabilities: np.ndarray) -> list[str]:
        """The reasons to doubt answers already computed, searching the neighbours once more.

        What ``assess`` does in one pass, in two (benchmarks and tests compare them).
        """
        X = np.asarray(X, dtype=np.float32)
        neighbours = self._member(self.neighbours)
        dist, _ = neighbours[-1].kneighbors(neighbours[:-1].transform(X))
        return self._reasons(X, probabilities, self._unlikeness(X, dist, self._shape(X)))

    def _reasons(self, X: np.ndarray, probabilities: np.ndarray, unlikeness: np.ndarray) -> list[str]:
        blank = _inked(X) < self.min_ink_
        unlike = (unlikeness > self.max_unlikeness_[probabilities.argmax(axis=1)]).any(axis=1)
        undecided = probabilities.max(axis=1) < self.min_confidence_
        return [BLANK if b else UNLIKE if u else UNDECIDED if d else ""
                for b, u, d in zip(blank.tolist(), unlike.tolist(), undecided.tolist())]


def fold_network(scaler: Any, net: Any) -> list[np.ndarray]:
    """A ``StandardScaler`` and a one-hidden-layer binary ``MLPClassifier`` as four float32 arrays.

    scikit-learn spends about half a millisecond dispatching one image
    through them; ``network_output`` computes the same in microseconds.
    """
    (w1, w2), (b1, b2) = net.coefs_, net.intercepts_
    w1 = w1 / scaler.scale_[:, None]
    b1 = b1 - scaler.mean_ @ w1
    return [a.astype(np.float32) for a in (w1, b1, w2[:, 0], b2)]


def average_networks(networks: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Folded networks as one whose output's logit is the mean of theirs: their hidden units side by side."""
    return [np.hstack([n[0] for n in networks]), np.hstack([n[1] for n in networks]),
            np.hstack([n[2] for n in networks]) / len(networks),
            np.mean([n[3] for n in networks], axis=0).astype(np.float32)]


def network_output(layers: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """What ``fold_network``'s network answers for ``x``: its probability of the second class."""
    w1, b1, w2, b2 = layers
    # The logistic function as a tanh, which cannot overflow for a very sure answer.
    return 0.5 + 0.5 * np.tanh(0.5 * (np.maximum(x @ w1 + b1, 0) @ w2 + b2))


def _column_quantiles(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each column's own quantile of ``values``."""
    return np.array([np.quantile(column, q) for column, q in zip(values.T, quantiles)])


def _inked(X: np.ndarray) -> np.ndarray:
    """Pixels more than half inked, of the 784 deskewed pixels (0..1) that start the features."""
    return (X[:, :PIXELS] > 0.5).sum(axis=1)


def assess(estimator: Any, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A served pipeline's probabilities for ``images`` (float32) and why to doubt each answer ("" for none).

    A pipeline ending in ``Calibrated`` computes its features and searches its
    neighbours once for both. Other models have learnt no limits and are
    never doubted.
    """
    last = estimator[-1] if hasattr(estimator, "steps") else None
    if isinstance(last, Calibrated):
        probabilities, reasons = last.assess(estimator[:-1].transform(images))
    else:
        probabilities, reasons = estimator.predict_proba(images), [""] * len(images)
    return np.asarray(probabilities, dtype=np.float32), reasons
