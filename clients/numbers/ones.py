"""A 1 written against its neighbour: its straight stroke taken out of the component (one_apart).

A 1 that runs along the side of a 0, a 6 or a 9, or crosses into an 8,
touches its neighbour over many rows: no way down parts them without
crossing ink all along the contact, and the model reads the pair as the
neighbour alone. Such a 1 is the component's left or right side, straight
for most of the line's height; taken out along its length, the rest is the
neighbour. The sides of many single digits are as straight (a narrow 0, a
4's or a 9's stem): which reading is right is left to the model and the
reading's score (the one_apart feature, features.py).
"""

from __future__ import annotations

import numpy as np

from clients.numbers.atoms import Atom, connected_components, ink_area, ink_mask, pen_width, runs_atom
from clients.numbers.cuts import CUT_ABOVE

_SLOPES = np.linspace(-0.6, 0.6, 25)  # columns per row a 1 may lean (MNIST's lean up to about 0.5)
_LONG = 0.75  # a 1 is a straight stroke at least this much of the line height long
_REST = 0.75  # ... beside a neighbour at least this tall
_REST_INK = 0.4  # ... holding at least this share of the ink
_WIDTH = 1.2  # the 1's stroke is taken this many pens wide from the straight side


def one_apart(component: Atom, height: float) -> list[Atom] | None:
    """A picture's component as its neighbour's ink and a 1's stroke along its left or right side, in their
    order, the stroke marked (Atom.one); None unless it may hold two digits (CUT_ABOVE of the line
    ``height`` wide) and a side runs straight over _LONG of the height, leaving a neighbour at least _REST
    tall."""
    if component.width <= CUT_ABOVE * height or component.height < _LONG * height:
        return None
    top, left = component.top, component.left
    mask = ink_mask(component)
    pen = max(1.0, pen_width(component))
    inked = mask.any(axis=1)
    columns = np.arange(mask.shape[1])
    right_edge = np.where(inked, np.where(mask, columns, -1).max(axis=1), 0)
    left_edge = np.where(inked, np.where(mask, columns, mask.shape[1]).min(axis=1), 0)
    lines = [(side, line) for side, edge in (("right", right_edge), ("left", left_edge))
             if (line := _straight(edge, inked, pen, _LONG * height)) is not None]
    if not lines:
        return None
    side, (place, first, last) = max(lines, key=lambda found: found[1][2] - found[1][1])  # the longer; right on a tie
    if last - first + 1 < _LONG * height:
        return None
    width = _WIDTH * pen  # taken from the straight side inward
    stroke_runs, rest_runs = [], []
    for r, s, e in component.parts:
        row = r - top
        if first <= row <= last:
            x = place[row] + left
            lo, hi = (x + 1 - width, x + 1) if side == "right" else (x, x + width)
            lo, hi = int(round(lo)), int(round(hi))
            a, b = max(s, lo), min(e, hi)
            if a < b:
                stroke_runs.append((r, a, b))
                rest_runs += [(r, u, v) for u, v in ((s, a), (b, e)) if u < v]
                continue
        rest_runs.append((r, s, e))
    if not stroke_runs or not rest_runs:
        return None
    # The neighbour is the rest's biggest piece, a digit's height and ink. The smaller pieces go with the
    # stroke: slivers of the 1's own edge left beside the strip, or a tip of the neighbour it cut off.
    pieces = connected_components(ink_mask(component, rest_runs), dust=0.0)
    areas = [ink_area(piece) for piece in pieces]
    neighbour = pieces[int(np.argmax(areas))]
    if neighbour.height < _REST * height or max(areas) < _REST_INK * ink_area(component):
        return None
    rest_runs = [(r + top, s + left, e + left) for r, s, e in neighbour.parts]
    stroke_runs += [(r + top, s + left, e + left) for piece in pieces if piece is not neighbour for r, s, e in piece.parts]
    stroke, rest = runs_atom(stroke_runs), runs_atom(rest_runs)
    stroke.one = True
    return [rest, stroke] if side == "right" else [stroke, rest]


def _straight(edge: np.ndarray, inked: np.ndarray, pen: float, least: float) -> tuple[np.ndarray, int, int] | None:
    """The longest stretch of rows over which a side of the ink (``edge``, its column per row) runs straight:
    within a third of a pen of a line leaning at most as much as a 1 does (skipping one row at most);
    the line's column per row, and the stretch's first and last rows. Lines near fewer than half of
    ``least`` rows are not looked at: no stretch along them is as long."""
    offsets = np.arange(len(edge)) - (len(edge) - 1) / 2
    tolerance = max(1.0, pen / 3)
    intercept = edge[None, :] - _SLOPES[:, None] * offsets[None, :]  # (slopes, rows): where each line would be
    places = np.arange(np.floor(intercept[:, inked].min()), np.ceil(intercept[:, inked].max()) + 1)
    # How many rows each line (slope, place) passes near, counted at once: each slope's intercepts sorted,
    # shifted apart from the other slopes' by more than any place spans.
    spread = places[-1] - places[0] + 4 * tolerance + 1
    shifts = np.arange(len(_SLOPES))[:, None] * spread
    flat = np.sort(intercept[:, inked], axis=1) + shifts
    lines = places[None, :] + shifts
    near_rows = (np.searchsorted(flat.ravel(), (lines + tolerance).ravel(), "right")
                 - np.searchsorted(flat.ravel(), (lines - tolerance).ravel(), "left")).reshape(lines.shape)
    slopes, kept = np.nonzero(near_rows >= least / 2)
    if not len(slopes):
        return None
    near = inked & (np.abs(intercept[slopes] - places[kept][:, None]) <= tolerance)  # (lines, rows)
    near[:, 1:-1] |= near[:, :-2] & near[:, 2:]  # a row skipped
    # The run of rows ending at each row: rows so far, less those counted before the last row off the line.
    counted = np.cumsum(near, axis=1)
    run = counted - np.maximum.accumulate(np.where(near, 0, counted), axis=1)
    line, last = np.unravel_index(int(run.argmax()), run.shape)
    if run[line, last] == 0:
        return None
    return (places[kept[line]] + _SLOPES[slopes[line]] * offsets, int(last - run[line, last] + 1), int(last))
