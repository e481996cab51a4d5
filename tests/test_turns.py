"""The SVM's virtual examples: turned copies of its support vectors (trainer/turns.py, KernelSVM's second fit)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitserve.estimators import DigitFeatures
from tests.strokes import mnist_subset
from trainer.assembly import build_tail, fit_tail
from trainer.recipes import RECIPES
from trainer.turns import SCALE, TURN, turned_copies


def test_copies_are_the_digits_turned_and_scaled_about_their_centre():
    images, _ = mnist_subset(20, "train")
    copies = turned_copies(images.reshape(20, -1), 3, np.random.default_rng(5))
    assert copies.shape == (60, 784) and copies.dtype == np.float32
    draws = np.random.default_rng(5)
    angles = np.deg2rad(draws.uniform(-TURN, TURN, 60))
    factors = 1 + draws.uniform(-SCALE, SCALE, 60)
    rows, cols = np.mgrid[0:28, 0:28] - 13.5
    for k in range(60):
        cos, sin = np.cos(angles[k]) / factors[k], np.sin(angles[k]) / factors[k]
        expected = ndimage.map_coordinates(images[k // 3].astype(np.float64),
                                           [cos * rows - sin * cols + 13.5, sin * rows + cos * cols + 13.5],
                                           order=1, cval=0)
        np.testing.assert_allclose(copies[k].reshape(28, 28), expected, atol=1e-3)


def test_the_svm_refits_on_its_support_vectors_and_their_turned_copies():
    """How much the copies gain shows only on the full set (tests/full-training.json holds it): on
    a few thousand digits nearly every digit is a support vector, so the second fit only adds copies."""
    train_x, train_y = mnist_subset(1500, "train")
    test_x, test_y = mnist_subset(1000, "test")
    features = DigitFeatures().fit(train_x.reshape(-1, 784))
    train_f = features.transform(train_x.reshape(-1, 784))
    recipe = RECIPES["svm"]
    assert recipe.virtual_copies > 0
    plain = build_tail(recipe, seed=0, jobs=1).fit(train_f, train_y)
    virtual = fit_tail(recipe, 0, 1, features, train_f, train_y)
    projected = virtual[:-1].transform(train_f)
    svs = virtual[-1].support_vectors_
    known = (np.abs(svs[:, None, :] - projected[None, :, :]).max(axis=2) < 1e-4).any(axis=1)
    # Its support vectors are training digits the first fit kept, and copies of them.
    assert 0.3 * len(svs) < (~known).sum() < len(svs) and known.sum() <= len(plain[-1].support_vectors_)
    read = {name: (tail.predict(features.transform(test_x.reshape(-1, 784))) == test_y).mean()
            for name, tail in (("plain", plain), ("virtual", virtual))}
    assert read["virtual"] >= read["plain"] - 0.01, read
    assert fit_tail(recipe, 0, 1, features, train_f, train_y)[-1].support_vectors_.tobytes() == svs.tobytes()
