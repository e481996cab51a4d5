"""Numbers in pictures: the ink map at the size digits are found at, its
components that may be digits (not the scene around them, not specks), the
ways to cut them into atoms, and the best reading (read_image).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from clients import preprocessing
from clients.numbers.atoms import (
    Atom, DUST, MERGE_GAP, SHORT, box_of, connected_components, count_groups, ink_area, line_height, side_by_side,
)
from clients.numbers.candidates import Candidates, Classify, read_ways
from clients.numbers.cuts import CONTACT_ABOVE, cut_component, cut_out
from clients.numbers.layout import line_bands, one_line, smaller_line
from clients.numbers.number import Number, check_count
from clients.numbers.ones import one_apart
from clients.numbers.reading import PICTURE_WEIGHTS, best_number, best_reading
from clients.numbers.signs import FoundSign, SIGN_DUST, digits_ink, split_signs
from clients.rules import Ruling, without_lines
from digitserve.contract import IMAGE_SIDE


# Pixels above this ink strength belong to a digit's shape: faint anti-aliased
# fringes would otherwise join digits that merely come close.
_INK = 0.25
_WORK = 1024  # pictures are reduced (keeping every stroke) to this longer side for segmentation
_STROKE = 0.35  # a piece this tall is a stroke (a broken 1's half), not a speck of grain
_FRAME = 1.5  # ink reaching a picture's border and taller than this is the scene's, not a digit (_ink_components)
_SLIVER = 0.08  # ... and so is a sliver along its side narrower than this (a sheet's edge)
_BESIDE = 1.5  # ... and so is what stands further than this beside the digits (a table's edge across the sheet)
_APART = 3.0  # ink further than this beside the digits, and no digit's height together, is grain (_beside_digits)
# A ruled line under or through a number is at least two digits long; a form's box edges may lean (without_rules).
_RULES = Ruling(longer=2.0, leaning=True, faint=True)


def read_image(image: Image.Image | np.ndarray, classify: Classify, ink: str = "auto") -> Number:
    """The number written in a picture (dark ink on paper, light on dark, or detected)."""
    return line_number(*work_ink(image, ink), classify)


def picture_candidates(image: Image.Image | np.ndarray, classify: Classify, ink: str = "auto") -> tuple[Candidates, float]:
    """Every plausible digit of a picture, read; and the factor from work to picture coordinates."""
    level, factor = work_ink(image, ink)
    return _line_candidates(level, classify, factor), factor


def work_ink(image: Image.Image | np.ndarray, ink: str) -> tuple[np.ndarray, float]:
    """The picture's ink map at the size the digits are found at (_reduced), a ring round the writing and
    ruled lines taken out (without_lines), and the factor back to it."""
    level, factor = _reduced(*preprocessing.ink_level(image, ink))
    return without_lines(level, _digits_beside_rules, _RULES), factor


def line_number(level: np.ndarray, factor: float, classify: Classify) -> Number:
    """The number in the one line of writing of an ink map (_line_candidates), its boxes times ``factor``."""
    return best_number(_line_candidates(level, classify, factor), PICTURE_WEIGHTS, factor)


def _line_candidates(level: np.ndarray, classify: Classify, factor: float) -> Candidates:
    """Every plausible digit of the one line of writing in an ink map (SeveralLines, its rows times
    ``factor``, when it holds more), read: of the ways its components are cut (_picture_atoms), the one whose
    best reading scores higher."""
    ways, height, signs = _picture_atoms(level)

    def pixels(group: list[Atom]) -> np.ndarray:
        return preprocessing.to_mnist(cut_out(level, group), ink="light")

    found = read_ways([one_line(atoms, height, factor, level) for atoms in ways], pixels, classify, height,
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
        level, _ = work_ink(image, ink)
    except preprocessing.PreprocessingError:
        return 0
    return count_groups(_ink_components(level)[0])


def _reduced(level: np.ndarray, shrunk: int = 1) -> tuple[np.ndarray, float]:
    """The ink map shrunk (block maxima, so thin strokes survive) to at most _WORK pixels; and the factor
    from it to the picture, whose pixels ``shrunk`` of the map's spans (preprocessing.ink_level)."""
    factor = -(-max(level.shape) // _WORK)
    if factor == 1:
        return level, float(shrunk)
    return preprocessing.max_pool(level, factor), float(factor * shrunk)


def _digits_beside_rules(mask: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """Where the ink of a mask begins and ends, its digits' line height, and where the pieces at least half
    as tall as the tallest begin and end in height (without_rules); None without ink."""
    pieces = connected_components(mask)
    if not pieces:
        return None
    tallest = max(a.height for a in pieces)
    tall = [a for a in pieces if a.height >= 0.5 * tallest]
    return (min(a.left for a in pieces), max(a.right for a in pieces), line_height(pieces),
            min(a.top for a in tall), max(a.bottom for a in tall))


def _ink_components(level: np.ndarray) -> tuple[list[Atom], list[FoundSign]]:
    """The components of a picture's ink that may be digits or parts of one, not the scene around them;
    and the signs: points, commas and colons between digits, a minus before them (split_signs).

    Of a photo's frame (the sheet's edge, a margin line, the table), what
    reaches the picture's border is much taller or flatter than the digits
    that do not, or beside their line, or a thin sliver along the picture's
    side (the sheet's edge); digits of a tightly cropped number reach
    the border too, but are as tall as the rest and on their line (and when all
    ink reaches it, all is kept). Specks
    (grain, dust, a stray dot) are short, and so is all the ink near them
    (within MERGE_GAP sideways and SHORT up or down), where the parts of one
    digit are as tall as a digit together (the halves of a broken 3) and one of
    them at least is a stroke (_STROKE: a table's grain makes long chains of
    specks): kept, a speck would be read as a digit or stretch the box of the
    digit it is taken with. Ink far beside the digits with no digit's height
    among it is grain too (_beside_digits). Ink wholly above or below the digits' rows (by
    more than MERGE_GAP) is clustered apart from theirs, and kept only where
    it may be a line of smaller digits (smaller_line).
    """
    # A point written with the pen of heavy digits can be smaller than what counts as dust beside them.
    everything = connected_components(level > _INK, dust=DUST * SIGN_DUST)
    areas = [ink_area(a) for a in everything]
    dust = DUST * max(areas, default=0)
    components = [a for a, area in zip(everything, areas) if area >= dust]
    h, w = level.shape
    at_border = [a.left <= 0 or a.top <= 0 or a.right >= w or a.bottom >= h for a in components]
    inner = [a for a, border in zip(components, at_border) if not border]
    if not inner:
        return components, []
    height = line_height(inner)
    line = [a for a in inner if a.bottom - a.top >= SHORT * height]
    top, bottom = min(a.top for a in line), max(a.bottom for a in line)

    def digit_like(a: Atom) -> bool:  # for ink at the border: as tall as a digit, on the line, not a sliver
        sliver = (a.left <= 0 or a.right >= w) and a.right - a.left < _SLIVER * height
        return SHORT * height <= a.bottom - a.top <= _FRAME * height and a.top < bottom and a.bottom > top \
            and not sliver

    # ... and beside the digits (within _BESIDE of them, or of border ink beside them: a tight crop's first
    # digits), not across the sheet from them (the table's edge).
    taken = [a for a, border in zip(components, at_border) if border and digit_like(a)]
    left, right = min(a.left for a in inner), max(a.right for a in inner)
    beside: list[Atom] = []
    while near := [a for a in taken if a not in beside and left - _BESIDE * height <= a.right
                   and a.left <= right + _BESIDE * height]:
        beside += near
        left, right = min(left, *(a.left for a in near)), max(right, *(a.right for a in near))
    kept = [a for a, border in zip(components, at_border) if not border or a in beside]
    if len(kept) <= 1:
        return kept, []
    # Ink wholly above or below the digits' rows is clustered apart: near the line, a smaller line's digit
    # would be taken with the digit above or below it. Apart, it is kept if it may be a line of smaller
    # digits, as dark as these; their pens are compared once the wide pieces are sliced (one_line).
    gap = MERGE_GAP * height
    near = [a for a in kept if a.bottom > top - gap and a.top < bottom + gap]
    apart = [a for a in kept if a.bottom <= top - gap or a.top >= bottom + gap]
    # A sign is a speck too, or taken with the digit it stands next to: it is looked for among all the ink,
    # and stands between digits of the line.
    dots = [a for a, area in zip(everything, areas)
            if area < dust and 0 < a.left and 0 < a.top and a.right < w and a.bottom < h]
    digits, signs = split_signs(_beside_digits(_specks_dropped(near, height, level.shape), height), height, level,
                                among=kept + dots)
    if apart:
        digits += _specks_dropped(apart, height, level.shape, level, digits_ink(line, level, height, pen=False))
    return digits, signs


def _beside_digits(atoms: list[Atom], height: float) -> list[Atom]:
    """The atoms but for the groups of them that hold none as tall as a digit (SHORT of the line ``height``),
    a group being atoms each less than _APART of it beside the ones before (left to right). A table's grain
    beside the sheet can cluster into specks as tall as a digit together, which _specks_dropped keeps
    ("20901423" photographed on a grained table read "3520901423"); the pieces of a broken digit stand
    in line with the rest, and a sign beside a digit."""
    if not any(a.height >= SHORT * height for a in atoms):
        return atoms
    kept = {id(a) for group in side_by_side(atoms, _APART * height)
            if any(a.height >= SHORT * height for a in group) for a in group}
    return [a for a in atoms if id(a) in kept]


def _specks_dropped(atoms: list[Atom], height: float, shape: tuple[int, int], level: np.ndarray | None = None,
                    ink: tuple[float, float] | None = None) -> list[Atom]:
    """The atoms but for specks (_ink_components): those whose ink nearby (their cluster) is shorter than a
    digit (SHORT of the line ``height``) or holds no stroke (_STROKE). With the picture's ``level`` and its
    digits' ``ink`` (digits_ink), the clusters of a band of rows that is a line of smaller digits (line_bands,
    smaller_line) are kept too."""
    if not atoms:
        return []
    boxes = np.array([box_of([a]) for a in atoms])
    cluster = _clusters(boxes, (MERGE_GAP * height / 2, SHORT * height / 2), shape)
    placed = cluster >= 0
    reach_top, reach_bottom = np.full(len(atoms), np.inf), np.full(len(atoms), -np.inf)
    np.minimum.at(reach_top, cluster[placed], boxes[placed, 1])
    np.maximum.at(reach_bottom, cluster[placed], boxes[placed, 3])
    sizeable = np.zeros(len(atoms), bool)
    sizeable[cluster[placed & (boxes[:, 3] - boxes[:, 1] >= _STROKE * height)]] = True
    keep = (reach_bottom - reach_top >= SHORT * height) & sizeable
    if level is not None:  # the clusters of a smaller line's pieces (its digits may stand far apart)
        place = {id(a): k for k, a in enumerate(atoms)}
        for band in line_bands(atoms, height):
            if smaller_line(band, level, ink):
                keep[[c for c in (cluster[place[id(a)]] for a in band) if c >= 0]] = True
    return [a for a, c in zip(atoms, cluster) if c >= 0 and keep[c]]


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
    for k, cluster in enumerate(connected_components(np.cumsum(np.cumsum(paint, axis=0), axis=1)[:h, :w] > 0)):
        for r, start, end in cluster.parts:
            label[r, start:end] = k
    return label[boxes[:, 1].astype(np.int64), boxes[:, 0].astype(np.int64)]  # where each box starts


def _picture_atoms(level: np.ndarray) -> tuple[list[list[Atom]], float, list[FoundSign]]:
    """The ways to cut the components into atoms: the wide ones sliced at their candidate cuts leaning with
    their ink; where that differs, with those wider than one digit cut upright (cut_component); and where
    a component's side is a 1's straight stroke, with that stroke taken out of it (one_apart), the others
    sliced leaning. Also the line height, from the components; and the signs.

    Two touching digits' ink leans as a whole with their own slants and with
    the step between their baselines, which is no slant at all. On numbers of
    training digits that models trained on the other 50,000 had not seen,
    composed as bench.numbers composes them, the better-scoring of the two
    ways read 228 of 280 touching numbers right, against 203 leaning alone.
    Clear and overlapping ones read as before (529 of 560, against 528; 530
    with the weights learnt again with both ways): a single digit as wide as
    two is rare, and cut upright across its slant its pieces can pass for
    1s and 2s (cutting every wide component upright as well read 526).
    The third way, with the weights learnt again for it, read 235 of 280
    touching numbers of the other seeds (301-304) against 229, clear ones
    alike and overlapping ones 262 against 263.
    """
    components, signs = _ink_components(level)
    if not components:
        raise preprocessing.PreprocessingError("no ink found")
    check_count(len(components))
    height = line_height(components)
    leaning = [cut_component(component, height) for component in components]
    # The upright way shares the leaning way's atoms where it cuts alike, so that they are cut out once.
    upright = [cut_component(component, height, lean=False) if component.width > CONTACT_ABOVE * component.height
               else pieces for component, pieces in zip(components, leaning)]
    differ = any([a.parts for a in pieces] != [a.parts for a in other] for pieces, other in zip(upright, leaning))
    apart = [one_apart(component, height) for component in components]
    ones = [taken or pieces for taken, pieces in zip(apart, leaning)]
    ways = []
    for way in ((leaning, upright) if differ else (leaning,)) + ((ones,) if any(apart) else ()):
        for origin, pieces in enumerate(way):
            for order, piece in enumerate(pieces):
                piece.origin, piece.order = origin, order
        ways.append([piece for pieces in way for piece in pieces])
    return ways, height, signs
