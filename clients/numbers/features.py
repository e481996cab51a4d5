"""What a reading's score is made of besides the model's confidence: the features
of a run of atoms read as one digit (RUN_FEATURES: the one-digit checks, its
height, how its marks sit side by side, the model's doubt) and of the
boundary between two digits (BOUNDARY_FEATURES: ink parted, width shared,
the gap).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from clients.numbers.atoms import Atom, SHARED, SHORT, box_of, strokes_meet, x_overlap
from clients.numbers.cuts import ink_slant
from digitserve.contract import IMAGE_SIDE
from digitserve.unsure import UNLIKE

if TYPE_CHECKING:  # the candidates' module reads their features from here
    from clients.numbers.candidates import Candidates


_APART = 0.15  # digits written apart leave at least about this much between them; a digit's own strokes overlap
# The one-digit check: the width of a candidate's ink over its height, on the 28x28
# image the model sees, taken across its slant (ink_shapes). Per digit,
# the 1st, 10th, 90th and 99th percentiles of MNIST's 60,000 training digits (ink at
# 64 of 255). Two touching digits read as one are wider than almost any digit of
# that class; a slice of a digit is narrower.
_ASPECT = ((0.52, 0.68, 1.12, 1.43), (0.15, 0.19, 0.38, 0.80), (0.54, 0.69, 1.18, 1.64), (0.44, 0.58, 0.94, 1.14),
           (0.48, 0.59, 1.00, 1.23), (0.49, 0.63, 1.05, 1.33), (0.41, 0.52, 0.95, 1.18), (0.46, 0.58, 1.00, 1.28),
           (0.41, 0.52, 0.90, 1.14), (0.40, 0.51, 0.86, 1.07))
WIDE = 2.0  # what a candidate costs per (99th - 90th percentile) of width beyond their midpoint
NARROW = 1.0  # ... and one as narrow as the 1st
# The other one-digit check: how many strokes a row of the 28x28 image crosses, on
# average over its inked rows (ink at 128 of 255, ink_shapes). Per digit, the 90th and
# 99th percentiles of MNIST's 60,000 training digits. A 1 merged with the digit it
# touches crosses a stroke more in most rows than almost any digit of that class,
# though a pair's strokes side by side can be no wider than that digit alone. With the
# weights learnt again, 1,680 numbers of training digits that models trained on the
# other 50,000 had not seen read 1,538 whole against 1,532 (touching 470 of 560, 464);
# the svm, with no doubt of its own to tell a merged pair by, 735 of 840 against 712.
_CROWDED = ((1.85, 2.1), (1.0, 1.2), (1.6, 1.85), (1.4, 1.58), (1.6, 1.8), (1.39, 1.58), (1.7, 2.0), (1.35, 1.5),
            (1.75, 1.9), (1.55, 1.75))
# For drawings the check is on the strokes' box: wider, for its height, than 90% of
# MNIST's training digits of the digit read (widths of ink at 64 of 255 on the 28x28 images).
_WIDEST = (1.11, 0.7, 1.25, 1.0, 1.0, 1.25, 0.95, 1.0, 1.0, 0.9)
SIDING = 6.0  # what separate tall marks read as one digit cost when they share none of their width (SHARED)

RUN_FEATURES = (
    "log_confidence",  # of the digit read
    "digit",  # 1 for every run: what one more digit costs or earns
    "short",  # how much shorter than SHORT of the line height
    "wide",  # the one-digit check on the 28x28 image: beyond the widest 5% of MNIST's digits of the class
    "narrow",  # ... and narrower than the narrowest 10%
    "box_wide",  # the one-digit check on the box (drawings): wider than 90% of the class
    "siding",  # separate tall marks that barely share their width
    "line_wide",  # width in line heights beyond one
    "rejoined",  # slices of one component glued back together
    "low",  # how much lower than the line height: digits of a number are about as tall, a digit's strokes lower
    "unlike",  # 1 when the model doubts the run as unlike any digit: two touching digits read as one, a slice of one
    "crowded",  # the other one-digit check on the 28x28 image: rows crossing more strokes than 95% of the class
    "one_apart",  # 1 for a 1's straight stroke taken out of the neighbour it runs along (ones.py), read alone
)
BOUNDARY_FEATURES = (
    "cut",  # ink parted between the two digits: strokes the cut crosses (pictures), strokes that meet (drawings)
    "shared",  # separate marks of two digits sharing their width beyond SHARED
    "close",  # how far the gap between the two digits falls short of _APART (in units of _APART)
)


def run_features(group: Sequence[Atom], height: float, probabilities: np.ndarray, shape: Sequence[float] | None,
                 doubt: str) -> list[float]:
    """The features (RUN_FEATURES) of these atoms read as one digit, the model doubting it for ``doubt``.

    Too short (a bar, a foot alone) or lower than the line at all (one
    stroke of a digit drawn in several); too wide or narrow for the digit read,
    or crossing more strokes per row (the one-digit checks: on the 28x28
    image's ``shape``, from ink_shapes, when given, else on the box); or made
    of separate tall marks that barely share their width (neighbours; a short
    mark may stick out, like the bar of a 5).
    """
    digit = int(probabilities.argmax())
    left, top, right, bottom = box_of(group)
    h, w = bottom - top, right - left
    stands = _ink_height(group)
    short = max(0.0, SHORT * height - stands) / (SHORT * height)
    wide = narrow = box_wide = crowded = 0.0
    if shape is not None:
        aspect, crossed = shape
        low, narrowest, widest, high = _ASPECT[digit]
        start = (widest + high) / 2  # about the widest 5% of MNIST's digits of the class: still one digit
        wide = max(0.0, aspect - start) / (high - widest)
        narrow = max(0.0, narrowest - aspect) / (narrowest - low)
        usual, most = _CROWDED[digit]
        crowded = max(0.0, crossed - (usual + most) / 2) / (most - usual)
    else:
        box_wide = max(0.0, w / h - _WIDEST[digit])
    siding = 0.0
    low, high = group[0].left, group[0].right  # the x-extent of the atoms so far
    for k in range(1, len(group)):
        atom, before = group[k], group[:k]
        tall = atom.height >= SHORT * height and max(a.height for a in before) >= SHORT * height
        if atom.origin != before[-1].origin and tall and not any(strokes_meet(atom, a) for a in before):
            shared = (min(high, atom.right) - max(low, atom.left)) / max(min(atom.width, high - low), 1e-6)
            siding += max(0.0, SHARED - shared) / SHARED
        low, high = min(low, atom.left), max(high, atom.right)
    rejoined = sum(a.origin == b.origin for a, b in zip(group, group[1:]))
    return [math.log(max(float(probabilities.max()), 1e-6)), 1.0, short, wide, narrow, box_wide, siding,
            max(0.0, w / height - 1.0), float(rejoined), max(0.0, 1.0 - stands / height), float(doubt == UNLIKE),
            crowded, float(len(group) == 1 and group[0].one)]


def _ink_height(group: Sequence[Atom]) -> float:
    """How tall these atoms' ink stands: the rows some stroke of a drawing reaches, else the box's height.

    Specks beside a traced digit (bits of its broken strokes, of noise) far
    above each other have a tall box but no tall ink: taken as digits as
    tall as the box, two of them were read as a 1 beside the digit they
    belong to. A picture's atoms (components, slices of one) are measured
    by their box.
    """
    if any(a.points is None for a in group):
        _, top, _, bottom = box_of(group)
        return bottom - top
    covered, reach = 0.0, -math.inf
    for atom in sorted(group, key=lambda a: a.top):
        covered += max(0.0, atom.bottom - max(atom.top, reach))
        reach = max(reach, atom.bottom)
    return covered


def boundary_features(found: Candidates, before: tuple[int, int], after: tuple[int, int]) -> list[float]:
    """The features (BOUNDARY_FEATURES) of the boundary between two neighbouring digits (runs of ``found``).

    Between the halves of a cut component, the cut crosses ink; between a
    drawing's digits, strokes that meet are ink parted too. Between
    separate marks: how much of their width they share, and how far they
    are from the gap digits written apart leave (a digit's own strokes
    overlap: read apart, a 4's upright as a 1 and its arm as a 4, they would
    cost nothing, the model being as sure of them as of the whole).
    """
    # Each cut parting two slices is counted once: at the boundary before the later of the two.
    parted = sum(crossed for k in range(*after) for other, crossed in found.cuts[k] if other < after[0])
    left, right = found.atoms[before[1] - 1], found.atoms[after[0]]
    if left.origin == right.origin:
        return [parted, 0.0, 0.0]
    # A drawing's strokes that meet across the boundary are ink parted as a cut parts it: the strokes of one
    # digit meet where they join (95% of the ways to part a digit of training numbers in two), digits written
    # apart seldom do (touching or overlapping ones in 12%).
    meeting = float(found.meets[before[0] : before[1], after[0] : after[1]].sum())
    shared = max(0.0, x_overlap(found.boxes[before], found.boxes[after]) - SHARED) / (1 - SHARED)
    gap = (found.boxes[after][0] - found.boxes[before][2]) / found.height
    return [meeting + parted, shared, max(0.0, _APART - gap) / _APART]


def ink_shapes(vectors: np.ndarray) -> np.ndarray:
    """The two one-digit checks' measures of 28x28 images (n, 784): (n, 2) of the width over the height of
    their ink, measured along each image's slant, and the strokes a row crosses, on average over the rows
    with ink (_CROWDED).

    The slant is the one the models straighten (second moments of the ink);
    the width is taken across it, so a slanted 1 is as narrow as an upright one.
    """
    images = np.asarray(vectors, np.float64).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    coords = np.arange(IMAGE_SIDE, dtype=np.float64)
    rows = np.broadcast_to(coords[None, :, None], images.shape)
    cols = np.broadcast_to(coords[None, None, :], images.shape)
    slant = np.array([ink_slant(rows[k].ravel(), cols[k].ravel(), image.ravel()) for k, image in enumerate(images)])
    ink = images > 64
    centre = rows - (images * rows).sum(axis=(1, 2), keepdims=True) / np.maximum(images.sum(axis=(1, 2), keepdims=True), 1e-6)
    across = cols - slant[:, None, None] * centre
    left = np.where(ink, across, np.inf).min(axis=(1, 2))
    right = np.where(ink, across, -np.inf).max(axis=(1, 2))
    top = np.where(ink, rows, np.inf).min(axis=(1, 2))
    bottom = np.where(ink, rows, -np.inf).max(axis=(1, 2))
    found = ink.any(axis=(1, 2))
    aspects = np.where(found, (right - left + 1) / np.where(found, bottom - top + 1, 1), 0.0)
    dark = images >= 128
    strokes = (dark[:, :, 1:] & ~dark[:, :, :-1]).sum(axis=2) + dark[:, :, 0]  # per row: runs of ink
    crossed = strokes.sum(axis=1) / np.maximum((strokes > 0).sum(axis=1), 1)
    return np.stack([aspects, crossed], axis=1)
