"""The building blocks of every served model.

Each class is a scikit-learn estimator, so a model is a plain ``Pipeline`` of
these and is fitted, pickled and called like any other. ``DigitFeatures`` is
the features themselves. The other classes keep the fitting to scikit-learn
and answer queries with a few numpy operations, because the stock objects
they stand in for spend 0.2-2 ms per call on dispatch and validation, more
than the computing itself; ``python -m bench.estimators`` measures each
against its stock counterpart, tests/test_estimators.py checks they give the
same answers, and a class stays here only while the figures say it is needed
(the soft vote did not: ensembles use scikit-learn's ``VotingClassifier``).

The server unpickles artifacts built from these classes, so they live in the
shared package that both the trainer and the server install. Changing what
a class stores or computes changes the artifact format: bump
``digitserve.artifacts.FORMAT_VERSION`` so older artifacts are refused with
"retrain it" instead of answering wrongly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from digitserve.contract import IMAGE_SIDE, PIXELS

_COORD = np.arange(IMAGE_SIDE, dtype=np.float32)
_COLUMNS = np.arange(IMAGE_SIDE)


def _shift_rows(images: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift every row of every image sideways by a fractional amount.

    ``images`` is (n, rows, 28) float32 and ``shift`` is (n, rows); the result
    samples ``images[k, r, c + shift[k, r]]`` with linear interpolation and
    zeros outside the image.
    """
    n, rows, _ = images.shape
    width = IMAGE_SIDE * 3 + 1
    padded = np.zeros((n, rows, width), np.float32)
    padded[:, :, IMAGE_SIDE : 2 * IMAGE_SIDE] = images
    whole = np.floor(shift)
    frac = (shift - whole).astype(np.float32)[:, :, None]
    start = np.clip(whole.astype(np.intp) + IMAGE_SIDE, 0, 2 * IMAGE_SIDE)
    offsets = (np.arange(n * rows).reshape(n, rows) * width + start)[:, :, None] + _COLUMNS
    flat = padded.reshape(-1)
    left = np.take(flat, offsets)
    right = np.take(flat, offsets + 1)
    left *= 1 - frac
    right *= frac
    left += right
    return left


def deskew(images: np.ndarray) -> np.ndarray:
    """Straighten slanted digits and centre their ink, as (n, 784) float32.

    The slant is the covariance of the ink's row and column coordinates over
    the variance of its rows (second image moments); every row is shifted
    sideways to undo it and the centre of mass is moved to the centre.
    """
    x = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    row_mass = x.sum(axis=2)
    col_mass = x.sum(axis=1)
    total = row_mass.sum(axis=1) + 1e-6
    centre_row = row_mass @ _COORD / total
    centre_col = col_mass @ _COORD / total
    dr = _COORD[None, :] - centre_row[:, None]
    dc = _COORD[None, :] - centre_col[:, None]
    var_rows = (row_mass * dr**2).sum(axis=1) / total
    cov = (np.matmul(x, dc[:, :, None])[:, :, 0] * dr).sum(axis=1) / total
    slant = np.clip(cov / np.maximum(var_rows, 1e-6), -1.0, 1.0)
    half = IMAGE_SIDE / 2
    vertical = np.repeat((centre_row - half)[:, None], IMAGE_SIDE, axis=1)
    centred = _shift_rows(x.transpose(0, 2, 1), vertical).transpose(0, 2, 1)
    sideways = slant[:, None] * (_COORD[None, :] - half) + (centre_col - half)[:, None]
    return _shift_rows(np.ascontiguousarray(centred), sideways).reshape(-1, PIXELS)


GRADIENT_BINS = 8
GRADIENT_CELLS = 7  # a 7x7 grid of pooling centres, 4 px apart
GRADIENT_SPREAD = 2.5  # px: the standard deviation of the Gaussian each centre pools with
GRADIENT_FEATURES = GRADIENT_BINS * GRADIENT_CELLS**2


def _pooling_weights() -> np.ndarray:
    """How much each pixel row (or column) counts at each pooling centre: (7, 28)."""
    spacing = IMAGE_SIDE / GRADIENT_CELLS
    centres = spacing * np.arange(GRADIENT_CELLS) + (spacing - 1) / 2
    return np.exp(-((_COORD[None, :] - centres[:, None]) ** 2) / (2 * GRADIENT_SPREAD**2)).astype(np.float32)


_POOL = _pooling_weights()


def gradient_histograms(images: np.ndarray) -> np.ndarray:
    """Stroke directions: histograms of gradient orientation pooled around a 7x7 grid of centres.

    Each pixel's gradient votes with its magnitude into the two nearest of 8
    orientation bins; each centre sums the votes weighted by a Gaussian of
    2.5 px around it, so a stroke that moves by a pixel changes the
    histograms a little instead of jumping from one square cell to the next
    (on held-out training digits this cut the nearest neighbours' and the
    SVM's errors by 15% and the forest's by 31% against sums over 4x4-pixel
    squares). The square root of the sums tames strong edges. The result
    (392 values) describes the shape of the strokes rather than where their
    ink lies, which is what nearest neighbours and kernels compare best.
    """
    x = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    n = len(x)
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    np.subtract(x[:, :, 2:], x[:, :, :-2], out=gx[:, :, 1:-1])
    np.subtract(x[:, 2:, :], x[:, :-2, :], out=gy[:, 1:-1, :])
    magnitude = np.sqrt(gx * gx + gy * gy)
    position = (np.arctan2(gy, gx) + np.pi) * (GRADIENT_BINS / (2 * np.pi))
    out = np.empty((n, GRADIENT_BINS, GRADIENT_CELLS, GRADIENT_CELLS), np.float32)
    for b in range(GRADIENT_BINS):
        distance = np.abs(position - b)
        np.minimum(distance, GRADIENT_BINS - distance, out=distance)
        weight = np.maximum(1 - distance, 0, out=distance)
        weight *= magnitude
        out[:, b] = _POOL @ weight @ _POOL.T
    return np.sqrt(out.reshape(n, -1))


class DigitFeatures(TransformerMixin, BaseEstimator):
    """The first step of every model: deskewed pixels (0..1), then stroke directions.

    Output columns: 784 deskewed, centred pixels scaled to 0..1, followed by
    the 392 gradient histograms of those pixels.
    """

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        if self.n_features_in_ != PIXELS:
            raise ValueError(f"expected {PIXELS} pixels per image, got {self.n_features_in_}")
        return self

    def transform(self, X):
        pixels = deskew(X)
        pixels *= 1 / 255
        return np.hstack([pixels, gradient_histograms(pixels)])


class Projection(TransformerMixin, BaseEstimator):
    """Principal components of the pixel part and of the gradient part, side by side.

    Each part is scaled to unit total variance so neither dominates a
    distance. ``0`` components leaves a part out.
    """

    def __init__(self, pixel_components: int = 40, gradient_components: int = 40, random_state: int = 0):
        self.pixel_components = pixel_components
        self.gradient_components = gradient_components
        self.random_state = random_state

    def _parts(self):
        return ((slice(0, PIXELS), self.pixel_components),
                (slice(PIXELS, PIXELS + GRADIENT_FEATURES), self.gradient_components))

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        self.means_, self.bases_ = [], []
        for columns, k in self._parts():
            if k:
                pca = PCA(k, random_state=self.random_state).fit(X[:, columns])
                scale = 1 / np.sqrt(pca.explained_variance_.sum())
                self.means_.append(pca.mean_.astype(np.float32))
                self.bases_.append((pca.components_.T * scale).astype(np.float32))
            else:
                self.means_.append(None)
                self.bases_.append(None)
        return self

    def residuals(self, X) -> np.ndarray:
        """The share of each image's features, per part, that the components leave out: (n, parts), 0..1.

        Digits like the training digits are mostly made of the components; a
        letter or a scribble leaves more out (digitserve.confidence uses it).
        """
        X = np.asarray(X, dtype=np.float32)
        shares = []
        for (columns, _), mean, basis in zip(self._parts(), self.means_, self.bases_):
            if basis is None:
                continue
            centred = X[:, columns] - mean
            # The basis columns are orthogonal components all scaled alike: undo the scale.
            unit = basis / np.linalg.norm(basis[:, 0])
            left = centred - (centred @ unit) @ unit.T
            shares.append(np.sqrt(np.einsum("ij,ij->i", left, left)
                                  / np.maximum(np.einsum("ij,ij->i", centred, centred), 1e-12)))
        return np.stack(shares, axis=1)

    def transform(self, X):
        X = np.asarray(X, dtype=np.float32)
        return np.hstack([(X[:, columns] - mean) @ basis
                          for (columns, _), mean, basis in zip(self._parts(), self.means_, self.bases_)
                          if basis is not None])


class NearestNeighbours(ClassifierMixin, BaseEstimator):
    """k-nearest neighbours voting with inverse-distance weights.

    Small batches (a drawing, a single request) are answered by one
    matrix-vector product and a partial sort, where scikit-learn's
    ``KNeighborsClassifier`` spends most of a millisecond dispatching; large
    batches go to that same classifier, which is as fast as ours there.
    """

    def __init__(self, n_neighbors: int = 4, small_batch: int = 32):
        self.n_neighbors = n_neighbors
        self.small_batch = small_batch

    def fit(self, X, y):
        points = np.ascontiguousarray(X, dtype=np.float32)
        self.classes_, self.labels_ = np.unique(y, return_inverse=True)
        self.points_ = points
        self.n_features_in_ = points.shape[1]
        self._index()
        return self

    def _index(self) -> None:
        self.sq_norms_ = np.einsum("ij,ij->i", self.points_, self.points_)
        self.search_ = KNeighborsClassifier(self.n_neighbors, weights="distance", algorithm="brute")
        self.search_.fit(self.points_, self.labels_)

    def __getstate__(self):
        # Points are stored as float16, halving the artifact (they are the bulk
        # of it and compress poorly); the search structures are rebuilt on load.
        state = self.__dict__.copy()
        state.pop("search_", None)
        state.pop("sq_norms_", None)
        state["points_"] = self.points_.astype(np.float16)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.points_ = self.points_.astype(np.float32)
        self._index()

    def kneighbors(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of the k nearest training points."""
        q = np.asarray(X, dtype=np.float32)
        k = self.n_neighbors
        if len(q) > self.small_batch:
            return self.search_.kneighbors(q, k)
        d2 = self.sq_norms_[None, :] - 2 * (q @ self.points_.T)
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(d2, idx, axis=1) + np.einsum("ij,ij->i", q, q)[:, None]
        order = np.argsort(part, axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
        dist = np.sqrt(np.maximum(np.take_along_axis(part, order, axis=1), 0))
        return dist, idx

    def vote(self, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Class probabilities from the neighbours ``kneighbors`` found, each weighted by 1 / distance.

        Apart so that a caller that needs the neighbours anyway
        (digitserve.confidence) searches once and votes with the same rule.
        """
        weights = 1.0 / np.maximum(dist, 1e-6)
        votes = np.zeros((len(dist), len(self.classes_)))
        np.add.at(votes, (np.arange(len(dist))[:, None], self.labels_[idx]), weights)
        return votes / votes.sum(axis=1, keepdims=True)

    def predict_proba(self, X):
        return self.vote(*self.kneighbors(X))

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class KernelSVM(ClassifierMixin, BaseEstimator):
    """An RBF support vector machine with calibrated class probabilities.

    Fitting is libsvm's (``SVC``). Queries evaluate the kernel against all
    support vectors with one matrix product, several times faster than
    libsvm's per-vector loop. Probabilities are soft one-vs-one votes (each of
    the 45 pairwise decisions votes ``sigmoid(sharpness * decision)`` for its
    first class and the rest for its second) turned into a softmax whose
    temperature is fitted on a held-out part of the training set: cheaper than
    ``SVC(probability=True)``, which fits five extra models, and its most
    probable class is the voting winner.

    ``fit`` may be given ``virtual``: a function from rows of ``X`` to
    features and labels of altered copies of those training digits (the
    trainer's turned copies). Each fit is then followed by a second one on
    its support vectors and their copies, and that second model is the one
    kept (virtual support vectors, DeCoste and Schölkopf 2002).
    """

    def __init__(self, C: float = 5.0, gamma="scale", sharpness: float = 4.0,
                 calibration_size: float = 0.1, random_state: int = 0):
        self.C = C
        self.gamma = gamma
        self.sharpness = sharpness
        self.calibration_size = calibration_size
        self.random_state = random_state

    def fit(self, X, y, virtual: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None):
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y)
        fit_rows, cal_rows = train_test_split(np.arange(len(y)), test_size=self.calibration_size, stratify=y,
                                              random_state=self.random_state)
        self._pack(self._fit_svc(X, y, fit_rows, virtual))
        self.temperature_ = _fit_temperature(self.votes(X[cal_rows]), np.searchsorted(self.classes_, y[cal_rows]))
        self._pack(self._fit_svc(X, y, np.arange(len(y)), virtual))
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_svc(self, X, y, rows: np.ndarray, virtual) -> SVC:
        """libsvm's model of ``X[rows]``; with ``virtual``, refitted on its support vectors and their copies."""
        def svc() -> SVC:
            return SVC(C=self.C, gamma=self.gamma, kernel="rbf", cache_size=1000)

        first = svc().fit(X[rows], y[rows])
        if virtual is None:
            return first
        support = rows[first.support_]
        copies_x, copies_y = virtual(support)
        return svc().fit(np.vstack([X[support], copies_x]), np.concatenate([y[support], copies_y]))

    def _pack(self, svc: SVC) -> None:
        """Turn libsvm's one-vs-one model into a (support vectors x pairs) weight matrix."""
        self.classes_ = svc.classes_
        n_classes = len(self.classes_)
        bounds = np.concatenate([[0], np.cumsum(svc.n_support_)])
        pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
        weights = np.zeros((len(svc.support_vectors_), len(pairs)), np.float32)
        first = np.zeros((len(pairs), n_classes), np.float32)
        second = np.zeros((len(pairs), n_classes), np.float32)
        for p, (i, j) in enumerate(pairs):
            weights[bounds[i] : bounds[i + 1], p] = svc.dual_coef_[j - 1, bounds[i] : bounds[i + 1]]
            weights[bounds[j] : bounds[j + 1], p] = svc.dual_coef_[i, bounds[j] : bounds[j + 1]]
            first[p, i] = second[p, j] = 1
        self.support_vectors_ = svc.support_vectors_.astype(np.float32)
        self.pair_weights_ = weights
        self.pair_first_ = first
        self.pair_second_ = second
        self.intercept_ = svc.intercept_.astype(np.float32)
        self.gamma_ = np.float32(svc._gamma)

    def __getstate__(self):
        # Support vectors are stored as float16, as the neighbours' points are: they are most of the
        # artifact and compress poorly. On MNIST test digits that moved decisions by at most 0.006
        # and changed no answer.
        state = self.__dict__.copy()
        if "support_vectors_" in state:
            state["support_vectors_"] = self.support_vectors_.astype(np.float16)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "support_vectors_" in state:
            self.support_vectors_ = self.support_vectors_.astype(np.float32)

    def decision_function(self, X) -> np.ndarray:
        """The 45 one-vs-one decision values, as ``SVC(decision_function_shape='ovo')``."""
        q = np.asarray(X, dtype=np.float32)
        sv = self.support_vectors_
        d2 = np.einsum("ij,ij->i", q, q)[:, None] - 2 * (q @ sv.T)
        d2 += np.einsum("ij,ij->i", sv, sv)[None, :]
        np.maximum(d2, 0, out=d2)
        d2 *= -self.gamma_
        np.exp(d2, out=d2)
        return d2 @ self.pair_weights_ + self.intercept_

    def votes(self, X) -> np.ndarray:
        """Soft one-vs-one votes per class, 0..9 each."""
        won = 1 / (1 + np.exp(-self.sharpness * self.decision_function(X)))
        return won @ self.pair_first_ + (1 - won) @ self.pair_second_

    def predict_proba(self, X):
        return _softmax(self.votes(X) * self.temperature_)

    def predict(self, X):
        return self.classes_[self.votes(X).argmax(axis=1)]


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The factor on the scores that minimises the log loss of their softmax."""
    from scipy.optimize import minimize_scalar

    def log_loss(log_t: float) -> float:
        p = _softmax(scores * np.exp(log_t))
        return -np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12)))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-5, 5), method="bounded").x))


class PackedForest(ClassifierMixin, BaseEstimator):
    """A random forest whose trees are packed into flat arrays.

    Fitting is scikit-learn's. A query walks all trees at once, one level per
    step, instead of calling each tree in turn. Nodes are renumbered so that
    a node's two children sit side by side: one step is ``children_[node] +
    (x > threshold)``. A leaf is its own child with an infinite threshold, so
    walks that have arrived stay put; every few levels they are dropped from
    the batch, since most walks end well above the deepest leaf.
    """

    # Levels between dropping finished walks: dropping costs a pass over the
    # batch; on MNIST forests every 5-6 levels was fastest for 1,000 images.
    COMPACT_EVERY = 6

    def __init__(self, n_estimators: int = 50, max_features="sqrt", min_samples_leaf: int = 1,
                 random_state: int = 0, n_jobs: int | None = None):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y):
        forest = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(np.asarray(X, dtype=np.float32), y)
        self.classes_ = forest.classes_
        self.n_features_in_ = forest.n_features_in_
        self._pack([tree.tree_ for tree in forest.estimators_])
        return self

    def _pack(self, trees) -> None:
        offsets = np.concatenate([[0], np.cumsum([t.node_count for t in trees])])
        children, feature, threshold, value = [], [], [], []
        for start, t in zip(offsets, trees):
            order = _siblings_together(t.children_left, t.children_right)
            renumbered = np.empty_like(order)
            renumbered[order] = np.arange(len(order))
            leaf = t.children_left[order] == -1
            children.append(np.where(leaf, np.arange(len(order)), renumbered[t.children_left[order]]) + start)
            feature.append(np.where(leaf, 0, t.feature[order]))
            threshold.append(np.where(leaf, np.inf, t.threshold[order]))
            v = t.value[order, 0, :] * leaf[:, None]
            value.append(v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12))
        self.roots_ = offsets[:-1].astype(np.int32)
        self.children_ = np.concatenate(children).astype(np.int32)
        self.feature_ = np.concatenate(feature).astype(np.int16)
        self.threshold_ = np.concatenate(threshold).astype(np.float32)
        self.value_ = np.concatenate(value).astype(np.float16)
        self.depth_ = int(max(t.max_depth for t in trees))

    def leaves(self, X) -> np.ndarray:
        """The leaf each image reaches in each tree, as (n, trees) node indices."""
        x = np.ascontiguousarray(X, dtype=np.float32)
        n, width = x.shape
        flat = x.reshape(-1)
        trees = len(self.roots_)
        reached = np.tile(self.roots_, n)
        walking = np.arange(n * trees)  # which walks are still under way, and where they are
        node = reached.copy()
        row_start = np.repeat(np.arange(n) * width, trees)
        for level in range(1, self.depth_ + 1):
            node = self.children_[node] + (np.take(flat, row_start + self.feature_[node]) > self.threshold_[node])
            if level % self.COMPACT_EVERY == 0 or level == self.depth_:
                reached[walking] = node
                going = self.children_[node] != node
                walking, node, row_start = walking[going], node[going], row_start[going]
        return reached.reshape(n, trees)

    def predict_proba(self, X):
        return self.value_[self.leaves(X)].astype(np.float32).mean(axis=1)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _siblings_together(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """A tree's node ids in breadth-first order, each node's children one after the other."""
    order = [0]
    for node in order:  # grows while it is read
        if left[node] != -1:
            order += [left[node], right[node]]
    return np.asarray(order)
