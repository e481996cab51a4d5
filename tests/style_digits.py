"""The style test set: the world's digit styles drawn with the mouse, from glyph skeletons.

Made apart from the training augmentation (trainer/styles.py draws styles onto
MNIST training digits' pixels): here each style is a skeleton of strokes in a
unit box — lines and elliptic arcs whose every proportion is jittered per
digit — placed on a 280x280 canvas at a random size, place, slant, width and
pen, and turned into the 784-pixel vector by the drawing client's own
``Drawing.to_vector``, as the window sends it. ``python -m bench.styles`` and
tests/test_styles.py both measure on these.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from clients.drawing import DISPLAY_PEN, Drawing

Point = tuple[float, float]
Glyph = Callable[[Callable[[float], float]], list[list[Point]]]


def _arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float) -> list[Point]:
    """Points along an ellipse, angles in degrees on screen (y down: -90 is the top)."""
    steps = max(8, int(abs(end_deg - start_deg) / 10))
    angles = np.radians(np.linspace(start_deg, end_deg, steps))
    return [(float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in angles]


# Each glyph takes ``j``, which jitters a proportion (j(v) is v plus a little noise),
# and returns the strokes of one digit in a box about 1 wide and 1 tall.


def _slashed_zero(j):
    ring = _arc(0.5, 0.5, j(0.45), j(0.5), j(-100), j(270))
    slash = [(j(0.05), j(1.05)), (j(0.95), j(-0.05))]
    return [ring, slash]


def _continental_one(j):
    # The flag is long: from the stem's top down to about half the digit's height.
    stem_x = j(0.75)
    return [[(j(0.05), j(0.45)), (stem_x, j(0.0)), (j(stem_x), 1.0)], [(j(0.25), j(1.0)), (j(0.95), j(1.0))]]


def _looped_two(j):
    top = _arc(0.5, j(0.28), j(0.42), j(0.28), j(-165), j(25))
    cx, cy, r = j(0.2), j(0.83), abs(j(0.1)) + 0.05
    loop = _arc(cx, cy, r, r, -30, -390)
    return [top + loop + [(j(1.0), j(0.98))]]


def _open_four(j):
    bar_y = j(0.62)
    arm = [(j(0.12), j(0.0)), (j(0.05), bar_y), (j(1.0), j(bar_y))]
    stem_x = j(0.72)
    return [arm, [(stem_x, j(0.0)), (j(stem_x), 1.0)]]


def _detached_five(j):
    stem = [(j(0.22), j(0.14)), (j(0.18), j(0.5))]
    belly = _arc(j(0.48), j(0.71), j(0.45), j(0.28), j(-130), j(150))
    bar = [(j(0.38), j(0.0)), (j(0.98), j(0.02))]
    return [stem + belly, bar]


def _crossed_seven(j):
    foot_x = j(0.35)
    body = [(j(0.0), j(0.05)), (j(1.0), j(0.0)), (foot_x, 1.0)]
    y = j(0.52)
    middle = 1.0 + (foot_x - 1.0) * y  # where the stroke crosses that height
    return [body, [(middle - abs(j(0.3)), y + j(0.02)), (middle + abs(j(0.28)), y - j(0.02))]]


def _straight_nine(j):
    cx, cy, rx, ry = j(0.5), j(0.3), j(0.45), j(0.3)
    loop = _arc(cx, cy, rx, ry, 10, -350)
    tail = [(cx + rx, cy), (j(cx + rx - 0.05), 1.0)]
    return [loop + tail]


STYLES: dict[str, tuple[int, Glyph]] = {
    "slashed zero": (0, _slashed_zero),
    "continental one": (1, _continental_one),
    "looped two": (2, _looped_two),
    "open-top four": (4, _open_four),
    "detached five": (5, _detached_five),
    "crossed seven": (7, _crossed_seven),
    "straight nine": (9, _straight_nine),
}


def styled_drawing(style: str, rng: np.random.Generator, canvas: int = 280) -> Drawing:
    """One digit of ``style`` as drawn with the mouse: random proportions, size, place, slant, width and pen."""
    _, glyph = STYLES[style]
    strokes = glyph(lambda v: v + rng.normal(0, 0.04))
    size = rng.uniform(70, 240)
    aspect = rng.uniform(0.45, 0.75) if style != "continental one" else rng.uniform(0.4, 0.65)
    slant = rng.uniform(-0.25, 0.25)
    margin = size / 2 + 10
    cx, cy = rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin)
    pen = DISPLAY_PEN * rng.uniform(0.7, 1.4)
    placed = [[(float(cx + size * (aspect * (x - 0.5) + slant * (0.5 - y))), float(cy + size * (y - 0.5)))
               for x, y in stroke] for stroke in strokes]
    drawing = Drawing(canvas, canvas)
    for stroke in placed:
        drawing.begin_stroke(*stroke[0], width=pen)
        for x, y in stroke[1:]:
            drawing.extend_stroke(x, y)
    return drawing


def styled_test_digits(per_style: int = 200, seed: int = 2026) -> dict[str, tuple[np.ndarray, int]]:
    """For each style, ``per_style`` drawings as (n, 784) model inputs, and the digit they are."""
    rng = np.random.default_rng(seed)
    return {style: (np.array([styled_drawing(style, rng).to_vector() for _ in range(per_style)]), digit)
            for style, (digit, _) in STYLES.items()}
