"""Training digits redrawn with an even pen (trainer/pens.py), checked on MNIST training digits."""

from __future__ import annotations

import numpy as np
import pytest

from tests.strokes import mnist_subset
from trainer.pens import PENS, redraw, redrawn_copies
from trainer.styles import BOX, INK, pen_width


@pytest.fixture(scope="module")
def digits():
    return mnist_subset(300, "train")


@pytest.mark.parametrize("pen", [PENS[0], sum(PENS) / 2, PENS[1]])
def test_a_redrawn_digit_has_the_pen_it_was_drawn_with(digits, pen):
    images, _ = digits
    thin_and_thick = sorted(range(60), key=lambda i: pen_width(images[i]))
    for i in (thin_and_thick[0], thin_and_thick[-1]):
        assert abs(pen_width(redraw(images[i], pen)) - pen) <= 0.5, (i, pen_width(images[i]))


def test_a_redrawn_digit_keeps_its_shape_in_mnists_box(digits):
    images, _ = digits
    for image in images[:40]:
        copy = redraw(image, 3.0).reshape(28, 28)
        rows, cols = np.flatnonzero(copy.any(axis=1)), np.flatnonzero(copy.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= BOX + 1
        # The ink lies where the digit's was: most of it on or beside the original strokes.
        near = np.zeros((28, 28), bool)
        near[1:-1, 1:-1] = np.lib.stride_tricks.sliding_window_view(image > 0, (3, 3)).any(axis=(2, 3))
        ink = copy >= INK
        assert (ink & near).sum() >= 0.9 * ink.sum()


def test_faint_strokes_are_redrawn_in_full_ink():
    faint = np.zeros((28, 28), np.uint8)
    faint[6:22, 13:15] = 90  # a one in light pencil: below the ink threshold of trainer.styles
    copy = redraw(faint, 3.0).reshape(28, 28)
    assert copy.max() == 255 and (copy >= INK).sum() >= 40


def _likeness(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


def test_copies_are_a_share_of_the_digits_with_their_labels_and_seeded(digits):
    images, labels = digits
    flat = images.reshape(len(images), -1)
    x, y = redrawn_copies(flat, labels, 0.1, seed=2)
    assert x.shape == (30, 784) and x.dtype == np.uint8 and len(y) == 30
    again, _ = redrawn_copies(flat, labels, 0.1, seed=2)
    other, _ = redrawn_copies(flat, labels, 0.1, seed=3)
    assert np.array_equal(x, again) and not np.array_equal(x, other)
    # Each copy is of the digit its label names: one of them, redrawn, is close to it.
    for copy, label in zip(x, y):
        candidates = np.flatnonzero(labels == label)
        # The likeliest sources first, as they are: redrawing each candidate is the slow part.
        candidates = candidates[np.argsort([-_likeness(flat[i], copy) for i in candidates])]
        assert any(_likeness(redraw(images[i], 3.0), copy) > 0.8 for i in candidates), label
    assert redrawn_copies(flat, labels, 0.0, seed=2)[0].shape == (0, 784)
