"""A date's slashes: "12/05/2026" is not "121052026" (dated).

A slash is a straight stroke, and the model, asked for a digit, reads it as
a 1: the contract reads digits. What tells the two apart is the lean and
the context. A slash leans past upright and past the writer's other
digits, and a date's two slashes part its digits as a day, a month and a
year do: 1-2, 1-2 and 2 or 4 digits (12/05/2026, 5/12/26) or, year first,
4, 1-2 and 1-2 (2026/12/05), the day and the month being possible ones and
a year of four digits from 1900 to 2099. A 1 leaning alone proves nothing
(two in five of MNIST's 1s lean 15 degrees or more), nor does a single slash
(3/4, or a leaning 1 in "314"), so only two, making a date, are read as
slashes. On numbers of MNIST training digits that are dates with 1s where
the slashes would be, about one in ten is still read as a date: written so,
they are ambiguous to people too.

A photo taken at an angle shears the whole number: its upright digits lean
and its slashes may stand upright, so the slashes' own lean says little
there. Slashes leaning far past the other digits, measured so that a shear
does not move it (_SHEARED), are read as slashes whatever their own lean.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np

from clients.numbers.number import Digit, Number, Sign
from digitserve.contract import IMAGE_SIDE

_LEAN = 15.0  # a slash leans at least this many degrees from upright (two in five of MNIST's training 1s do),
_BEYOND = 10.0  # and this much more than the number's other digits do (the median: the writer's slant),
_STRAIGHT = 20.0  # and is straight: its ink's second moments this many times longer along than across.
# Or, whatever its own lean, its ink moves this many more columns per row (the tangent of its lean) than the
# other digits' does (the median): a shear adds the same to every digit's, so this difference is unmoved by it.
_SHEARED = 0.3


def dated(number: Number) -> Number:
    """The number with the two 1s that are a date's slashes written as slashes; as it was without such."""
    if number.signs or len(number.digits) < 6 or sum(d.digit == 1 for d in number.digits) < 2:
        return number  # no date, and most numbers: their images are not looked at
    shapes = [_shape(d) for d in number.digits]
    leans = [lean for lean, _ in shapes]
    slopes = np.tan(np.radians(leans))
    ones = [k for k, (d, (_, straight)) in enumerate(zip(number.digits, shapes)) if d.digit == 1 and straight]
    text = "".join(str(d.digit) for d in number.digits)
    best: tuple[float, int, int] | None = None
    for i, j in itertools.combinations(ones, 2):
        if not _date_like([text[:i], text[i + 1 : j], text[j + 1 :]]):
            continue
        others = [k for k in range(len(leans)) if k not in (i, j)]
        slant, slope = float(np.median([leans[k] for k in others])), float(np.median(slopes[others]))
        least = min(leans[i], leans[j])
        sheared = min(slopes[i], slopes[j]) - slope >= _SHEARED
        if (sheared or (least >= _LEAN and least - slant >= _BEYOND)) and (best is None or least > best[0]):
            best = (least, i, j)
    if best is None:
        return number
    _, i, j = best
    digits = [d for k, d in enumerate(number.digits) if k not in (i, j)]
    slashes = (Sign("/", i, number.digits[i].box), Sign("/", j - 1, number.digits[j].box))
    return replace(number, digits=digits, signs=slashes)


def _shape(digit: Digit) -> tuple[float, bool]:
    """How far a digit's ink leans from upright, in degrees (positive: its top to the right), and whether it
    is a straight stroke (_STRAIGHT), from the second moments of the image sent for it (blank: upright).
    The MNIST recipe only scales a digit's ink, so its lean is the lean it was written with."""
    ink = np.asarray(digit.pixels, np.float64).reshape(IMAGE_SIDE, IMAGE_SIDE)
    total = ink.sum()
    if total <= 0:
        return 0.0, False
    rows, cols = np.mgrid[:IMAGE_SIDE, :IMAGE_SIDE]
    y, x = (ink * rows).sum() / total, (ink * cols).sum() / total
    yy = (ink * (rows - y) ** 2).sum() / total
    xx = (ink * (cols - x) ** 2).sum() / total
    xy = (ink * (rows - y) * (cols - x)).sum() / total
    across, along = np.linalg.eigvalsh([[xx, xy], [xy, yy]])
    # x grows as the row shrinks (upward): leaning right.
    return math.degrees(math.atan2(-xy, yy)), along >= _STRAIGHT * max(across, 1e-9)


def _date_like(groups: list[str]) -> bool:
    """Do these three groups of digits make a date: day and month (either order) and a year of 2 or 4
    digits, or a year of 4 digits, a month and a day?"""
    first, second, third = groups
    if len(first) == 4 and len(second) in (1, 2) and len(third) in (1, 2):
        return _year(first) and _month(second) and _day(third)
    if len(first) in (1, 2) and len(second) in (1, 2) and len(third) in (2, 4) and _year(third):
        return (_day(first) and _month(second)) or (_month(first) and _day(second))
    return False


def _year(text: str) -> bool:
    """Two digits, or four from 1900 to 2099 (a meter's "5504" is none)."""
    return len(text) == 2 or text[:2] in ("19", "20")


def _day(text: str) -> bool:
    return 1 <= int(text) <= 31


def _month(text: str) -> bool:
    return 1 <= int(text) <= 12
