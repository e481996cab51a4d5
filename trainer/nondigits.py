"""Things that are no digit, drawn to teach the default model what to doubt.

Two kinds, each drawn with a pen on a 200-pixel canvas and preprocessed as
the drawing window does: capital letters from hand-made stroke skeletons
(not from fonts: ``bench.confidence`` measures on the machine's fonts, and
this is a different source), bent by a random affine map and jittered; and
smooth doodles (random curves with momentum, spirals, zigzags, loose
hatching). ``bench.confidence`` draws its scribbles another way (straight
segments between uniform random points), with other seeds.

Letters that are drawn like a digit (I as a bare bar, O as a ring, S, Z) are
left out: a model taught to doubt them would doubt the 1s, 0s, 5s and 2s that
look the same.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from clients.preprocessing import to_mnist

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


def _draw(strokes: list[Stroke], width: int) -> np.ndarray:
    """The strokes as the window would send them, drawn in light ink on black.

    The window draws dark on light; the same strokes light on dark come out of
    ``to_mnist`` as the same pixels (or next to), several times faster: ink
    on black skips the evening out of a photo's uneven paper.
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


def letters(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` capitals drawn from the skeletons, each with its own pen and distortion."""
    names = sorted(SKELETONS)
    return np.stack([_draw(_placed(SKELETONS[names[rng.integers(len(names))]], rng), int(rng.integers(8, 22)))
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


def doodles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` doodles: smooth curves (one to three), spirals, zigzags or hatching."""
    makers = (lambda: [_curve(rng) for _ in range(rng.integers(1, 4))], lambda: [_spiral(rng)],
              lambda: [_zigzag(rng)], lambda: _hatching(rng))
    return np.stack([_draw(makers[rng.integers(len(makers))](), int(rng.integers(6, 22))) for _ in range(n)])


def non_digits(n: int, seed: int) -> np.ndarray:
    """``n`` images that are no digit, (n, 784) uint8: half letters, half doodles."""
    rng = np.random.default_rng(seed)
    return np.concatenate([letters(n // 2, rng), doodles(n - n // 2, rng)])
