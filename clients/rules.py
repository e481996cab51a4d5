"""Ruled lines under or through the writing (a form's line to write on, a
notebook's rules, an underline): found in a picture's ink map and taken out
of it before a digit, or a number's digits, are looked for (without_rules).

A rule touching a number's digits joins them all into one piece of ink as
wide as the number, which no cut reads back as its digits; one under a
digit becomes part of it. A rule is a straight band of ink, level or turned
a little (a photo's sheet), thin beside its length and longer than the
digits are tall (beside a single digit, reaching beyond it too); where a
digit's stroke crosses it, the ink runs on above or below the band and is
kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


_INK = 0.25  # pixels above this ink strength are ink (the faint fringe of a rule is taken out with it)
_THIN = 0.02  # a rule is at most this thick, of the map's longer side (a crossing stroke is thicker)
_TURNS = np.tan(np.radians(np.arange(-6.0, 6.01, 0.5)))  # the slopes a rule is looked for at
# A rule's fullest row holds at least _FLAT thin pixels, the rule is at least as many times as long as it is
# thick unless the caller says otherwise (Ruling.flat),
_FLAT = 25.0
_BARE = 0.5  # and bare (no digit on it) along this much of its length at least,
_BEYOND = 2  # and, beside a single digit, reaches this many pixels beyond it on both sides
_MOST_RULES = 40  # rules looked for in one picture (a notebook page shows a few dozen)


Writing = tuple[float, float, float]  # the digits' left and right ends and their height


@dataclass(frozen=True)
class Ruling:
    """What a rule is beside a caller's writing (without_rules).

    A digit's own bar, however thin its pen, is shorter than two digits are
    tall; a single digit's can be as long as it is tall, but ends at its
    other strokes (a 7's at the top of its stem): a number's rules are
    ``longer`` than two line heights, a single digit's reach ``beyond`` it.
    """

    longer: float  # a rule is at least this many times as long as the writing is tall,
    beyond: bool = False  # reaches beyond the writing on both sides (by _BEYOND pixels),
    flat: float = _FLAT  # is at least this many times as long as it is thick,
    ink: float = _INK  # and is looked for among the pixels of at least this ink strength


def without_rules(level: np.ndarray, writing: Callable[[np.ndarray], Writing | None], ruling: Ruling) -> np.ndarray:
    """The ink map (0..1) with its ruled lines taken out: ``level`` itself when it has none, else a copy with
    the rules' ink and its fringe at 0.

    ``writing`` finds the digits in a mask of ink (None without any), once
    every straight band is out of it; ``ruling`` says which bands are rules
    beside them.
    """
    mask = level > ruling.ink
    runs = _vertical_runs(mask)
    found = _rules(mask, runs, ruling.flat)
    if not found:
        return level
    cleaned = _erased(level, runs, found)
    digits = writing(cleaned > _INK)
    if digits is None:  # nothing but rules
        return cleaned
    left, right, height = digits
    kept = [rule for rule in found if rule[1] - rule[0] >= ruling.longer * height
            and (not ruling.beyond or rule[0] <= left - _BEYOND and rule[1] >= right + _BEYOND)]
    if not kept:
        return level
    return cleaned if len(kept) == len(found) else _erased(level, runs, kept)


Rule = tuple[int, int, np.ndarray, np.ndarray]  # first and last column + 1, and per column its rows (top, bottom)


def _rules(mask: np.ndarray, runs: np.ndarray, flat: float) -> list[Rule]:
    """The straight thin bands of ink long enough to be rules, at least ``flat`` times as long as thick (the
    fullest band of any slope first): their columns, and the rows they cover at each column. ``runs`` is
    _vertical_runs(mask)."""
    h, w = mask.shape
    thin_most = max(3, round(_THIN * max(h, w)))
    ys, xs = np.nonzero(mask & (runs <= thin_most))
    rules: list[Rule] = []
    # Sheared by each slope, a rule's thin pixels pile up in one row: the fullest row of any slope.
    stride = h + 2 * w + 1
    rows = ys[None, :] - np.rint(np.outer(_TURNS, xs)).astype(np.int64) + w
    cells = rows + stride * np.arange(len(_TURNS))[:, None]
    counts = np.bincount(cells.ravel(), minlength=stride * len(_TURNS))
    left_in = np.ones(len(xs), bool)
    while len(rules) < _MOST_RULES:
        turn, row = divmod(int(np.argmax(counts)), stride)
        if counts[turn * stride + row] < _FLAT:
            break
        # The band: the rows next to the fullest that are at least half as full, no thicker than thin_most.
        line = counts[turn * stride : (turn + 1) * stride]
        top = bottom = row
        while top - 1 >= 0 and bottom - top + 1 < thin_most and line[top - 1] * 2 >= line[row]:
            top -= 1
        while bottom + 1 < len(line) and bottom - top + 1 < thin_most and line[bottom + 1] * 2 >= line[row]:
            bottom += 1
        inside = left_in & (rows[turn] >= top - 1) & (rows[turn] <= bottom + 1)
        thick = bottom - top + 1
        shift = np.rint(_TURNS[turn] * np.arange(w)).astype(np.int64) - w
        band = np.arange(top, bottom + 1)[:, None] + shift[None, :]
        # Digits standing on the rule or crossing it hide it: any ink in the band continues it. Inside a
        # digit's loop the paper looks darker, and a faint rule can fade there: its long stretches are one.
        inked = (mask[np.clip(band, 0, h - 1), np.arange(w)] & (band >= 0) & (band < h)).any(axis=0)
        long = [(a, b) for a, b in _stretches(np.flatnonzero(inked), bridge=thin_most) if b - a >= flat * thick]
        if long:
            left, right = long[0][0], long[-1][1]
            thin = np.zeros(w, bool)
            thin[xs[inside]] = True
            if thin[left:right].mean() >= _BARE:
                rules.append((left, right, top + shift[left:right], bottom + 1 + shift[left:right]))
        # The band's pixels are looked at once, as a rule or as none.
        left_in &= ~inside
        counts -= np.bincount(cells[:, inside].ravel(), minlength=len(counts))
    return rules


def _erased(level: np.ndarray, runs: np.ndarray, rules: list[Rule]) -> np.ndarray:
    """A copy of ``level`` without the rules: in each rule's columns, the thin runs of ink down the column
    (``runs``, _vertical_runs of its ink) that reach its band (a row either side, for a band a row off the
    rule) and the faint fringe next to them go to 0, unless a thicker run reaches it there (a stroke crossing
    the rule or standing on it)."""
    cleaned = level.copy()
    h = level.shape[0]
    for left, right, tops, bottoms in rules:
        columns = np.arange(left, right)
        most = int(bottoms[0] - tops[0]) + 2
        # The window: the band and a row either side; the erased rows: the inked ones and a row either side.
        window = tops[None, :] - 1 + np.arange(most)[:, None]
        reach = np.where((window >= 0) & (window < h), runs[np.clip(window, 0, h - 1), columns], 0)
        inked = reach > 0
        bare = inked.any(axis=0) & (reach.max(axis=0) <= most)  # no stroke crosses the rule or stands on it
        first = np.argmax(inked, axis=0)
        last = most - 1 - np.argmax(inked[::-1], axis=0)
        rows = tops[None, :] - 2 + np.arange(most + 2)[:, None]
        offset = np.arange(most + 2)[:, None] - 1  # a row's place in the window
        erase = bare & (offset >= first - 1) & (offset <= last + 1) & (rows >= 0) & (rows < h)
        cleaned[rows[erase], np.broadcast_to(columns, rows.shape)[erase]] = 0.0
    return cleaned


def _stretches(columns: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """The runs of these sorted columns, gaps of at most ``bridge`` columns bridged: (first, last + 1), left
    to right."""
    if len(columns) == 0:
        return []
    breaks = np.flatnonzero(np.diff(columns) > bridge + 1)
    starts = columns[np.concatenate(([0], breaks + 1))]
    ends = columns[np.concatenate((breaks, [len(columns) - 1]))] + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _vertical_runs(mask: np.ndarray) -> np.ndarray:
    """For every pixel, how long the run of ink down its column through it is (0 off the ink)."""
    h, w = mask.shape
    padded = np.zeros((w, h + 1), np.int8)
    padded[:, 1:] = mask.T
    steps = np.diff(padded, axis=1, append=0).ravel()  # +1 where a run starts, -1 one past its end
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    lengths = np.zeros(len(steps) + 1, np.int64)
    lengths[starts + 1] = ends - starts  # runs start and end at different places
    lengths[ends + 1] = starts - ends
    return np.cumsum(lengths)[:-1].reshape(w, h + 1)[:, 1:].T
