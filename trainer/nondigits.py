"""Things that are no digit, drawn to teach the default model what to doubt.

Two kinds, each drawn with a pen on a 200-pixel canvas and preprocessed as
the drawing window does: letters and signs from hand-made stroke skeletons
(capitals, lowercase letters, a few signs; not from fonts: ``bench.confidence``
measures on the machine's fonts, and this is a different source), bent by a
random affine map and jittered; and doodles: jagged walks (straight runs
joined by sharp turns of random length and angle), smooth curves with
momentum, spirals, zigzags and loose hatching. ``bench.confidence`` draws its
scribbles another way (straight segments between uniform random points), with
other seeds.

``redrawn`` sends training digits through the same preprocessing, so that
the judge learning from these does not take the marks of that preprocessing
for a sign of no digit.

Letters that are drawn like a digit (I as a bare bar, O as a ring, S, Z; b,
g, l, o, q, s, z) are left out: a model taught to doubt them would doubt the
digits that look the same. ``printed`` draws the exception: capitals as print
shapes them, where they differ from the handwritten digit they pass for (an S
curved at the top where a 5 has a flat bar, a Z of straight strokes and sharp
corners, a J's stem with a small hook, a G's bar, a Q's tail).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from clients.preprocessing import to_mnist
from digitserve.contract import IMAGE_SIDE

CANVAS = 200
Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, points: int = 16) -> Stroke:
    """Points along an ellipse's arc, angles in degrees, y downwards."""
    t = np.radians(np.linspace(start, end, points))
    return list(zip(cx + rx * np.cos(t), cy - ry * np.sin(t)))


# Strokes of each capital in a unit box, x to the right and y downwards.
SKELETONS: dict[str, list[Stroke]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "B": [[(0, 0), (0, 1)], [(0, 0), (0.6, 0), (0.8, 0.12), (0.8, 0.36), (0.6, 0.48), (0, 0.48)],
          [(0.6, 0.48), (0.92, 0.62), (0.92, 0.86), (0.65, 1), (0, 1)]],
    "C": [_arc(0.5, 0.5, 0.5, 0.5, 45, 315)],
    "D": [[(0, 0), (0, 1)], [(0, 0), (0.5, 0), (0.9, 0.25), (1, 0.5), (0.9, 0.75), (0.5, 1), (0, 1)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.75, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.75, 0.5)]],
    "G": [_arc(0.5, 0.5, 0.5, 0.5, 45, 330), [(0.55, 0.6), (0.95, 0.6), (0.95, 0.95)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "J": [[(0.3, 0), (1, 0)], [(0.7, 0), (0.7, 0.8), (0.5, 1), (0.2, 0.95), (0.05, 0.75)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.6)], [(0.3, 0.4), (1, 1)]],
    "L": [[(0, 0), (0, 1), (0.8, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.65), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "P": [[(0, 1), (0, 0), (0.7, 0), (0.95, 0.15), (0.95, 0.35), (0.7, 0.5), (0, 0.5)]],
    "Q": [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, 24), [(0.6, 0.7), (1.05, 1.1)]],
    "R": [[(0, 1), (0, 0), (0.7, 0), (0.95, 0.15), (0.95, 0.35), (0.7, 0.5), (0, 0.5)], [(0.4, 0.5), (1, 1)]],
    "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "U": [[(0, 0), (0, 0.7), (0.15, 0.93), (0.5, 1), (0.85, 0.93), (1, 0.7), (1, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
}

# Lowercase letters and signs, written as the hand does, that no digit looks
# like (b, g, l, o, q, s, z do: they are left out), and a bare hook (J without
# its bar) and a ring with a short tail (Q): the capitals a model most often
# took for digits.
SMALL: dict[str, list[Stroke]] = {
    "a": [_arc(0.45, 0.62, 0.42, 0.38, 0, 360, 20), [(0.87, 0.2), (0.87, 1)]],
    "e": [[(0.05, 0.55), (0.95, 0.55)] + _arc(0.5, 0.55, 0.45, 0.45, 0, 320)],
    "f": [[(0.9, 0.1), (0.7, 0), (0.5, 0.1), (0.45, 0.3), (0.45, 1)], [(0.1, 0.4), (0.85, 0.4)]],
    "h": [[(0, 0), (0, 1)], [(0, 0.6), (0.3, 0.4), (0.7, 0.4), (0.95, 0.6), (0.95, 1)]],
    "k": [[(0, 0), (0, 1)], [(0.8, 0.35), (0, 0.75)], [(0.3, 0.63), (0.85, 1)]],
    "m": [[(0, 1), (0, 0.3)], [(0, 0.45), (0.15, 0.3), (0.35, 0.3), (0.5, 0.45), (0.5, 1)],
          [(0.5, 0.45), (0.65, 0.3), (0.85, 0.3), (1, 0.45), (1, 1)]],
    "n": [[(0, 1), (0, 0.3)], [(0, 0.45), (0.3, 0.3), (0.7, 0.3), (1, 0.45), (1, 1)]],
    "r": [[(0, 1), (0, 0.3)], [(0, 0.55), (0.35, 0.33), (0.9, 0.35)]],
    "t": [[(0.4, 0), (0.4, 0.85), (0.6, 1), (0.9, 0.9)], [(0.1, 0.3), (0.8, 0.3)]],
    "u": [[(0, 0.3), (0, 0.8), (0.3, 1), (0.7, 1), (1, 0.8)], [(1, 0.3), (1, 1)]],
    "hook": [[(0.7, 0), (0.7, 0.8), (0.5, 1), (0.2, 0.95), (0.05, 0.75)]],
    "ring-tail": [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, 24), [(0.6, 0.85), (0.85, 1.1)]],
    "+": [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
    "#": [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0, 0.33), (1, 0.33)], [(0, 0.67), (1, 0.67)]],
    "=": [[(0, 0.3), (1, 0.3)], [(0, 0.7), (1, 0.7)]],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "%": [[(0.9, 0), (0.1, 1)], _arc(0.2, 0.2, 0.18, 0.18, 0, 360, 12), _arc(0.8, 0.8, 0.18, 0.18, 0, 360, 12)],
    "&": [[(1, 1), (0.3, 0.35), (0.25, 0.15), (0.4, 0), (0.6, 0.1), (0.6, 0.25), (0.1, 0.6), (0.05, 0.8),
           (0.25, 1), (0.55, 0.95), (0.95, 0.55)]],
}


# Capitals as print shapes them, each where it differs from the digit it was most often taken for
# (bench.confidence, on the machine's fonts, found them unflagged; these are drawn, not rendered from
# fonts, which that benchmark measures on). S: a round top bowl, where a 5 has a flat bar and a corner,
# in two widths; Z: straight strokes meeting at sharp corners, where a 2 curves; J: a tall stem with a
# small hook (a 1 has none), with and without its bar; G: its inward bar; Q: a ring with a short tail
# below it. Drawn on top of ``non_digits``'s capitals: the judge of shapes needs many of them to tell
# them from the digits that differ so little.
PRINTED: dict[str, list[Stroke]] = {
    "S": [_arc(0.5, 0.26, 0.45, 0.24, 25, 270) + _arc(0.5, 0.74, 0.47, 0.26, 90, -155)],
    "S narrow": [_arc(0.5, 0.25, 0.42, 0.23, 10, 270) + _arc(0.5, 0.73, 0.45, 0.25, 90, -170)],
    "Z": [[(0, 0), (1, 0), (0, 1), (1, 1)]],
    "J": [[(0.6, 0), (0.6, 0.75), (0.52, 0.93), (0.32, 1.0), (0.1, 0.92)]],
    "J with bar": [[(0.2, 0), (0.85, 0)], [(0.6, 0), (0.6, 0.75), (0.52, 0.93), (0.32, 1.0), (0.1, 0.92)]],
    "G": [_arc(0.5, 0.5, 0.5, 0.5, 40, 345), [(0.55, 0.55), (0.98, 0.55), (0.98, 0.85)]],
    "Q": [_arc(0.5, 0.45, 0.5, 0.45, 0, 360, 28), [(0.55, 0.8), (0.85, 1.05)]],
}


def _draw(strokes: list[Stroke], width: int) -> np.ndarray:
    """The strokes as the window would send them, drawn in light ink on black.

    The window draws dark on light; the same strokes light on dark come out of
    ``to_mnist`` the same pixels (or next to), several times faster: clean
    strokes on a black canvas skip the evening out of a photo's paper.
    """
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=255, width=width, joint="curve")
    return to_mnist(image, "light")


def _placed(strokes: list[Stroke], rng: np.random.Generator) -> list[Stroke]:
    """Unit-box strokes bent by a random affine map, jittered, and fitted into the canvas."""
    turn, shear = np.radians(rng.normal(0, 8)), rng.normal(0, 0.15)
    aspect = rng.uniform(0.6, 1.2)
    m = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ [[aspect, shear], [0, 1]]
    out = []
    for stroke in strokes:
        p = np.asarray(stroke, float) - 0.5
        p = p @ m.T + rng.normal(0, 0.025, size=p.shape)
        out.append(p * 120 + CANVAS / 2)
    return out


def letters(n: int, rng: np.random.Generator, skeletons: dict[str, list[Stroke]] = SKELETONS) -> np.ndarray:
    """``n`` letters drawn from the skeletons, each with its own pen and distortion."""
    names = sorted(skeletons)
    return np.stack([_draw(_placed(skeletons[names[rng.integers(len(names))]], rng), int(rng.integers(8, 22)))
                     for _ in range(n)])


def _curve(rng: np.random.Generator) -> Stroke:
    """A random curve with momentum: the heading turns a little each step."""
    steps = int(rng.integers(20, 60))
    heading = rng.uniform(0, 2 * np.pi)
    bend = rng.normal(0, 0.25, size=steps).cumsum() * rng.uniform(0.1, 0.5)
    position = rng.uniform(50, 150, size=2)
    points = [tuple(position)]
    for turn in bend:
        position = np.clip(position + 6 * np.array([np.cos(heading + turn), np.sin(heading + turn)]), 10, 190)
        points.append(tuple(position))
    return points


def _spiral(rng: np.random.Generator) -> Stroke:
    turns = rng.uniform(1.2, 3)
    t = np.linspace(0, turns * 2 * np.pi, 80)
    r = np.linspace(rng.uniform(0, 10), rng.uniform(50, 85), 80)
    return list(zip(100 + r * np.cos(t) * rng.uniform(0.6, 1), 100 + r * np.sin(t)))


def _zigzag(rng: np.random.Generator) -> Stroke:
    k = int(rng.integers(4, 9))
    x = np.linspace(20, 180, k)
    y = np.where(np.arange(k) % 2, rng.uniform(20, 80), rng.uniform(120, 180)) + rng.normal(0, 10, k)
    return list(zip(x, y)) if rng.random() < 0.5 else list(zip(y, x))


def _hatching(rng: np.random.Generator) -> list[Stroke]:
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-direction[1], direction[0]])
    return [[tuple(100 + across * o - direction * 70), tuple(100 + across * o + direction * 70)]
            for o in np.linspace(-60, 60, int(rng.integers(3, 7))) + rng.normal(0, 5)]


def _jagged(rng: np.random.Generator) -> Stroke:
    """A pen that runs straight and turns sharply, a few times over: a zigzag with no rhythm."""
    position = rng.uniform(60, 140, size=2)
    heading = rng.uniform(0, 2 * np.pi)
    points = [tuple(position)]
    for _ in range(rng.integers(3, 8)):
        heading += rng.choice((-1, 1)) * np.radians(rng.uniform(70, 170))
        position = np.clip(position + rng.uniform(30, 90) * np.array([np.cos(heading), np.sin(heading)]), 10, 190)
        points.append(tuple(position))
    return points


def doodles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` doodles: half jagged walks (one or two), half smooth curves, spirals, zigzags or hatching."""
    smooth = (lambda: [_curve(rng) for _ in range(rng.integers(1, 4))], lambda: [_spiral(rng)],
              lambda: [_zigzag(rng)], lambda: _hatching(rng))

    def one() -> list[Stroke]:
        if rng.random() < 0.5:
            return [_jagged(rng) for _ in range(rng.integers(1, 3))]
        return smooth[rng.integers(len(smooth))]()

    return np.stack([_draw(one(), int(rng.integers(6, 22))) for _ in range(n)])


def non_digits(n: int, seed: int) -> np.ndarray:
    """``n`` images that are no digit, (n, 784) uint8: 30% capitals, 20% small letters and signs, 50% doodles."""
    rng = np.random.default_rng(seed)
    capitals, small = round(n * 0.3), round(n * 0.2)
    return np.concatenate([letters(capitals, rng), letters(small, rng, SMALL), doodles(n - capitals - small, rng)])


def printed(n: int, seed: int) -> np.ndarray:
    """``n`` capitals drawn as print shapes them (``PRINTED``), (n, 784) uint8; seeded apart from ``non_digits``."""
    return letters(n, np.random.default_rng([seed, 1]), PRINTED)


def redrawn(pixels: np.ndarray, seed: int) -> np.ndarray:
    """Digits (rows of 784 pixels, 0..1) enlarged onto the canvas at a random size and place, and
    preprocessed as the window does: digits that share the drawn non-digits' way of being drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for image in pixels:
        size = int(rng.integers(60, 190))
        digit = Image.fromarray((image.reshape(IMAGE_SIDE, IMAGE_SIDE) * 255).astype(np.uint8))
        digit = digit.resize((size, size), Image.BILINEAR)
        canvas = Image.new("L", (CANVAS, CANVAS), 0)
        canvas.paste(digit, tuple(int(v) for v in rng.integers(0, CANVAS - size + 1, size=2)))
        out.append(to_mnist(canvas, "light"))
    return np.stack(out)
