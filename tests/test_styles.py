"""The world's digit styles: the training augmentation, and models that read the style test set.

The augmentation (trainer/styles.py) is checked on MNIST training digits; the
models on the style test set (tests/style_digits.py), which is drawn by other
code from glyph skeletons. The full-data targets (every style at least 95%)
are held by the slow test in tests/test_trainer.py, on the same full training.
"""

from __future__ import annotations

import numpy as np
import pytest

from digitserve.artifacts import load_estimator, read_manifest
from tests.strokes import mnist_subset
from tests.style_digits import STYLES as TEST_STYLES
from tests.style_digits import styled_test_digits
from trainer.main import main as train
from trainer.styles import STYLES, add_styles, draw_strokes, measure, pen_width, stylise


@pytest.fixture(scope="module")
def digits():
    return mnist_subset(2000, "train")


def test_pen_width_reads_strokes_of_a_known_pen():
    blank = np.zeros((28, 28), np.uint8)
    for pen in (1.6, 2.0, 2.5, 3.0, 4.0):
        for angle in np.linspace(0, np.pi, 7):
            dx, dy = 8 * np.cos(angle), 8 * np.sin(angle)
            drawn = draw_strokes(blank, [[(14.3 - dx, 14 - dy), (14.3 + dx, 14 + dy)]], pen)
            assert abs(pen_width(drawn) - pen) <= 0.3, (pen, angle)


@pytest.mark.parametrize("style", list(STYLES))
def test_styles_are_drawn_in_the_digits_own_pen(digits, style):
    images, labels = digits
    digit, draw, _ = STYLES[style]
    rng = np.random.default_rng(0)
    thin_and_thick = sorted(np.flatnonzero(labels == digit)[:40], key=lambda i: pen_width(images[i]))
    for i in (thin_and_thick[0], thin_and_thick[-1]):
        shape = measure(images[i])
        added = (draw(images[i], shape, rng) >= 128) & ~shape.ink
        assert added.sum() >= 3, f"{style}: nothing drawn"
        # The same strokes drawn on a blank page (the digit's shape still guides them) measure as the digit does.
        alone = draw(np.zeros_like(images[i]), shape, np.random.default_rng(0))
        assert abs(pen_width(alone) - shape.pen) <= 0.4, (style, i, shape.pen)


def test_styled_copies_keep_their_labels_and_come_after_the_originals(digits):
    images, labels = digits
    out_x, out_y, counts = add_styles(images.reshape(len(images), -1), labels, 0.1, seed=3)
    assert np.array_equal(out_x[: len(images)], images.reshape(len(images), -1))
    assert np.array_equal(out_y[: len(labels)], labels)
    added = out_y[len(labels):]
    assert len(added) == sum(counts.values()) == len(out_x) - len(images)
    start = 0
    for style, (digit, _, weight) in STYLES.items():
        assert counts[style] == round(0.1 * weight * (labels == digit).sum())
        assert set(added[start: start + counts[style]]) == {digit}, style
        start += counts[style]
    assert out_x.dtype == np.uint8 and out_x.shape[1] == 784


def test_styles_are_deterministic_under_their_seed(digits):
    images, labels = digits
    flat = images[:600].reshape(600, -1)
    a = add_styles(flat, labels[:600], 0.2, seed=5)
    b = add_styles(flat, labels[:600], 0.2, seed=5)
    c = add_styles(flat, labels[:600], 0.2, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_styled_digits_sit_in_mnists_box_and_centre(digits):
    images, labels = digits
    rng = np.random.default_rng(1)
    for style, (digit, _, _) in STYLES.items():
        image = images[np.flatnonzero(labels == digit)[0]]
        styled = stylise(image, style, rng).reshape(28, 28).astype(float)
        rows, cols = np.flatnonzero(styled.any(axis=1)), np.flatnonzero(styled.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) <= 21, style
        centre = np.array([(styled.sum(axis=1) * np.arange(28)).sum(), (styled.sum(axis=0) * np.arange(28)).sum()])
        assert np.all(np.abs(centre / styled.sum() - 13.5) <= 1.0), style


def test_the_style_test_set_is_drawn_as_the_window_sends_it():
    sets = styled_test_digits(per_style=3, seed=1)
    assert set(sets) == set(TEST_STYLES) == set(STYLES)
    for style, (vectors, digit) in sets.items():
        assert vectors.shape == (3, 784) and vectors.dtype == np.uint8 and digit == TEST_STYLES[style][0]
        assert not np.array_equal(vectors[0], vectors[1])
    again = styled_test_digits(per_style=3, seed=1)
    assert all(np.array_equal(sets[s][0], again[s][0]) for s in sets)


def _style_accuracy(model, sets) -> dict[str, float]:
    return {style: float((model.predict(x) == digit).mean()) for style, (x, digit) in sets.items()}


@pytest.mark.heavy
def test_models_trained_with_the_styles_read_them(trained_models, mnist_dir, tmp_path):
    """The shared small models (2,500 MNIST digits plus their styled copies) against the same recipe without."""
    sets = styled_test_digits(per_style=60, seed=11)
    ensemble = load_estimator(trained_models, read_manifest(trained_models / "ensemble.manifest.json"))
    styled = _style_accuracy(ensemble, sets)
    assert read_manifest(trained_models / "ensemble.manifest.json").evaluation["styled_training_digits"][
        "slashed zero"] > 0
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(tmp_path), "--models", "svm", "--limit", "2500",
                  "--styles", "0", "--jobs", "1", "--no-report"]) == 0
    plain = _style_accuracy(load_estimator(tmp_path, read_manifest(tmp_path / "svm.manifest.json")), sets)
    print({style: (round(plain[style], 2), round(styled[style], 2)) for style in sets})
    for style, accuracy in styled.items():
        assert accuracy >= 0.85, style
    assert styled["slashed zero"] >= plain["slashed zero"] + 0.4
