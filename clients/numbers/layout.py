"""The one line of writing a number is read from: the bands of rows its pieces
reach, a line of smaller digits close above or below it told apart, writing
in several lines one above the other refused (one_line).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from clients.numbers.atoms import Atom, MERGE_GAP, SHARED, SHORT, box_of, pen_width, x_overlap
from clients.numbers.number import SeveralLines
from clients.numbers.signs import SIGN_STRENGTH, digits_ink, ink_strength


_LINE_PIECE = 0.25  # a line of writing is made of pieces at least this tall (smaller digits than the line's too)
_LINE_PEN = 0.45  # ... and, in a picture, of a pen at least this wide beside the digits' (smaller digits, thinner)
_PARTED = 0.05  # rows this clear part a band into digits and smaller ones (_parted) when
_SMALLER = 0.7  # these are at most this tall beside the digits


def one_line(atoms: list[Atom], height: float, factor: float = 1.0, level: np.ndarray | None = None
              ) -> list[Atom]:
    """The atoms of the one line of writing (_lines): ink apart from it (further than MERGE_GAP of the line
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
    (top, bottom), gap = lines[0], MERGE_GAP * height
    return [a for a in atoms if a.bottom > top - gap and a.top < bottom + gap]


def _lines(atoms: Sequence[Atom], height: float, level: np.ndarray | None = None) -> list[tuple[float, float]]:
    """The lines of writing, top first, as the rows they reach (top, bottom).

    A line is the rows the strokes reach (pieces at least _LINE_PIECE of the
    line ``height`` tall, not specks), joined where they come within
    MERGE_GAP of each other (the halves of a broken digit do), with a
    digit-tall piece among them (SHORT: a photo's grain above or below the
    sheet's writing is none) or two side by side written as the digits are
    (a line of smaller digits, smaller_line: grain is faint and fine).
    """
    bands = line_bands(atoms, height)
    tall = [max(a.height for a in band) >= SHORT * height for band in bands]
    ink = digits_ink(atoms, level, height) if level is not None and not all(tall) else None
    return [(min(a.top for a in band), max(a.bottom for a in band)) for band, digit in zip(bands, tall)
            if digit or smaller_line(band, level, ink)]


def line_bands(atoms: Sequence[Atom], height: float) -> list[list[Atom]]:
    """The pieces a line of writing is made of (at least _LINE_PIECE of the line ``height`` tall), in bands
    of rows, top first: a piece within MERGE_GAP of the rows of the band above joins it, unless a clear
    row parts the band into digits and smaller ones (_parted)."""
    bands: list[list[Atom]] = []
    bottom = -math.inf
    for atom in sorted((a for a in atoms if a.height >= _LINE_PIECE * height), key=lambda a: a.top):
        if atom.top - bottom >= MERGE_GAP * height:
            bands.append([])
        bands[-1].append(atom)
        bottom = max(bottom, atom.bottom)
    return [part for band in bands for part in _parted(band, height)]


def _parted(band: list[Atom], height: float) -> list[list[Atom]]:
    """A band of pieces (top first) parted at each clear row (rows no piece reaches, _PARTED of the line
    ``height`` at least) with digits on one side (at least SHORT tall) and, on the other, nothing taller
    than _SMALLER of them: a serial number written close under a number. The halves of digits broken
    across are as tall as each other, and the digits of one line share their rows."""
    bottom = -math.inf
    for k, atom in enumerate(band):
        if k and atom.top - bottom >= _PARTED * height:
            above, below = max(a.height for a in band[:k]), max(a.height for a in band[k:])
            if max(above, below) >= SHORT * height and min(above, below) <= _SMALLER * max(above, below):
                return [band[:k]] + _parted(band[k:], height)
        bottom = max(bottom, atom.bottom)
    return [band]


def smaller_line(band: Sequence[Atom], level: np.ndarray | None, ink: tuple[float, float] | None) -> bool:
    """Does this band of pieces (line_bands) hold two side by side (sharing at most SHARED of the narrower one's
    width) that, in a picture (``level``), are written as its digits are (``ink``, from digits_ink: as
    dark, SIGN_STRENGTH, and with as wide a pen, _LINE_PEN)?"""
    ordered = sorted((a for a in band if level is None or ink is None or
                      ink_strength(a, level) >= SIGN_STRENGTH * ink[0] and pen_width(a) >= _LINE_PEN * ink[1]),
                     key=lambda a: a.left)
    return any(x_overlap(box_of([a]), box_of([b])) <= SHARED for a, b in zip(ordered, ordered[1:]))
