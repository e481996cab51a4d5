"""Whole numbers: find the digits of a picture or a drawing, read them in one batch, choose by confidence.

A number is cut into *atoms* first: the strokes of a drawing, or for a
picture the connected components of its ink, where a component wide enough
to hold touching digits is also sliced. The candidate cuts are the low
points of the ink profile taken along the component's slant and, in a
component wider than a digit, the contacts (columns a way down passes
crossing at most one stroke); each cut then takes the way down through the
ink that crosses least (between two touching digits: their contact). A digit is then a run of neighbouring atoms
(a 5 and its detached bar, a 7 and its crossbar, the two halves of a cut).
Every plausible run is turned into the 784 pixels of the MNIST recipe
(clients/preprocessing.py, or Drawing.to_vector for strokes) and all of them
go to the model in one batch; the reading kept is the split of the atoms
into runs with the highest score (dynamic programming): the sum of
log-confidences with a little geometry on top, each feature weighted
(RUN_FEATURES, BOUNDARY_FEATURES; the weights are learnt, for pictures and
for drawings apart, on numbers of MNIST training digits,
clients/number_weights.py). The geometry:
the one-digit check (a candidate much wider,
for its height, than MNIST's digits of the class it is read as is probably
two touching digits; a much narrower one, a slice of one), cutting ink costs
per stroke crossed (parting a drawing's strokes, per pair that meet), digits
of one number are about as tall as each other (a drawing's by the rows its
strokes reach) and do not sit on top of each other, and digits written apart
leave a gap where a digit's own strokes overlap. That is recognition-driven
segmentation: the cut between two touching digits is where the model reads
two good digits. The model's doubt counts too: a candidate it answers as
unlike any digit (Prediction.doubt; two touching digits taken as one look
like no single digit to the ensemble's judge of shapes) pays for it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from clients import preprocessing
from clients.drawing import Drawing, DrawingError
from clients import number_weights
from clients.prediction import Prediction
from digitserve.contract import CLASSES, IMAGE_SIDE, PIXELS
from digitserve.unsure import UNLIKE

MAX_DIGITS = 32
LOW_CONFIDENCE = 0.5  # digits the model is less sure of than this are marked, as are those it doubts
# Pixels above this ink strength belong to a digit's shape: faint anti-aliased
# fringes would otherwise join digits that merely come close.
_INK = 0.25
# A component smaller than this fraction of the largest one is dust, not a stroke.
_DUST = 0.02
_WORK = 1024  # pictures are reduced (keeping every stroke) to this longer side for segmentation
_MAX_MARKS = 3 * MAX_DIGITS  # strokes or pieces of ink a number may be made of
_MAX_SPECKS = 1000  # marks of a point's size a colon is looked for among (a grained photo has a few hundred)
_MAX_POINTS = 200  # points of a stroke compared with another's (a digit's mouse strokes have fewer)
_MAX_RUN = 9  # atoms one digit may be made of (a traced digit can take nine strokes, dots of a pen's width among them)
# Geometry, in units of the line height H (the median height of the tall pieces of ink, _line_height).
_MERGE_GAP = 0.25  # atoms further apart than this are never one digit
_JOIN_WIDTH = 2.0  # ... nor are atoms spanning more than this (a wide, slanted 2 reaches 1.8)
_SEPARATE = 0.1  # ink groups further apart than this are counted as separate digits (count_separate)
_SHORT = 0.55  # a digit shorter than this is suspicious (a bar, a foot)
_STROKE = 0.35  # a piece this tall is a stroke (a broken 1's half), not a speck of grain
_LINE_PIECE = 0.25  # a line of writing is made of pieces at least this tall (smaller digits than the line's too)
_LINE_PEN = 0.45  # ... and, in a picture, of a pen at least this wide beside the digits' (smaller digits, thinner)
_PARTED = 0.05  # rows this clear part a band into digits and smaller ones (_parted) when
_SMALLER = 0.7  # these are at most this tall beside the digits
_LINE_MARGIN = 0.5  # read_lines reads a picture's line with this much of its height above and below it
_FRAME = 1.5  # ink reaching a picture's border and taller than this is the scene's, not a digit (_ink_components)
_SLIVER = 0.08  # ... and so is a sliver along its side narrower than this (a sheet's edge)
_BESIDE = 1.5  # ... and so is what stands further than this beside the digits (a table's edge across the sheet)
_APART = 0.15  # digits written apart leave at least about this much between them; a digit's own strokes overlap
# Signs: a decimal point or a comma (an amount, a meter reading) is a mark low between two digits,
_SIGN = 0.35  # at most this wide and tall (a comma twice as tall),
_SIGN_LEAST = 0.05  # at least this wide or tall (dust is smaller),
_SIGN_DUST = 0.25  # with at least this much of the area that is dust beside the digits (_DUST),
_SIGN_LOW = 0.55  # its top below this much of its neighbours' height,
_SIGN_NEAR = 1.0  # digits on both sides within this of it,
_SIGN_CLEAR = 0.3  # no other ink in its columns within this above or below it (a slanted digit's foot),
_SIGN_APART = 0.06  # or this close beside it (the end of a stroke broken off),
_SIGN_LIKE = 0.5  # and no mark at least this big beside it higher up (a colon).
_POINT_BELOW = 0.12  # A point reaches at most this below its neighbours' baseline
_ROUND = 1.6  # and is round: neither side longer than this times the other (a dash is a broken stroke's end);
_COMMA_BELOW = 0.5  # a comma reaches further, up to this, and is taller than wide.
# A colon (a time, a ratio) is two round marks of a point's size (the smaller at least _SIGN_LIKE of the
# bigger), one above the other between two digits, the lower one not below the baseline (_POINT_BELOW),
_COLON = 1.0  # the two reaching at most this far from top to bottom,
_COLON_LEAN = 0.5  # their middles at most this much of the way down from one to the other aside (slanted writing),
_COLON_MIDDLES = (0.6, 0.5)  # the upper one's middle at most, the lower one's at least this far down the line.
# A minus is a bar before the first digit (within _SIGN_NEAR of it, nothing above or below it in the line),
_MINUS = (0.25, 1.0)  # as long as this,
_MINUS_FLAT = 2.0  # at least this many times as long as it is thick,
_MINUS_MIDDLE = (0.3, 0.75)  # its middle this far down the digit's height.
# In a picture a sign's ink fills this much of its box at least (a dot, not a curl of grain; a comma
# leans across its box),
_FILLED = {".": 0.6, ",": 0.4, "-": 0.5}
_SIGN_STRENGTH = 0.5  # is at least this dark beside the digits' ink (grain is faint)
_SIGN_PEN = 0.8  # and at least this wide or tall (a minus this thick) beside their strokes' width (grain is fine).
# The one-digit check: the width of a candidate's ink over its height, on the 28x28
# image the model sees, taken across its slant (ink_shapes). Per digit,
# the 1st, 10th, 90th and 99th percentiles of MNIST's 60,000 training digits (ink at
# 64 of 255). Two touching digits read as one are wider than almost any digit of
# that class; a slice of a digit is narrower.
_ASPECT = ((0.52, 0.68, 1.12, 1.43), (0.15, 0.19, 0.38, 0.80), (0.54, 0.69, 1.18, 1.64), (0.44, 0.58, 0.94, 1.14),
           (0.48, 0.59, 1.00, 1.23), (0.49, 0.63, 1.05, 1.33), (0.41, 0.52, 0.95, 1.18), (0.46, 0.58, 1.00, 1.28),
           (0.41, 0.52, 0.90, 1.14), (0.40, 0.51, 0.86, 1.07))
_WIDE = 2.0  # what a candidate costs per (99th - 90th percentile) of width beyond their midpoint
_NARROW = 1.0  # ... and one as narrow as the 1st
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
# Separate tall marks sharing more than _SHARED of the narrower one's width are
# probably one digit, less probably two; _SIDING is what the wrong side costs at the extreme.
_SHARED = 0.5
_SIDING = 6.0
_CUT = 0.8  # what cutting through one stroke costs (in log-confidence)
# A component wider than this may hold touching digits. A 1 touching its neighbour makes a narrow pair
# ("17" about 0.6); cut below 0.75 too, the slices of one wide digit are left to the model and its doubt.
_CUT_ABOVE = 0.5
_CUT_BAND = 0.12  # a cut may wander this far aside to find the least ink to cross
_CUT_LEAST = 0.5  # a cut costs at least what crossing half a stroke does
_CUT_MARGIN = 0.15  # no cut closer than this to a component's side
_CUT_SPACING = 0.18  # nor closer than this to another cut
_MAX_CUTS = 12
_CONTACT_ABOVE = 1.1  # a component wider than this for its height (across its slant) is searched for contacts too
_CONTACT_BAND = 0.2  # ... and a cut through a contact may wander this far aside (the others keep _CUT_BAND)

Classify = Callable[[np.ndarray], Sequence[Prediction]]  # (n, 784) uint8 -> the model's answer about each image
Box = tuple[float, float, float, float]  # left, top, right, bottom
FoundSign = tuple[str, Box]  # a sign's character and its ink's box, in work coordinates (_split_signs)


class NumberError(ValueError):
    """Input that cannot be read as a number; the message says why."""


class SeveralLines(NumberError):
    """Writing in several lines, one above the other, read as one number (read_lines reads each): ``lines``
    are the rows each reaches (top, bottom) in the input's coordinates, top first."""

    def __init__(self, lines: list[tuple[float, float]]):
        rows = ", ".join(f"{top:.0f}-{bottom:.0f}" for top, bottom in lines)
        super().__init__(f"{len(lines)} lines of writing, one above the other (rows {rows}): a number is read "
                         "from one line; crop to the one to read")
        self.lines = lines


class Digit(Prediction):
    """One digit of a number: the prediction for its box (in the input's coordinates)."""

    @property
    def uncertain(self) -> bool:
        """Marked for people: the model is less sure than LOW_CONFIDENCE, or doubts the answer (a scribble
        in a number is often read with confidence, but as unlike any digit)."""
        return self.confidence < LOW_CONFIDENCE or bool(self.doubt)

    def record(self, top: int = 0) -> dict:
        return super().record(top, box=[round(v, 1) for v in self.box], uncertain=self.uncertain)


@dataclass(frozen=True)
class Sign:
    """A sign written with the digits of a number: a decimal point ("."), a comma (",") or a colon (":")
    between two of them, or a minus ("-") before the first."""

    char: str
    after: int  # how many digits come before it
    box: Box  # left, top, right, bottom in the input's coordinates

    def record(self) -> dict:
        return {"sign": self.char, "after": self.after, "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class Number:
    digits: list[Digit]
    signs: tuple[Sign, ...] = ()

    @property
    def text(self) -> str:
        return self._spelt(lambda d: str(d.digit))

    @property
    def confidence(self) -> float:
        """The chance that every digit is right, taking the model's confidences at their word."""
        return float(np.prod([d.confidence for d in self.digits]))

    @property
    def marked(self) -> str:
        """The number with a ? after every uncertain digit, for people."""
        return self._spelt(lambda d: f"{d.digit}?" if d.uncertain else str(d.digit))

    def _spelt(self, spell: Callable[[Digit], str]) -> str:
        """The digits spelt one by one, with the signs where they stand."""
        text = [spell(d) for d in self.digits]
        for sign in sorted(self.signs, key=lambda m: m.after, reverse=True):
            text.insert(sign.after, sign.char)
        return "".join(text)

    def moved(self, scale: float, left: float, top: float) -> Number:
        """The same number with its boxes in other coordinates: (x, y) -> (x * scale + left, y * scale + top)."""
        def move(box: Box) -> Box:
            return (box[0] * scale + left, box[1] * scale + top, box[2] * scale + left, box[3] * scale + top)

        return Number([replace(d, box=move(d.box)) for d in self.digits],
                      tuple(replace(m, box=move(m.box)) for m in self.signs))

    def most_doubtful(self) -> int | None:
        """The place of the digit most worth a look: one the model doubts, then the one it is least sure of."""
        return min(range(len(self.digits)), key=lambda k: worth_a_look(self.digits[k]), default=None)


def worth_a_look(digit: Digit) -> tuple[bool, float]:
    """Smaller for a digit more worth a look: one the model doubts first, then the less sure."""
    return not digit.doubt, digit.confidence


@dataclass(eq=False)
class _Atom:
    """A piece of ink: its box (work coordinates) and what it is made of (runs of a picture, or a stroke)."""

    left: float
    top: float
    right: float
    bottom: float
    parts: list
    origin: int = 0  # the component or stroke it comes from: slices of one component share it
    crossing: float = 0.0  # for a slice, how many strokes the cut at its left edge goes through
    order: int = 0  # for a slice, its place among its component's slices, left to right along the slant
    points: np.ndarray | None = None  # for a stroke, its points, and the ink's reach around them:
    reach: float = 0.0

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left


# --- pictures ------------------------------------------------------------------------------


def read_image(image: Image.Image | np.ndarray, classify: Classify, ink: str = "auto") -> Number:
    """The number written in a picture (dark ink on paper, light on dark, or detected)."""
    return _line_number(*_work_ink(image, ink), classify)


def picture_candidates(image: Image.Image | np.ndarray, classify: Classify, ink: str = "auto") -> tuple[Candidates, float]:
    """Every plausible digit of a picture, read; and the factor from work to picture coordinates."""
    level, factor = _work_ink(image, ink)
    return _line_candidates(level, classify, factor), factor


def _work_ink(image: Image.Image | np.ndarray, ink: str) -> tuple[np.ndarray, float]:
    """The picture's ink map at the size the digits are found at (_reduced), and the factor back to it."""
    return _reduced(*preprocessing.ink_level(image, ink))


def _line_number(level: np.ndarray, factor: float, classify: Classify) -> Number:
    """The number in the one line of writing of an ink map (_line_candidates), its boxes times ``factor``."""
    return _number(_line_candidates(level, classify, factor), PICTURE_WEIGHTS, factor)


def _line_candidates(level: np.ndarray, classify: Classify, factor: float) -> Candidates:
    """Every plausible digit of the one line of writing in an ink map (SeveralLines, its rows times
    ``factor``, when it holds more), read: of the ways its components are cut (_picture_atoms), the one whose
    best reading scores higher."""
    ways, height, signs = _picture_atoms(level)

    def pixels(group: list[_Atom]) -> np.ndarray:
        return preprocessing.to_mnist(_cut_out(level, group), ink="light")

    found = _read_ways([_one_line(atoms, height, factor, level) for atoms in ways], pixels, classify, height,
                       image_widths=True, signs=signs)
    return max(found, key=lambda way: best_reading(way, PICTURE_WEIGHTS)[1])


def count_separate(image: Image.Image | np.ndarray, ink: str = "auto") -> int:
    """How many clearly separate digits a picture holds (no model asked): groups of ink with clear gaps between.

    A picture no bigger than an MNIST digit holds one by construction, and
    folders of those are read by the thousand: they are not searched.
    """
    size = image.size if isinstance(image, Image.Image) else np.shape(image)[:2]
    if max(size) <= IMAGE_SIDE:
        return 1
    try:
        level, _ = _work_ink(image, ink)
    except preprocessing.PreprocessingError:
        return 0
    return _count_groups(_ink_components(level)[0])


def _reduced(level: np.ndarray, shrunk: int = 1) -> tuple[np.ndarray, float]:
    """The ink map shrunk (block maxima, so thin strokes survive) to at most _WORK pixels; and the factor
    from it to the picture, whose pixels ``shrunk`` of the map's spans (preprocessing.ink_level)."""
    factor = -(-max(level.shape) // _WORK)
    if factor == 1:
        return level, float(shrunk)
    h, w = level.shape
    padded = np.pad(level, ((0, -h % factor), (0, -w % factor)))
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.max(axis=(1, 3)), float(factor * shrunk)


def _components(mask: np.ndarray, dust: float = _DUST) -> list[_Atom]:
    """8-connected components of a boolean image, as runs (row, start, end) of ink per row, dust dropped
    (components of less than ``dust`` times the largest one's area)."""
    runs: list[tuple[int, int, int]] = []
    parent: list[int] = []

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []  # run indices of the row above
    for r in range(mask.shape[0]):
        row = mask[r]
        if not row.any():
            previous = []
            continue
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0]))))
        current = []
        k = 0
        for start, end in zip(edges[::2].tolist(), edges[1::2].tolist()):
            index = len(runs)
            runs.append((r, start, end))
            parent.append(index)
            current.append(index)
            while k < len(previous) and runs[previous[k]][2] < start:  # ends before our diagonal reach
                k += 1
            j = k
            while j < len(previous) and runs[previous[j]][1] <= end:  # starts within our diagonal reach
                a, b = root(index), root(previous[j])
                if a != b:
                    parent[max(a, b)] = min(a, b)
                j += 1
        previous = current
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(root(i), []).append(run)
    atoms = [_runs_atom(g) for g in groups.values()]
    if not atoms:
        return []
    areas = [_area(a) for a in atoms]
    biggest = max(areas)
    return [a for a, area in zip(atoms, areas) if area >= dust * biggest]


def _area(atom: _Atom) -> int:
    return sum(e - s for _, s, e in atom.parts)


def _ink_components(level: np.ndarray) -> tuple[list[_Atom], list[FoundSign]]:
    """The components of a picture's ink that may be digits or parts of one, not the scene around them;
    and the signs: points, commas and colons between digits, a minus before them (_split_signs).

    Of a photo's frame (the sheet's edge, a margin line, the table), what
    reaches the picture's border is much taller or flatter than the digits
    that do not, or beside their line, or a thin sliver along the picture's
    side (the sheet's edge); digits of a tightly cropped number reach
    the border too, but are as tall as the rest and on their line (and when all
    ink reaches it, all is kept). Specks
    (grain, dust, a stray dot) are short, and so is all the ink near them
    (within _MERGE_GAP sideways and _SHORT up or down), where the parts of one
    digit are as tall as a digit together (the halves of a broken 3) and one of
    them at least is a stroke (_STROKE: a table's grain makes long chains of
    specks): kept, a speck would be read as a digit or stretch the box of the
    digit it is taken with. Ink wholly above or below the digits' rows (by
    more than _MERGE_GAP) is clustered apart from theirs, and kept only where
    it may be a line of smaller digits (_smaller_line).
    """
    # A point written with the pen of heavy digits can be smaller than what counts as dust beside them.
    everything = _components(level > _INK, dust=_DUST * _SIGN_DUST)
    areas = [_area(a) for a in everything]
    dust = _DUST * max(areas, default=0)
    components = [a for a, area in zip(everything, areas) if area >= dust]
    h, w = level.shape
    at_border = [a.left <= 0 or a.top <= 0 or a.right >= w or a.bottom >= h for a in components]
    inner = [a for a, border in zip(components, at_border) if not border]
    if not inner:
        return components, []
    height = _line_height(inner)
    line = [a for a in inner if a.bottom - a.top >= _SHORT * height]
    top, bottom = min(a.top for a in line), max(a.bottom for a in line)

    def digit_like(a: _Atom) -> bool:  # for ink at the border: as tall as a digit, on the line, not a sliver
        sliver = (a.left <= 0 or a.right >= w) and a.right - a.left < _SLIVER * height
        return _SHORT * height <= a.bottom - a.top <= _FRAME * height and a.top < bottom and a.bottom > top \
            and not sliver

    # ... and beside the digits (within _BESIDE of them, or of border ink beside them: a tight crop's first
    # digits), not across the sheet from them (the table's edge).
    taken = [a for a, border in zip(components, at_border) if border and digit_like(a)]
    left, right = min(a.left for a in inner), max(a.right for a in inner)
    beside: list[_Atom] = []
    while near := [a for a in taken if a not in beside and left - _BESIDE * height <= a.right
                   and a.left <= right + _BESIDE * height]:
        beside += near
        left, right = min(left, *(a.left for a in near)), max(right, *(a.right for a in near))
    kept = [a for a, border in zip(components, at_border) if not border or a in beside]
    if len(kept) <= 1:
        return kept, []
    # Ink wholly above or below the digits' rows is clustered apart: near the line, a smaller line's digit
    # would be taken with the digit above or below it. Apart, it is kept if it may be a line of smaller
    # digits, as dark as these; their pens are compared once the wide pieces are sliced (_one_line).
    gap = _MERGE_GAP * height
    near = [a for a in kept if a.bottom > top - gap and a.top < bottom + gap]
    apart = [a for a in kept if a.bottom <= top - gap or a.top >= bottom + gap]
    # A sign is a speck too, or taken with the digit it stands next to: it is looked for among all the ink,
    # and stands between digits of the line.
    dots = [a for a, area in zip(everything, areas)
            if area < dust and 0 < a.left and 0 < a.top and a.right < w and a.bottom < h]
    digits, signs = _split_signs(_specks_dropped(near, height, level.shape), height, level, among=kept + dots)
    if apart:
        digits += _specks_dropped(apart, height, level.shape, level, _digits_ink(line, level, height, pen=False))
    return digits, signs


def _specks_dropped(atoms: list[_Atom], height: float, shape: tuple[int, int], level: np.ndarray | None = None,
                    ink: tuple[float, float] | None = None) -> list[_Atom]:
    """The atoms but for specks (_ink_components): those whose ink nearby (their cluster) is shorter than a
    digit (_SHORT of the line ``height``) or holds no stroke (_STROKE). With the picture's ``level`` and its
    digits' ``ink`` (_digits_ink), the clusters of a band of rows that is a line of smaller digits (_bands,
    _smaller_line) are kept too."""
    if not atoms:
        return []
    boxes = np.array([box_of([a]) for a in atoms])
    cluster = _clusters(boxes, (_MERGE_GAP * height / 2, _SHORT * height / 2), shape)
    placed = cluster >= 0
    reach_top, reach_bottom = np.full(len(atoms), np.inf), np.full(len(atoms), -np.inf)
    np.minimum.at(reach_top, cluster[placed], boxes[placed, 1])
    np.maximum.at(reach_bottom, cluster[placed], boxes[placed, 3])
    sizeable = np.zeros(len(atoms), bool)
    sizeable[cluster[placed & (boxes[:, 3] - boxes[:, 1] >= _STROKE * height)]] = True
    keep = (reach_bottom - reach_top >= _SHORT * height) & sizeable
    if level is not None:  # the clusters of a smaller line's pieces (its digits may stand far apart)
        place = {id(a): k for k, a in enumerate(atoms)}
        for band in _bands(atoms, height):
            if _smaller_line(band, level, ink):
                keep[[c for c in (cluster[place[id(a)]] for a in band) if c >= 0]] = True
    return [a for a, c in zip(atoms, cluster) if c >= 0 and keep[c]]


def _split_signs(atoms: list[_Atom], height: float, level: np.ndarray | None = None,
                 among: list[_Atom] | None = None, meets: np.ndarray | None = None
                 ) -> tuple[list[_Atom], list[FoundSign]]:
    """The atoms that are no sign; and the signs (points, commas, colons, a minus), each with its character
    and box, found ``among`` these pieces of ink (default: the atoms). ``meets`` is ``_meets(atoms)`` for a
    drawing's strokes (a picture's atoms never meet).

    A point or a comma stands between two digits (pieces of ink at least
    _SHORT of the line height tall on either side, near), low on their line,
    small (_SIGN_LEAST to _SIGN of the line height), with no other ink in
    its columns near it: a digit's own small pieces (a 5's bar, the end of a
    broken stroke, the dots of a traced digit) lie within its width or high
    up. A comma reaches further below the baseline than a point. A colon is
    two such marks, one above the middle of the line and one below it. A
    minus is a bar before the first digit, about halfway down it. In a
    picture (``level``) a sign is also filled, about as dark as the digits
    and at least about as wide (a minus as thick) as their pen: grain is
    faint, fine and curled.
    """
    if len(atoms) > _MAX_MARKS:  # no number (refused by _check_count): not searched
        return atoms, []
    boxes = [box_of([a]) for a in atoms] if meets is None else _pieces(atoms, meets)
    pieces = [b for b in _stacked(boxes) if b[3] - b[1] >= _SHORT * height]
    if level is not None:
        ink = _digits_ink(atoms, level, height)
        if ink is None:  # nothing to measure a picture's pen and ink by (a line's tallest piece is a digit)
            return atoms, []
        strength, pen = ink

    def inked(atom: _Atom, char: str, pen_share: float = 1.0) -> bool:
        """Written as a sign is: in a picture, filled, dark, and no finer than ``pen_share`` of the pen."""
        return level is None or _inked_as_sign(atom, char, level, strength, pen * pen_share)

    among = atoms if among is None else among
    signs, taken = [], set()
    for atom in among:
        char = _sign_char(atom, atoms, among, pieces, height)
        if char and inked(atom, char):
            signs.append((char, box_of([atom])))
            taken.add(id(atom))
    for upper, lower in _colons(atoms, [m for m in among if id(m) not in taken], boxes, pieces, height):
        # Two dots alike say more than one: of a colon, the smaller may be as small as _colons lets it be.
        smaller, bigger = sorted((upper, lower), key=lambda m: max(m.width, m.height))
        if inked(bigger, ".") and inked(smaller, ".", _SIGN_LIKE):
            signs.append((":", box_of([upper, lower])))
            taken |= {id(upper), id(lower)}
    return [a for a in atoms if id(a) not in taken], signs


def _digits_ink(atoms: Sequence[_Atom], level: np.ndarray, height: float,
                pen: bool = True) -> tuple[float, float] | None:
    """How dark a picture's digits are and how wide their pen (_strength, _pen), from its atoms at least _SHORT
    of the line ``height`` tall; None without one. The median digit's: a heavy digit beside light ones says
    little of the pen that wrote the rest. Without ``pen`` the pen is not measured (the dearer measure),
    and is 0: any pen is as wide."""
    digits = [a for a in atoms if a.height >= _SHORT * height]
    if not digits:
        return None
    return (float(np.median([_strength(a, level) for a in digits])),
            float(np.median([_pen(a) for a in digits])) if pen else 0.0)


def _stacked(boxes: list[Box]) -> list[Box]:
    """The boxes joined where they share most of the narrower one's width: the pieces of a digit broken
    across (a faint 5's bar and bowl) make one."""
    joined: list[Box] = []
    for box in sorted(boxes):
        if joined and _overlap(joined[-1], box) >= _SHARED:
            last = joined.pop()
            box = (min(last[0], box[0]), min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3]))
        joined.append(box)
    return joined


def _sign_char(atom: _Atom, atoms: Sequence[_Atom], marks: Sequence[_Atom],
               pieces: Sequence[Box], height: float) -> str | None:
    """".", "," or "-" if this atom's place and size are a point's, a comma's or a minus's among the digits'
    ``atoms`` and ``pieces`` and the ``marks`` that may be one (_split_signs), else None."""
    middle = (atom.left + atom.right) / 2
    if any(b[0] < middle < b[2] for b in pieces):
        return None
    if not any(b[2] <= atom.left for b in pieces):  # before the first digit
        right = min((b for b in pieces if b[0] >= atom.right), key=lambda b: b[0], default=None)
        return "-" if right is not None and right[0] - atom.right <= _SIGN_NEAR * height \
            and _minus_like(atom, atoms, right, height) else None
    if not _dot_sized(atom, height, 2 * _SIGN):
        return None
    line = _line_beside(box_of([atom]), atoms, pieces, height)
    if line is None:
        return None
    top, base = line
    if atom.top < top + _SIGN_LOW * (base - top):
        return None
    # No ink just above or below it (a slanted digit's foot), and no mark like it higher up (a colon).
    if not _clear([atom], atoms, height):
        return None
    left, right = atom.left - _SIGN_APART * height, atom.right + _SIGN_APART * height
    size = max(atom.width, atom.height)
    if any(other is not atom and _SIGN_LIKE * size <= max(other.width, other.height) <= _SIGN * height
           and _ink_within(other, left, right, top, atom.top) for other in marks):
        return None
    below = atom.bottom - base
    if below <= _POINT_BELOW * height and atom.height <= _SIGN * height and _round(atom):
        return "."
    if below <= _COMMA_BELOW * height and atom.height > atom.width:
        return ","
    return None


def _colons(atoms: Sequence[_Atom], marks: Sequence[_Atom], boxes: Sequence[Box], pieces: Sequence[Box],
            height: float) -> list[tuple[_Atom, _Atom]]:
    """The colons among these ``marks``: pairs of round marks of a point's size, one above the other between
    two digits (the digits' ``atoms``; ``boxes`` and ``pieces``, the boxes of their pieces as _split_signs
    finds them, before and after stacking), as upper and lower mark."""
    dots = sorted((m for m in marks if _dot_sized(m, height, _SIGN) and _round(m)), key=lambda m: m.left + m.right)
    if len(dots) > _MAX_SPECKS:  # ink as speckled as a dusty page: no colon could be told from its specks
        return []
    doubled = [m.left + m.right for m in dots]  # twice their middles, in order
    aside = 2 * _COLON_LEAN * _COLON * height  # a colon's lower dot is at most this (doubled) aside
    colons: list[tuple[_Atom, _Atom]] = []
    for k, upper in enumerate(dots):
        for lower in dots[bisect.bisect_left(doubled, doubled[k] - aside):bisect.bisect_right(doubled, doubled[k] + aside)]:
            if lower.top <= upper.bottom or any(upper in pair or lower in pair for pair in colons):
                continue
            sizes = sorted((max(upper.width, upper.height), max(lower.width, lower.height)))
            across = abs((upper.left + upper.right) - (lower.left + lower.right)) / 2
            down = (lower.top + lower.bottom - upper.top - upper.bottom) / 2
            if lower.bottom - upper.top > _COLON * height or across > _COLON_LEAN * down \
                    or sizes[0] < _SIGN_LIKE * sizes[1]:
                continue
            # A drawing's two dots are pieces of their own: stacked, they would make one digit-tall piece.
            own = (box_of([upper]), box_of([lower]))
            beside = pieces if not any(b in own for b in boxes) else \
                [b for b in _stacked([b for b in boxes if b not in own]) if b[3] - b[1] >= _SHORT * height]
            line = _line_beside(box_of([upper, lower]), atoms, beside, height)
            if line is None:
                continue
            top, base = line
            if top <= upper.top and (upper.top + upper.bottom) / 2 <= top + _COLON_MIDDLES[0] * (base - top) \
                    and (lower.top + lower.bottom) / 2 >= top + _COLON_MIDDLES[1] * (base - top) \
                    and lower.bottom - base <= _POINT_BELOW * height \
                    and _clear([upper, lower], [a for a in atoms if a is not upper and a is not lower], height):
                colons.append((upper, lower))
    return colons


def _dot_sized(atom: _Atom, height: float, tallest: float) -> bool:
    """Is this atom of a sign's size: at least _SIGN_LEAST of the line ``height`` long, at most _SIGN of it
    wide and ``tallest`` of it tall?"""
    return max(atom.width, atom.height) >= _SIGN_LEAST * height \
        and atom.width <= _SIGN * height and atom.height <= tallest * height


def _round(atom: _Atom) -> bool:
    """Neither side of its box longer than _ROUND times the other (a dash is a broken stroke's end)."""
    return max(atom.width, atom.height) <= _ROUND * min(atom.width, atom.height)


def _line_beside(box: Box, atoms: Sequence[_Atom], pieces: Sequence[Box], height: float
                 ) -> tuple[float, float] | None:
    """The top and the baseline of the digits' line where ``box`` stands between two digits' ``pieces``,
    each within _SIGN_NEAR of the line ``height``; None if it stands elsewhere (in a digit's columns,
    before the first digit or after the last)."""
    middle = (box[0] + box[2]) / 2
    before = [b for b in pieces if b[2] <= box[0]]
    after = [b for b in pieces if b[0] >= box[2]]
    if not before or not after or any(b[0] < middle < b[2] for b in pieces):
        return None
    left, right = max(before, key=lambda b: b[2]), min(after, key=lambda b: b[0])
    if box[0] - left[2] > _SIGN_NEAR * height or right[0] - box[2] > _SIGN_NEAR * height:
        return None
    lines = [_column_ink(b, atoms) for b in (left, right)]
    return (lines[0][1] + lines[1][1]) / 2, (lines[0][3] + lines[1][3]) / 2


def _column_ink(piece: Box, atoms: Sequence[_Atom]) -> Box:
    """The box of the atoms whose middles stand in this digit's ``piece``'s columns: where all its ink
    reaches (the bottom of a broken 3 is no piece of its own)."""
    return box_of([o for o in atoms if piece[0] <= (o.left + o.right) / 2 <= piece[2]])


def _clear(marks: Sequence[_Atom], atoms: Sequence[_Atom], height: float) -> bool:
    """No ink of ``atoms`` but the ``marks`` themselves in their columns (with _SIGN_APART beside them)
    within _SIGN_CLEAR of the line ``height`` above or below them."""
    left, top, right, bottom = box_of(marks)
    clear, apart = _SIGN_CLEAR * height, _SIGN_APART * height
    return not any(all(other is not m for m in marks)
                   and _ink_within(other, left - apart, right + apart, top - clear, bottom + clear)
                   for other in atoms)


def _minus_like(atom: _Atom, atoms: Sequence[_Atom], first: Box, height: float) -> bool:
    """Is this atom, before the ``first`` digit's piece, a bar about halfway down it with nothing above or below?"""
    if not (_MINUS[0] * height <= atom.width <= _MINUS[1] * height and atom.width >= _MINUS_FLAT * atom.height):
        return False
    _, top, _, base = _column_ink(first, atoms)
    if not top + _MINUS_MIDDLE[0] * (base - top) <= (atom.top + atom.bottom) / 2 <= top + _MINUS_MIDDLE[1] * (base - top):
        return False
    return not any(other is not atom and _ink_within(other, atom.left, atom.right, top, base) for other in atoms)


def _ink_within(atom: _Atom, left: float, right: float, top: float, bottom: float) -> bool:
    """Does any of this atom's ink (a picture's runs, a stroke's points and pen) lie inside the box?"""
    if atom.right <= left or atom.left >= right or atom.bottom <= top or atom.top >= bottom:
        return False
    if atom.points is None:
        return any(top <= r < bottom and s < right and left < e for r, s, e in atom.parts)
    x, y, reach = atom.points[:, 0], atom.points[:, 1], atom.reach
    return bool(((x + reach > left) & (x - reach < right) & (y + reach > top) & (y - reach < bottom)).any())


def _inked_as_sign(atom: _Atom, char: str, level: np.ndarray, strength: float, pen: float) -> bool:
    """Is this piece of a picture's ink written as a point, a comma or a minus (``char``) is, beside digits of
    this ink ``strength`` and ``pen``: filled, dark, and no finer than the pen?"""
    return (_area(atom) >= _FILLED[char] * atom.width * atom.height
            and _strength(atom, level) >= _SIGN_STRENGTH * strength
            and (atom.height if char == "-" else max(atom.width, atom.height)) >= _SIGN_PEN * pen)


def _pen(atom: _Atom) -> float:
    """How wide a picture atom's strokes are, in pixels (preprocessing.stroke_width of its ink)."""
    ink = np.zeros((int(atom.height), int(atom.width)), np.float32)
    for r, s, e in atom.parts:
        ink[r - int(atom.top), s - int(atom.left) : e - int(atom.left)] = 1.0
    return preprocessing.stroke_width(ink)


def _strength(atom: _Atom, level: np.ndarray) -> float:
    """How dark a picture atom's ink is: its strongest ink level."""
    return max(float(level[r, s:e].max()) for r, s, e in atom.parts)


def _clusters(boxes: np.ndarray, grow: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """The cluster of each box (left, top, right, bottom): boxes that overlap once each grows by ``grow``
    (sideways, up and down) on every side; -1 for a cluster too small beside the largest (dust).

    The grown boxes are painted and the painting's components taken, so that
    a page of dust costs no comparison of every pair.
    """
    h, w = shape
    x0, y0, x1, y1 = np.clip(np.round(boxes + np.array([-grow[0], -grow[1], grow[0], grow[1]])), 0,
                             (w, h, w, h)).astype(np.int64).T
    paint = np.zeros((h + 1, w + 1), np.int32)
    for y, x, sign in ((y0, x0, 1), (y0, x1, -1), (y1, x0, -1), (y1, x1, 1)):
        np.add.at(paint, (y, x), sign)
    label = np.full((h, w), -1, np.int64)
    for k, cluster in enumerate(_components(np.cumsum(np.cumsum(paint, axis=0), axis=1)[:h, :w] > 0)):
        for r, start, end in cluster.parts:
            label[r, start:end] = k
    return label[boxes[:, 1].astype(np.int64), boxes[:, 0].astype(np.int64)]  # where each box starts


def _runs_atom(runs: list[tuple[int, int, int]]) -> _Atom:
    rows = [r for r, _, _ in runs]
    return _Atom(min(s for _, s, _ in runs), min(rows), max(e for _, _, e in runs), max(rows) + 1, runs)


def _line_height(atoms: Sequence[_Atom], meets: np.ndarray | None = None) -> float:
    """The height of the digits: the median height of the pieces of ink at least half as tall as the tallest.

    A piece is an atom, or strokes whose inks meet taken together (_pieces):
    a drawn digit's strokes are often its halves or less (a 2's curve and
    its foot), and their own heights put the line below 0.75 of the digits'
    height in 67 of bench.numbers' 800 traced numbers (down to 0.55), too
    low for the widths a digit may span and the heights it should reach.
    ``meets`` is ``_meets(atoms)`` when already known.
    """
    if meets is None and any(a.points is not None for a in atoms):  # only a drawing's strokes meet
        meets = _meets(atoms)
    boxes = [box_of([a]) for a in atoms] if meets is None else _pieces(atoms, meets)
    heights = [bottom - top for _, top, _, bottom in boxes]
    tallest = max(heights)
    return float(np.median([h for h in heights if h >= 0.5 * tallest]))


def _pieces(atoms: Sequence[_Atom], meets: np.ndarray) -> list[Box]:
    """The boxes of the atoms joined where their inks meet (``meets``, from _meets: only a drawing's strokes do)."""
    group = list(range(len(atoms)))
    for i, j in zip(*np.nonzero(np.triu(meets))):
        if group[i] != group[j]:
            joined = group[j]
            group = [group[i] if g == joined else g for g in group]
    return [box_of([a for a, g in zip(atoms, group) if g == k]) for k in sorted(set(group))]


def _count_groups(atoms: list[_Atom]) -> int:
    if not atoms:
        return 0
    height = _line_height(atoms)
    groups, reach = 0, -math.inf
    for atom in sorted(atoms, key=lambda a: a.left):
        if atom.left - reach > _SEPARATE * height:
            groups += 1
        reach = max(reach, atom.right)
    return groups


def _picture_atoms(level: np.ndarray) -> tuple[list[list[_Atom]], float, list[FoundSign]]:
    """The ways to cut the components into atoms: the wide ones sliced at their candidate cuts leaning with
    their ink, and, where that differs, with those wider than one digit cut upright (_slices); the line
    height, from the components; and the signs.

    Two touching digits' ink leans as a whole with their own slants and with
    the step between their baselines, which is no slant at all. On numbers of
    training digits that models trained on the other 50,000 had not seen,
    composed as bench.numbers composes them, the better-scoring of the two
    ways read 228 of 280 touching numbers right, against 203 leaning alone.
    Clear and overlapping ones read as before (529 of 560, against 528; 530
    with the weights learnt again with both ways): a single digit as wide as
    two is rare, and cut upright across its slant its pieces can pass for
    1s and 2s (cutting every wide component upright as well read 526).
    """
    components, signs = _ink_components(level)
    if not components:
        raise preprocessing.PreprocessingError("no ink found")
    _check_count(len(components))
    height = _line_height(components)
    leaning = [_slices(component, height) for component in components]
    # The upright way shares the leaning way's atoms where it cuts alike, so that they are cut out once.
    upright = [_slices(component, height, lean=False) if component.width > _CONTACT_ABOVE * component.height
               else pieces for component, pieces in zip(components, leaning)]
    differ = any([a.parts for a in pieces] != [a.parts for a in other] for pieces, other in zip(upright, leaning))
    ways = []
    for way in (leaning, upright) if differ else (leaning,):
        for origin, pieces in enumerate(way):
            for order, piece in enumerate(pieces):
                piece.origin, piece.order = origin, order
        ways.append([piece for pieces in way for piece in pieces])
    return ways, height, signs


def _slices(component: _Atom, height: float, lean: bool = True) -> list[_Atom]:
    """A component cut at the low points of its ink profile, if wide enough to hold several digits.

    With ``lean``, the cuts lean as the ink leans (its second moments), so
    that between two slanted touching digits a cut passes through their
    contact alone; else they run upright.
    """
    if component.width <= _CUT_ABOVE * height:
        return [component]
    rows = np.array([r for r, _, _ in component.parts], np.float64)
    starts = np.array([s for _, s, _ in component.parts], np.float64)
    ends = np.array([e for _, _, e in component.parts], np.float64)
    lengths = ends - starts
    centre_row = float((rows * lengths).sum() / lengths.sum())
    # Each run as its centre, weighed by its length.
    slant = _slant(rows, (starts + ends - 1) / 2, lengths) if lean else 0.0
    shift = {r: int(round(slant * (r - centre_row))) for r in range(component.top, component.bottom)}
    low = min(s - shift[r] for r, s, _ in component.parts)
    width = max(e - shift[r] for r, _, e in component.parts) - low
    mask = np.zeros((component.height, width), bool)
    for r, start, end in component.parts:
        mask[r - component.top, start - shift[r] - low : end - shift[r] - low] = True
    profile = np.convolve(mask.sum(axis=0).astype(np.float64), np.ones(3) / 3, mode="same")
    margin = max(2, int(_CUT_MARGIN * height))
    inner = range(margin, width - margin)
    band, wide_band = max(1, int(_CUT_BAND * height)), max(1, int(_CONTACT_BAND * height))
    stroke = max(1.0, preprocessing.stroke_width(mask.astype(np.float32)))
    minima = {x for x in inner if profile[x] <= profile[x - 1] and profile[x] <= profile[x + 1]}
    contacts = set()
    if width > _CONTACT_ABOVE * component.height:
        # Wider than one digit: look also for contacts, where a way down crosses at most one stroke
        # (the least such near its column, searched further aside than other cuts: touching digits'
        # widths overlap). Beside a 1's upright the profile stays high (the neighbour's arcs run
        # along it) while the way through the contact crosses little. Only contacts search further:
        # the profile's cuts searching as far found cheap ways through wide single 0s and 2s.
        crossed = dict(zip(inner, _least_crossings(mask, np.arange(margin, width - margin), wide_band).tolist()))
        contacts = {x for x in inner if x - 1 in crossed and x + 1 in crossed and crossed[x] <= stroke
                    and crossed[x] < crossed[x - 1] and crossed[x] <= crossed[x + 1]}
    cuts: list[int] = []
    for x in sorted(minima | contacts, key=lambda x: (x not in contacts, profile[x])):
        if len(cuts) < _MAX_CUTS and all(abs(x - c) >= _CUT_SPACING * height for c in cuts):
            cuts.append(x)
    paths = [np.zeros(component.height, int)]
    costs = [0.0]
    for x in sorted(cuts):
        path, ink = _cut_path(mask, x, wide_band if x in contacts else band)
        paths.append(path)
        costs.append(max(_CUT_LEAST, ink / stroke))
    paths.append(np.full(component.height, width))
    slices = []
    for k in range(len(paths) - 1):
        runs = []
        for r, s, e in component.parts:
            row = r - component.top
            lo, hi = max(s, low + paths[k][row] + shift[r]), min(e, low + paths[k + 1][row] + shift[r])
            if lo < hi:
                runs.append((r, lo, hi))
        if runs:
            piece = _runs_atom(runs)
            piece.crossing = costs[k]
            slices.append(piece)
    return slices


def _cut_path(mask: np.ndarray, x: int, band: int) -> tuple[np.ndarray, float]:
    """The way down through ``mask`` near column ``x`` that crosses the least ink (one column aside per row at most).

    Returns, per row, the column where the right-hand side begins, and how
    many ink pixels the way crosses: between touching digits it slips through
    their contact, where a straight cut would cross every stroke in its column.
    """
    h, w = mask.shape
    lo, hi = max(1, x - band), min(w - 1, x + band + 1)
    ink = mask[:, lo:hi].astype(np.float64)
    ink += np.abs(np.arange(lo, hi) - x) * 1e-3  # of equal ways, the one nearest the cut
    total = ink[0].copy()
    steps = np.zeros((h, hi - lo), np.int8)
    for r in range(1, h):
        left = np.concatenate(([np.inf], total[:-1]))
        right = np.concatenate((total[1:], [np.inf]))
        options = np.stack([left, total, right])
        steps[r] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + ink[r]
    column = int(total.argmin())
    crossed = float(mask[h - 1, lo + column])
    path = np.empty(h, int)
    for r in range(h - 1, -1, -1):
        path[r] = lo + column
        if r:
            column += int(steps[r, column])
            crossed += float(mask[r - 1, lo + column])
    return path, crossed


def _least_crossings(mask: np.ndarray, xs: np.ndarray, band: int) -> np.ndarray:
    """For each column of ``xs``, the least ink a way down near it crosses (as _cut_path finds it, all at once)."""
    h, w = mask.shape
    columns = xs[:, None] + np.arange(-band, band + 1)[None, :]  # (columns, 2 band + 1)
    inside = (columns >= 1) & (columns < w - 1)
    ink = np.where(inside[None], mask[:, np.clip(columns, 0, w - 1)], np.inf)  # (rows, columns, 2 band + 1)
    total = ink[0].copy()
    edge = np.full((len(xs), 1), np.inf)
    for r in range(1, h):
        left = np.concatenate((edge, total[:, :-1]), axis=1)
        right = np.concatenate((total[:, 1:], edge), axis=1)
        total = np.minimum(np.minimum(left, total), right) + ink[r]
    return total.min(axis=1)


def _cut_out(level: np.ndarray, group: list[_Atom]) -> np.ndarray:
    """The ink of these atoms alone (not of neighbours reaching into their box), with a black margin."""
    left, top = min(a.left for a in group), min(a.top for a in group)
    right, bottom = max(a.right for a in group), max(a.bottom for a in group)
    margin = 2 + (bottom - top) // 10
    out = np.zeros((bottom - top + 2 * margin, right - left + 2 * margin), np.float32)
    for atom in group:
        for r, s, e in atom.parts:
            # One pixel around the run too: the faint anti-aliased edge of the stroke belongs to it.
            r0, s0 = max(r - 1, 0), max(s - 1, 0)
            patch = level[r0 : r + 2, s0 : e + 1]
            view = out[r0 - top + margin : r0 - top + margin + patch.shape[0],
                       s0 - left + margin : s0 - left + margin + patch.shape[1]]
            np.maximum(view, patch, out=view)
    return out


# --- drawings ------------------------------------------------------------------------------


def read_drawing(drawing: Drawing, classify: Classify) -> Number:
    """The number written in a drawing: its strokes grouped into digits."""
    return _number(drawing_candidates(drawing, classify), DRAWING_WEIGHTS, 1.0)


def drawing_candidates(drawing: Drawing, classify: Classify) -> Candidates:
    """Every plausible digit of a drawing (a run of its strokes), read."""
    atoms, signs, meets = _drawn_signs(drawing_atoms(drawing))
    _check_count(len(atoms))
    height = _line_height(atoms, meets)
    kept = _one_line(atoms, height)
    atoms, meets = kept, _meets_among(kept, atoms, meets)
    erasers = [s for s in drawing.strokes if s.erase]

    def pixels(group: list[_Atom]) -> np.ndarray:
        strokes = sorted((part for atom in group for part in atom.parts), key=lambda p: p[0])
        # Erasers are painted in their place in time; one reaching into no stroke of the group changes nothing.
        ordered = sorted([*strokes, *((drawing.strokes.index(e), e) for e in erasers)], key=lambda p: p[0])
        return Drawing(drawing.width, drawing.height, [s for _, s in ordered]).to_vector()

    return _candidates(atoms, pixels, classify, height, image_widths=False, signs=signs, meets=meets)


def drawing_atoms(drawing: Drawing) -> list[_Atom]:
    """One atom per ink stroke, its box including the pen."""
    if drawing.is_empty:
        raise DrawingError("drawing is empty")
    atoms = []
    for index, stroke in enumerate(drawing.strokes):
        if stroke.erase:
            continue
        half = drawing.pen_of(stroke) / 2
        points = np.asarray(stroke.points, np.float64)
        (left, top), (right, bottom) = points.min(axis=0) - half, points.max(axis=0) + half
        if len(points) > _MAX_POINTS:  # where strokes meet is found point by point against point
            points = points[np.linspace(0, len(points) - 1, _MAX_POINTS).round().astype(int)]
        atoms.append(_Atom(float(left), float(top), float(right), float(bottom), [(index, stroke)], index,
                           points=points, reach=half))
    return atoms


def count_drawn(drawing: Drawing) -> int | None:
    """How many clearly separate digits a drawing holds (no model asked); None for more strokes than a
    number may have, which only reading it as a number refuses."""
    marks = sum(not stroke.erase for stroke in drawing.strokes)
    if marks == 0:
        return 0
    return None if marks > _MAX_MARKS else _count_groups(_drawn_signs(drawing_atoms(drawing))[0])


def _drawn_signs(atoms: list[_Atom]) -> tuple[list[_Atom], list[FoundSign], np.ndarray | None]:
    """A drawing's strokes that are no sign, the signs (_split_signs), and which of those strokes meet
    (_meets, found once for the signs, the line and the candidates: point against point, it is the dearest
    measure of a drawing); None for more strokes than a number may have, refused by _check_count."""
    if len(atoms) > _MAX_MARKS:  # refused by _check_count: not searched
        return atoms, [], None
    meets = _meets(atoms)
    kept, signs = _split_signs(atoms, _line_height(atoms, meets), meets=meets)
    return kept, signs, _meets_among(kept, atoms, meets)


def _meets_among(kept: list[_Atom], atoms: list[_Atom], meets: np.ndarray) -> np.ndarray:
    """Which of the ``kept`` strokes meet, from ``meets`` of all the ``atoms`` they were kept from."""
    place = {id(a): k for k, a in enumerate(atoms)}
    rows = [place[id(a)] for a in kept]
    return meets[np.ix_(rows, rows)]


# --- choosing the reading ------------------------------------------------------------------


def _check_count(atoms: int) -> None:
    if atoms > _MAX_MARKS:
        raise NumberError(f"too many separate marks ({atoms}) for a number: at most {MAX_DIGITS} digits are read")


def _one_line(atoms: list[_Atom], height: float, factor: float = 1.0, level: np.ndarray | None = None
              ) -> list[_Atom]:
    """The atoms of the one line of writing (_lines): ink apart from it (further than _MERGE_GAP of the line
    ``height`` above or below), in no line, is no part of the number (a smaller line's specks or strokes
    too small to tell as one), and would be read into it.

    Writing in several lines, one above the other, is refused (SeveralLines,
    its rows times ``factor``, the input's): read as one number, their
    digits would be interleaved.
    """
    lines = _lines(atoms, height, level)
    if len(lines) > 1:
        raise SeveralLines([(top * factor, bottom * factor) for top, bottom in lines])
    if not lines:  # no piece a line is made of (a picture's slices can all be short): nothing to tell apart
        return atoms
    (top, bottom), gap = lines[0], _MERGE_GAP * height
    return [a for a in atoms if a.bottom > top - gap and a.top < bottom + gap]


def _lines(atoms: Sequence[_Atom], height: float, level: np.ndarray | None = None) -> list[tuple[float, float]]:
    """The lines of writing, top first, as the rows they reach (top, bottom).

    A line is the rows the strokes reach (pieces at least _LINE_PIECE of the
    line ``height`` tall, not specks), joined where they come within
    _MERGE_GAP of each other (the halves of a broken digit do), with a
    digit-tall piece among them (_SHORT: a photo's grain above or below the
    sheet's writing is none) or two side by side written as the digits are
    (a line of smaller digits, _smaller_line: grain is faint and fine).
    """
    bands = _bands(atoms, height)
    tall = [max(a.height for a in band) >= _SHORT * height for band in bands]
    ink = _digits_ink(atoms, level, height) if level is not None and not all(tall) else None
    return [(min(a.top for a in band), max(a.bottom for a in band)) for band, digit in zip(bands, tall)
            if digit or _smaller_line(band, level, ink)]


def _bands(atoms: Sequence[_Atom], height: float) -> list[list[_Atom]]:
    """The pieces a line of writing is made of (at least _LINE_PIECE of the line ``height`` tall), in bands
    of rows, top first: a piece within _MERGE_GAP of the rows of the band above joins it, unless a clear
    row parts the band into digits and smaller ones (_parted)."""
    bands: list[list[_Atom]] = []
    bottom = -math.inf
    for atom in sorted((a for a in atoms if a.height >= _LINE_PIECE * height), key=lambda a: a.top):
        if atom.top - bottom >= _MERGE_GAP * height:
            bands.append([])
        bands[-1].append(atom)
        bottom = max(bottom, atom.bottom)
    return [part for band in bands for part in _parted(band, height)]


def _parted(band: list[_Atom], height: float) -> list[list[_Atom]]:
    """A band of pieces (top first) parted at each clear row (rows no piece reaches, _PARTED of the line
    ``height`` at least) with digits on one side (at least _SHORT tall) and, on the other, nothing taller
    than _SMALLER of them: a serial number written close under a number. The halves of digits broken
    across are as tall as each other, and the digits of one line share their rows."""
    bottom = -math.inf
    for k, atom in enumerate(band):
        if k and atom.top - bottom >= _PARTED * height:
            above, below = max(a.height for a in band[:k]), max(a.height for a in band[k:])
            if max(above, below) >= _SHORT * height and min(above, below) <= _SMALLER * max(above, below):
                return [band[:k]] + _parted(band[k:], height)
        bottom = max(bottom, atom.bottom)
    return [band]


def _smaller_line(band: Sequence[_Atom], level: np.ndarray | None, ink: tuple[float, float] | None) -> bool:
    """Does this band of pieces (_bands) hold two side by side (sharing at most _SHARED of the narrower one's
    width) that, in a picture (``level``), are written as its digits are (``ink``, from _digits_ink: as
    dark, _SIGN_STRENGTH, and with as wide a pen, _LINE_PEN)?"""
    ordered = sorted((a for a in band if level is None or ink is None or
                      _strength(a, level) >= _SIGN_STRENGTH * ink[0] and _pen(a) >= _LINE_PEN * ink[1]),
                     key=lambda a: a.left)
    return any(_overlap(box_of([a]), box_of([b])) <= _SHARED for a, b in zip(ordered, ordered[1:]))


def read_lines(whole: Image.Image | np.ndarray | Drawing, classify: Classify,
               ink: str = "auto") -> list[Number | NumberError]:
    """A number per line of writing, top first (each read as read_image or read_drawing reads a number,
    its boxes in the input's coordinates), or why that line could not be read. Writing in one line is read
    as it is alone, and its errors are raised.

    A picture's lines are read from its ink map, found once for the whole
    picture (a photo's sheet, its ink's darkness), each within its rows and
    _LINE_MARGIN of its height around them, no further than halfway to the
    next line; a drawing's strokes go to the line nearest their middle,
    erasers to every line.
    """
    if isinstance(whole, Drawing):
        try:
            return [read_drawing(whole, classify)]
        except SeveralLines as several:
            parts = [Drawing(whole.width, whole.height, part) for part in _line_strokes(whole, several.lines)]
        return [_line_read(lambda: read_drawing(part, classify)) for part in parts]
    level, factor = _work_ink(whole, ink)
    try:
        return [_line_number(level, factor, classify)]
    except SeveralLines as several:
        rows = [(top / factor, bottom / factor) for top, bottom in several.lines]
    halves = [0] + [round((a[1] + b[0]) / 2) for a, b in zip(rows, rows[1:])] + [len(level)]
    # Read with what lies beyond it (a photo's table, a sheet's edge), a small line's height makes grain look
    # like digits.
    crops = [(max(above, math.floor(top - _LINE_MARGIN * (bottom - top))),
              min(below, math.ceil(bottom + _LINE_MARGIN * (bottom - top))))
             for (top, bottom), above, below in zip(rows, halves, halves[1:])]
    return [_line_read(lambda: _line_number(level[top:bottom], factor, classify).moved(1.0, 0.0, top * factor))
            for top, bottom in crops]


def _line_read(read: Callable[[], Number]) -> Number | NumberError:
    """A line's number, or why it cannot be read."""
    try:
        return read()
    except (NumberError, preprocessing.PreprocessingError, DrawingError) as exc:
        return exc if isinstance(exc, NumberError) else NumberError(str(exc))


def _line_strokes(drawing: Drawing, lines: list[tuple[float, float]]) -> list[list]:
    """A drawing's strokes split by line (the one nearest each ink stroke's middle row); erasers in every line."""
    parts: list[list] = [[] for _ in lines]
    for stroke in drawing.strokes:
        if stroke.erase:
            for part in parts:
                part.append(stroke)
            continue
        rows = [y for _, y in stroke.points]
        middle = (min(rows) + max(rows)) / 2
        nearest = min(range(len(lines)), key=lambda k: max(lines[k][0] - middle, middle - lines[k][1], 0.0))
        parts[nearest].append(stroke)
    return parts


@dataclass
class Candidates:
    """Every plausible digit of a number and what the reading's score is made of.

    ``runs`` are (first atom, end atom) pairs, each with its box, its 784
    pixels, the model's probabilities and doubt, and its features (run_features); the
    reading is the split of the atoms into runs with the highest total of
    weights times features, runs and the boundaries between them
    (boundary_features) alike.
    """

    atoms: list[_Atom]
    runs: list[tuple[int, int]]
    boxes: dict[tuple[int, int], Box]
    vectors: np.ndarray
    probabilities: np.ndarray
    doubts: list[str]  # why the model doubts each run's answer (Prediction.doubt), "" for none
    features: np.ndarray  # (runs, len(RUN_FEATURES))
    height: float  # the line height (_line_height)
    meets: np.ndarray  # (atoms, atoms): do the two strokes' inks meet (_crossing; never for a picture's atoms)
    cuts: list[list[tuple[int, float]]]  # per atom, its neighbouring slices and what the cuts cross (_cuts)
    signs: list[FoundSign] = field(default_factory=list)  # points, commas, colons, a minus (_split_signs)


def _candidates(atoms: list[_Atom], pixels: Callable[[list[_Atom]], np.ndarray], classify: Classify,
                height: float, image_widths: bool, signs: list[FoundSign] | None = None,
                meets: np.ndarray | None = None) -> Candidates:
    """Every plausible run of atoms of this line ``height``, read in one batch; ``signs``, the points, commas,
    colons and minus found beside them, are carried along; ``meets`` is ``_meets(atoms)`` when known.

    The one-digit check looks at widths across the slant on the 28x28 image
    (pictures) or on the strokes' box (drawings: traced strokes are drawn with
    a pen unlike MNIST's, and the box check measured better on them).
    """
    return _read_ways([atoms], pixels, classify, height, image_widths, signs, meets)[0]


def _read_ways(ways: list[list[_Atom]], pixels: Callable[[list[_Atom]], np.ndarray], classify: Classify,
               height: float, image_widths: bool, signs: list[FoundSign] | None = None,
               meets: np.ndarray | None = None) -> list[Candidates]:
    """The candidates of each way of cutting a line into atoms (_candidates), all read in one batch: a
    candidate the ways share (the same pixels) is asked and measured once."""
    laid = []
    drawn: dict[tuple[int, ...], np.ndarray] = {}  # the pixels of a run of atoms, by the atoms' identities
    for atoms in ways:
        order = sorted(range(len(atoms)), key=lambda k: (atoms[k].left + atoms[k].right) / 2)
        atoms = [atoms[k] for k in order]
        runs = [(i, j) for i in range(len(atoms)) for j in range(i + 1, min(i + _MAX_RUN, len(atoms)) + 1)
                if _joinable(atoms[i:j], height)]
        vectors = []
        for i, j in runs:
            group = tuple(map(id, atoms[i:j]))
            if group not in drawn:
                try:
                    drawn[group] = pixels(atoms[i:j])
                except (preprocessing.PreprocessingError, DrawingError):  # ink too faint once alone: not a digit
                    drawn[group] = np.zeros(PIXELS, np.uint8)
            vectors.append(drawn[group])
        # The boundaries' costs need the meeting strokes.
        laid.append((atoms, runs, np.stack(vectors), _meets(atoms) if meets is None else meets[np.ix_(order, order)]))
    every = np.concatenate([vectors for _, _, vectors, _ in laid])
    keys = [vector.tobytes() for vector in every]
    first: dict[bytes, int] = {}
    for k, key in enumerate(keys):
        first.setdefault(key, k)
    asked = every[list(first.values())]
    answered = dict(zip(first, classify(asked)))
    shapes = dict(zip(first, ink_shapes(asked).tolist() if image_widths else [None] * len(asked)))
    found, start = [], 0
    for atoms, runs, vectors, meeting in laid:
        mine = keys[start : start + len(runs)]
        start += len(runs)
        answers = [answered[key] for key in mine]
        probabilities = np.array([a.probabilities for a in answers], dtype=np.float64).reshape(len(runs), len(CLASSES))
        doubts = [a.doubt for a in answers]
        features = np.array([run_features(atoms[run[0] : run[1]], height, p, shapes[key], doubt)
                             for run, p, key, doubt in zip(runs, probabilities, mine, doubts)]
                            ).reshape(len(runs), len(RUN_FEATURES))
        boxes = {run: box_of(atoms[run[0] : run[1]]) for run in runs}
        found.append(Candidates(atoms, runs, boxes, vectors, probabilities, doubts, features, height, meeting,
                                _cuts(atoms), signs or []))
    return found


def _cuts(atoms: Sequence[_Atom]) -> list[list[tuple[int, float]]]:
    """For each atom, the slices of its component next to it in cut order: their places among ``atoms`` and
    how many strokes the cut between them crosses.

    The atoms are in the order of their centres, which is not always their
    slices' order: a cut leaning with its component can leave a slice's
    centre left of the one before it, or another component's piece (a 5's
    bar) can come between them. The cost of a boundary was read off the
    atom to its right, then the component's left edge: nothing. Counting
    the cuts that part slices instead, 10 of 30 clear-gap numbers of
    training digits read with a digit too many came out right.
    """
    place = {(a.origin, a.order): k for k, a in enumerate(atoms)}
    cuts = []
    for atom in atoms:
        previous, following = place.get((atom.origin, atom.order - 1)), place.get((atom.origin, atom.order + 1))
        cuts.append([(previous, atom.crossing)] if previous is not None else [])
        if following is not None:
            cuts[-1].append((following, atoms[following].crossing))
    return cuts


def _number(found: Candidates, weights: Weights, factor: float) -> Number:
    """The best reading of these candidates, its boxes scaled by ``factor`` to the input's coordinates."""
    chosen = best_split(found, weights)
    if len(chosen) > MAX_DIGITS:
        raise NumberError(f"{len(chosen)} digits found: at most {MAX_DIGITS} digits are read as one number")
    index = {run: k for k, run in enumerate(found.runs)}
    digits = []
    for run in chosen:
        k = index[run]
        left, top, right, bottom = found.boxes[run]
        digits.append(Digit(found.probabilities[k].astype(np.float32), found.doubts[k], pixels=found.vectors[k],
                            box=(left * factor, top * factor, right * factor, bottom * factor)))
    centres = [(d.box[0] + d.box[2]) / 2 for d in digits]
    signs = []
    for char, box in found.signs:
        after = sum(c < (box[0] + box[2]) / 2 * factor for c in centres)
        signs.append(Sign(char, after, tuple(v * factor for v in box)))
    return Number(digits, tuple(sorted(signs, key=lambda m: m.box[0])))


def box_of(group: Sequence[_Atom]) -> Box:
    """The box around these atoms: left, top, right, bottom."""
    return (min(a.left for a in group), min(a.top for a in group),
            max(a.right for a in group), max(a.bottom for a in group))


def _joinable(group: Sequence[_Atom], height: float) -> bool:
    """May these neighbouring atoms be one digit: no clear gap between them, and not much wider than a digit."""
    reach = group[0].right
    for atom in group[1:]:
        if atom.left - reach > _MERGE_GAP * height:
            return False
        reach = max(reach, atom.right)
    left, _, right, _ = box_of(group)
    return len(group) == 1 or right - left <= _JOIN_WIDTH * height


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
    slant = np.array([_slant(rows[k].ravel(), cols[k].ravel(), image.ravel()) for k, image in enumerate(images)])
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


def _slant(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> float:
    """How far the ink leans: columns moved per row (second moments), between -1 and 1."""
    total = max(float(weights.sum()), 1e-6)
    dy = rows - float((rows * weights).sum()) / total
    dx = cols - float((cols * weights).sum()) / total
    return float(np.clip((dx * dy * weights).sum() / max(float((dy * dy * weights).sum()), 1e-6), -1.0, 1.0))


RUN_FEATURES = (
    "log_confidence",  # of the digit read
    "digit",  # 1 for every run: what one more digit costs or earns
    "short",  # how much shorter than _SHORT of the line height
    "wide",  # the one-digit check on the 28x28 image: beyond the widest 5% of MNIST's digits of the class
    "narrow",  # ... and narrower than the narrowest 10%
    "box_wide",  # the one-digit check on the box (drawings): wider than 90% of the class
    "siding",  # separate tall marks that barely share their width
    "line_wide",  # width in line heights beyond one
    "rejoined",  # slices of one component glued back together
    "low",  # how much lower than the line height: digits of a number are about as tall, a digit's strokes lower
    "unlike",  # 1 when the model doubts the run as unlike any digit: two touching digits read as one, a slice of one
    "crowded",  # the other one-digit check on the 28x28 image: rows crossing more strokes than 95% of the class
)
BOUNDARY_FEATURES = (
    "cut",  # ink parted between the two digits: strokes the cut crosses (pictures), strokes that meet (drawings)
    "shared",  # separate marks of two digits sharing their width beyond _SHARED
    "close",  # how far the gap between the two digits falls short of _APART (in units of _APART)
)


@dataclass(frozen=True)
class Weights:
    """What each feature of a run and of a boundary between two digits adds to a reading's score."""

    run: tuple[float, ...]
    boundary: tuple[float, ...]


# Set by hand: the log-confidence of each digit, minus what the geometry says against it. Learning starts here.
HAND_SET_WEIGHTS = Weights(run=(1.0, 0.0, -8.0, -_WIDE, -_NARROW, -3.0, -_SIDING, 0.0, 0.0, 0.0, -1.0, -_WIDE),
                           boundary=(-_CUT, -_SIDING, 0.0))


def learnt_weights(medium: str) -> Weights:
    """The weights learnt for "picture" or "drawing" (bench/learn_number_weights.py, clients/number_weights.py)."""
    learnt = number_weights.LEARNT[medium]
    return Weights(run=tuple(learnt["run"]), boundary=tuple(learnt["boundary"]))


PICTURE_WEIGHTS = learnt_weights("picture")
DRAWING_WEIGHTS = learnt_weights("drawing")


def run_features(group: Sequence[_Atom], height: float, probabilities: np.ndarray, shape: Sequence[float] | None,
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
    short = max(0.0, _SHORT * height - stands) / (_SHORT * height)
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
        tall = atom.height >= _SHORT * height and max(a.height for a in before) >= _SHORT * height
        if atom.origin != before[-1].origin and tall and not any(_crossing(atom, a) for a in before):
            shared = (min(high, atom.right) - max(low, atom.left)) / max(min(atom.width, high - low), 1e-6)
            siding += max(0.0, _SHARED - shared) / _SHARED
        low, high = min(low, atom.left), max(high, atom.right)
    rejoined = sum(a.origin == b.origin for a, b in zip(group, group[1:]))
    return [math.log(max(float(probabilities.max()), 1e-6)), 1.0, short, wide, narrow, box_wide, siding,
            max(0.0, w / height - 1.0), float(rejoined), max(0.0, 1.0 - stands / height), float(doubt == UNLIKE),
            crowded]


def _ink_height(group: Sequence[_Atom]) -> float:
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
    shared = max(0.0, _overlap(found.boxes[before], found.boxes[after]) - _SHARED) / (1 - _SHARED)
    gap = (found.boxes[after][0] - found.boxes[before][2]) / found.height
    return [meeting + parted, shared, max(0.0, _APART - gap) / _APART]


def _meets(atoms: Sequence[_Atom]) -> np.ndarray:
    """Which pairs of atoms have inks that meet (_crossing): only strokes of a drawing ever do."""
    meets = np.zeros((len(atoms), len(atoms)), bool)
    for i, a in enumerate(atoms):
        if a.points is None:
            continue
        for j in range(i + 1, len(atoms)):
            b = atoms[j]
            # The boxes include the pen: strokes whose boxes are apart cannot meet.
            if a.left <= b.right and b.left <= a.right and a.top <= b.bottom and b.top <= a.bottom and _crossing(a, b):
                meets[i, j] = meets[j, i] = True
    return meets


def _crossing(a: _Atom, b: _Atom) -> bool:
    """Do two strokes' inks meet (strokes that touch belong to one digit more often than not)?"""
    if a.points is None or b.points is None:
        return False
    # Squared distances as |p|^2 + |q|^2 - 2 p.q: one small matrix product, not a (n, m, 2) array of differences.
    near = (a.points ** 2).sum(axis=1)[:, None] + (b.points ** 2).sum(axis=1)[None, :] - 2 * a.points @ b.points.T
    return float(near.min()) <= (a.reach + b.reach) ** 2


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """How much two boxes overlap in x, as a fraction of the narrower one."""
    shared = min(a[2], b[2]) - max(a[0], b[0])
    return max(0.0, shared) / max(min(a[2] - a[0], b[2] - b[0]), 1e-6)


def best_split(found: Candidates, weights: Weights) -> list[tuple[int, int]]:
    """The runs covering every atom in order with the highest total score (best_reading)."""
    return best_reading(found, weights)[0]


def best_reading(found: Candidates, weights: Weights) -> tuple[list[tuple[int, int]], float]:
    """The runs covering every atom in order with the highest total score, and that score (dynamic programming).

    Between two neighbouring digits: cutting through ink costs per stroke
    crossed, and separate marks that overlap in x or come closer than digits
    written apart pay for it (a stroke inside another digit's width is more
    likely part of it): boundary_features.
    """
    scores = dict(zip(found.runs, (found.features @ np.asarray(weights.run)).tolist()))
    boundary = np.asarray(weights.boundary)

    def between(prev: tuple[int, int], run: tuple[int, int]) -> float:
        return float(boundary @ boundary_features(found, prev, run))

    best: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
    for run in sorted(scores, key=lambda r: r[1]):
        i, _ = run
        if i == 0:
            best[run] = (scores[run], None)
            continue
        options = [(total + between(prev, run), prev) for prev, (total, _) in best.items() if prev[1] == i]
        if options:
            total, prev = max(options)
            best[run] = (total + scores[run], prev)
    ends = [run for run in best if run[1] == len(found.atoms)]
    run: tuple[int, int] | None = max(ends, key=lambda r: best[r][0])
    score = best[run][0]
    chosen = []
    while run is not None:
        chosen.append(run)
        run = best[run][1]
    return chosen[::-1], score
