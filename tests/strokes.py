"""Test helpers: real MNIST digits, a small model, and MNIST digits turned into mouse drawings.

A drawing is made the way a person would draw the digit: the ink, enlarged
four times, is thinned to a one-pixel skeleton (Zhang-Suen), the skeleton is
walked into polylines (one per "mouse drag"), and the polylines are placed on
a canvas at a chosen size, position and slant. The drawing client's pipeline then has to turn
these back into something the model recognises.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from clients.drawing import Drawing
from digitserve.idx import read_idx

DEFAULT_MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def mnist_folder() -> Path:
    """MNIST_DIR, or the shared folder next to the repository."""
    return Path(os.environ.get("MNIST_DIR") or DEFAULT_MNIST_DIR)


@functools.lru_cache(maxsize=None)
def _mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images, labels = (read_idx(mnist_folder() / name) for name in _FILES[split])
    return images, labels


def mnist_subset(n: int, split: str = "train", start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST images (n, 28, 28) uint8 and their labels, from index ``start`` of the split."""
    images, labels = _mnist(split)
    return images[start : start + n], labels[start : start + n]


def _deskewed(x: np.ndarray) -> np.ndarray:
    from digitserve.estimators import deskew

    return deskew(x) * (1 / 255)


@functools.lru_cache(maxsize=None)
def small_model(n_train: int = 5000):
    """Deskew + PCA(30) + 4 nearest neighbours on the first ``n_train`` training digits (1-3 s).

    Built from the ``deskew`` function (the first step of every served model)
    and ``NearestNeighbours`` of digitserve.estimators; about 95-97% accurate
    on MNIST test digits, enough to tell whether preprocessing keeps a digit
    recognisable.
    """
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from digitserve.estimators import NearestNeighbours

    images, labels = mnist_subset(n_train, "train")
    model = Pipeline([("deskew", FunctionTransformer(_deskewed)), ("pca", PCA(30, random_state=0)),
                      ("knn", NearestNeighbours(4))])
    return model.fit(images.reshape(len(images), -1), labels)


def aligned_correlation(vector: np.ndarray, original: np.ndarray) -> float:
    """Pixel correlation of two 28x28 digits, allowing the one-pixel shifts of MNIST's whole-pixel centring."""
    a = np.asarray(vector, dtype=np.float64).reshape(28, 28)
    b = np.asarray(original, dtype=np.float64).ravel()
    return max(float(np.corrcoef(np.roll(a, (dr, dc), axis=(0, 1)).ravel(), b)[0, 1])
               for dr in (-1, 0, 1) for dc in (-1, 0, 1))


def zhang_suen(ink: np.ndarray) -> np.ndarray:
    """Thin a boolean image to a one-pixel-wide 8-connected skeleton (Zhang & Suen, 1984).

    Each pass removes, all at once, the boundary pixels whose removal keeps
    the shape connected (one 0->1 transition around them, 2-6 ink
    neighbours); the two sub-passes peel south-east and north-west sides.
    """
    img = np.pad(np.asarray(ink, dtype=bool), 1).astype(np.uint8)
    while True:
        changed = False
        for sub in (0, 1):
            # Neighbours P2..P9, clockwise from north.
            p = [img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:],
                 img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]]
            count = sum(q.astype(np.int16) for q in p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int16) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if sub == 0:
                side = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                side = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            remove = (img[1:-1, 1:-1] == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                img[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


_STEPS = [(-1, 0), (0, 1), (1, 0), (0, -1)]
_DIAGONALS = [(-1, -1), (-1, 1), (1, 1), (1, -1)]


def _neighbours(pixels: set[tuple[int, int]], p: tuple[int, int]) -> list[tuple[int, int]]:
    """m-adjacency: 4-neighbours, and diagonal ones only where no 4-path joins them already.

    Plain 8-adjacency turns every corner of a skeleton into a triangle of
    edges, which the walk would trace as tiny extra strokes.
    """
    r, c = p
    found = [(r + dr, c + dc) for dr, dc in _STEPS if (r + dr, c + dc) in pixels]
    for dr, dc in _DIAGONALS:
        q = (r + dr, c + dc)
        if q in pixels and (r + dr, c) not in pixels and (r, c + dc) not in pixels:
            found.append(q)
    return found


def trace(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """Walk a skeleton's pixels into polylines of (row, col), covering every adjacency once.

    Walks start at line ends and junctions (odd degree) so that strokes run
    end to end, and at each step prefer the neighbour that turns least.
    """
    pixels = {(int(r), int(c)) for r, c in zip(*np.nonzero(skeleton))}
    graph = {p: _neighbours(pixels, p) for p in pixels}
    used: set[frozenset] = set()
    strokes: list[list[tuple[int, int]]] = []

    def free(p):
        return [q for q in graph[p] if frozenset((p, q)) not in used]

    def walk(start):
        path, direction = [start], None
        while options := free(path[-1]):
            here = path[-1]
            if direction is None:
                step = options[0]
            else:
                step = max(options, key=lambda q: (q[0] - here[0]) * direction[0] + (q[1] - here[1]) * direction[1])
            used.add(frozenset((here, step)))
            direction = (step[0] - here[0], step[1] - here[1])
            path.append(step)
        return path

    starts = sorted(pixels, key=lambda p: (len(graph[p]) % 2 == 0, len(graph[p]) != 1, p))
    for p in starts:
        if not graph[p]:
            strokes.append([p])
        while free(p):
            strokes.append(walk(p))
    return strokes


def smooth(points: np.ndarray, passes: int = 2) -> np.ndarray:
    """Round off the pixel staircase of a traced line ([1, 2, 1] / 4 averaging, ends kept)."""
    points = np.asarray(points, dtype=np.float64)
    for _ in range(passes if len(points) > 2 else 0):
        inner = (points[:-2] + 2 * points[1:-1] + points[2:]) / 4
        points = np.concatenate([points[:1], inner, points[-1:]])
    return points


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """A 28x28 digit ``scale`` times larger, bilinear: (28 * scale, 28 * scale) uint8."""
    side = 28 * scale
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8).reshape(28, 28)).resize((side, side),
                                                                                           Image.BILINEAR))


# Ink this many times the digit's usual half stroke width from its edge is a filled
# loop: a stroke crossing another reaches about 1.4 times, a loop closed up by heavy
# ink about 2 times.
_FILLED = 1.7


def opened_loops(ink: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """Boolean ink with its filled loops opened again, as a person tracing the digit draws them.

    Heavy ink closes small loops (the head of a 9, the lower loop of an 8)
    into blobs, which thinning turns into a line: traced so, a 9 becomes a 1.
    Where the ink lies more than ``_FILLED`` times the digit's usual half
    stroke width (its distance to the edge along the skeleton) from the edge,
    over at least a half width squared, and no loop of the ink is within a
    stroke of it, the middle is cleared, leaving a ring about one stroke wide.
    A thick part next to an open loop is a heavy stroke, not a loop, and stays.
    ``skeleton`` is the ink thinned (:func:`zhang_suen`); with no loop to open,
    ``ink`` itself comes back, so its skeleton still holds.
    """
    if not skeleton.any():
        return ink
    depth = ndimage.distance_transform_edt(ink)
    half = float(np.median(depth[skeleton]))
    holes = ndimage.binary_fill_holes(ink) & ~ink
    cores, n = ndimage.label(depth > _FILLED * half)
    opened = ink
    for core in (cores == k for k in range(1, n + 1)):
        if core.sum() < half * half or (ndimage.binary_dilation(core, iterations=int(2 * half)) & holes).any():
            continue
        opened = opened & ~((depth > half) & ndimage.binary_dilation(core, iterations=int(half)))
    return opened


def digit_strokes(image: np.ndarray, threshold: int = 128, passes: int = 2,
                  scale: int = 4) -> list[list[tuple[float, float]]]:
    """The skeleton polylines of a 28x28 digit as (x, y) pixel-centre coordinates, lightly smoothed.

    The digit is thinned enlarged ``scale`` times (bilinear): on the 28x28 grid
    itself a stroke is 2-4 pixels of ragged edge, and thinning eats the ends
    of such strokes, often whole short bars (the top of a 5, the foot of a 2).
    Loops closed up by heavy ink are opened first (:func:`opened_loops`).
    ``passes`` is the smoothing in 28x28 pixels; each polyline keeps one point
    per original pixel of its length, as a mouse drag does.
    """
    ink = enlarged(image, scale) >= threshold
    skeleton = zhang_suen(ink)
    opened = opened_loops(ink, skeleton)
    if opened is not ink:  # a loop was opened: the ring is thinned anew
        skeleton = zhang_suen(opened)
    strokes = []
    for stroke in trace(skeleton):
        xy = smooth(np.array([((c + 0.5) / scale, (r + 0.5) / scale) for r, c in stroke]), passes * scale * scale)
        xy = np.concatenate([xy[:-1:scale], xy[-1:]])
        strokes.append([(float(x), float(y)) for x, y in xy])
    return strokes


def traced_drawing(image: np.ndarray, size: float = 200.0, centre: tuple[float, float] | None = None,
                   slant: float = 0.0, canvas: tuple[int, int] = (280, 280)) -> Drawing:
    """A Drawing of an MNIST digit as if drawn by hand on a canvas.

    ``size`` is the height in canvas pixels of the skeleton's bounding box
    plus MNIST's stroke width (so roughly the digit's drawn height),
    ``centre`` where the middle of the digit lands (default: canvas centre),
    ``slant`` a shear: positive leans the top to the right.
    """
    strokes = digit_strokes(image)
    points = np.array([p for s in strokes for p in s])
    low, high = points.min(axis=0), points.max(axis=0)
    middle = (low + high) / 2
    factor = size / (high[1] - low[1] + 2.0)  # + an MNIST stroke width of about 2 px
    cx, cy = centre if centre is not None else (canvas[0] / 2, canvas[1] / 2)
    drawn = [[(float(cx + factor * ((x - middle[0]) - slant * (y - middle[1]))),
               float(cy + factor * (y - middle[1]))) for x, y in s] for s in strokes]
    return Drawing(canvas[0], canvas[1], drawn)


def drawn_test_digits(n: int = 1000, start: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test digits as people draw them, as (n, 784) model inputs and their labels.

    Each digit is traced into mouse strokes at a random size (60-250 px),
    place and slant (within 0.3) on a 280x280 canvas, then rendered and
    preprocessed as the drawing window does. The slow training test and
    ``python -m bench.drawn`` both measure on these.
    """
    rng = np.random.default_rng(seed)
    digits, labels = mnist_subset(n, "test", start=start)
    vectors = []
    for image in digits:
        size = rng.uniform(60, 250)
        margin = size / 2 + 10
        centre = (rng.uniform(margin, 280 - margin), rng.uniform(margin, 280 - margin))
        vectors.append(traced_drawing(image, size=size, centre=centre, slant=rng.uniform(-0.3, 0.3)).to_vector())
    return np.array(vectors), labels
