"""Cutting a picture's wide components where touching digits may meet (cut_component).

The candidate cuts are the low points of the ink profile taken along the
component's slant and, in a component wider than a digit, the contacts
(columns a way down passes crossing at most one stroke); each cut then takes
the way down through the ink that crosses least (between two touching
digits: their contact). Whether a cut is kept is left to the reading.
"""

from __future__ import annotations

import numpy as np

from clients import preprocessing
from clients.numbers.atoms import Atom, runs_atom
from clients.pieces import runs_mask


# A component wider than this may hold touching digits. A 1 touching its neighbour makes a narrow pair
# ("17" about 0.6); cut below 0.75 too, the slices of one wide digit are left to the model and its doubt.
CUT_ABOVE = 0.5
_CUT_BAND = 0.12  # a cut may wander this far aside to find the least ink to cross
_CUT_LEAST = 0.5  # a cut costs at least what crossing half a stroke does
_CUT_MARGIN = 0.15  # no cut closer than this to a component's side
_CUT_SPACING = 0.18  # nor closer than this to another cut
_MAX_CUTS = 12
CONTACT_ABOVE = 1.1  # a component wider than this for its height (across its slant) is searched for contacts too
_CONTACT_BAND = 0.2  # ... and a cut through a contact may wander this far aside (the others keep _CUT_BAND)


def cut_component(component: Atom, height: float, lean: bool = True) -> list[Atom]:
    """A component cut at the low points of its ink profile, if wide enough to hold several digits.

    With ``lean``, the cuts lean as the ink leans (its second moments), so
    that between two slanted touching digits a cut passes through their
    contact alone; else they run upright.
    """
    if component.width <= CUT_ABOVE * height:
        return [component]
    rows = np.array([r for r, _, _ in component.parts], np.float64)
    starts = np.array([s for _, s, _ in component.parts], np.float64)
    ends = np.array([e for _, _, e in component.parts], np.float64)
    lengths = ends - starts
    centre_row = float((rows * lengths).sum() / lengths.sum())
    # Each run as its centre, weighed by its length.
    slant = ink_slant(rows, (starts + ends - 1) / 2, lengths) if lean else 0.0
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
    if width > CONTACT_ABOVE * component.height:
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
    cuts.sort()
    ways, crossed = _cut_paths(mask, cuts, [wide_band if x in contacts else band for x in cuts])
    paths = [np.zeros(component.height, int), *ways, np.full(component.height, width)]
    costs = [0.0, *(max(_CUT_LEAST, ink / stroke) for ink in crossed.tolist())]
    slices = []
    for k in range(len(paths) - 1):
        runs = []
        for r, s, e in component.parts:
            row = r - component.top
            lo, hi = max(s, low + paths[k][row] + shift[r]), min(e, low + paths[k + 1][row] + shift[r])
            if lo < hi:
                runs.append((r, lo, hi))
        if runs:
            piece = runs_atom(runs)
            piece.crossing = costs[k]
            slices.append(piece)
    return slices


def _cut_paths(mask: np.ndarray, xs: list[int], bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For each column of ``xs``, the way down through ``mask`` within its band of it that crosses the least
    ink (one column aside per row at most), all found at once.

    Returns, per way and row, the column where the right-hand side begins;
    and how many ink pixels each way crosses: between touching digits it
    slips through their contact, where a straight cut would cross every
    stroke in its column. Of equal ways, the one nearest its column.
    """
    h, w = mask.shape
    if not xs:
        return np.zeros((0, h), int), np.zeros(0)
    reach = np.asarray(bands)
    offsets = np.arange(-int(reach.max()), int(reach.max()) + 1)
    columns = np.asarray(xs)[:, None] + offsets[None, :]  # (ways, 2 band + 1)
    inside = (np.abs(offsets)[None, :] <= reach[:, None]) & (columns >= 1) & (columns < w - 1)
    ink = np.where(inside[None], mask[:, np.clip(columns, 0, w - 1)] + np.abs(offsets) * 1e-3, np.inf)
    total = ink[0].copy()
    steps = np.zeros(ink.shape, np.int8)
    edge = np.full((len(xs), 1), np.inf)
    for r in range(1, h):
        options = np.stack([np.concatenate((edge, total[:, :-1]), axis=1), total,
                            np.concatenate((total[:, 1:], edge), axis=1)])
        steps[r] = options.argmin(axis=0) - 1
        total = options.min(axis=0) + ink[r]
    ways = np.arange(len(xs))
    column = total.argmin(axis=1)
    paths = np.empty((len(xs), h), int)
    crossed = np.zeros(len(xs))
    for r in range(h - 1, -1, -1):
        paths[:, r] = columns[ways, column]
        crossed += mask[r, paths[:, r]]
        column = column + steps[r, ways, column]
    return paths, crossed


def _least_crossings(mask: np.ndarray, xs: np.ndarray, band: int) -> np.ndarray:
    """For each column of ``xs``, the least ink a way down within ``band`` of it crosses (as _cut_paths
    finds them, without the ways)."""
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


def cut_out(level: np.ndarray, group: list[Atom]) -> np.ndarray:
    """The ink of these atoms alone (not of neighbours reaching into their box), with a black margin."""
    left, top = min(a.left for a in group), min(a.top for a in group)
    right, bottom = max(a.right for a in group), max(a.bottom for a in group)
    margin = 2 + (bottom - top) // 10
    out = np.zeros((bottom - top + 2 * margin, right - left + 2 * margin), np.float32)
    ink = runs_mask([run for atom in group for run in atom.parts], (top, left, bottom, right))
    h, w = ink.shape
    # One pixel around the ink too: the faint anti-aliased edge of the stroke belongs to it.
    across = np.zeros((h, w + 2), bool)
    for k in range(3):
        across[:, k : k + w] |= ink
    near = np.zeros((h + 2, w + 2), bool)  # from the row above ``top`` and the column left of ``left``
    for k in range(3):
        near[k : k + h] |= across
    r0, r1 = max(top - 1, 0), min(bottom + 1, level.shape[0])
    c0, c1 = max(left - 1, 0), min(right + 1, level.shape[1])
    kept = near[r0 - top + 1 : r1 - top + 1, c0 - left + 1 : c1 - left + 1]
    view = out[r0 - top + margin : r1 - top + margin, c0 - left + margin : c1 - left + margin]
    view[kept] = level[r0:r1, c0:c1][kept]
    return out


def ink_slant(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> float:
    """How far the ink leans: columns moved per row (second moments), between -1 and 1."""
    total = max(float(weights.sum()), 1e-6)
    dy = rows - float((rows * weights).sum()) / total
    dx = cols - float((cols * weights).sum()) / total
    return float(np.clip((dx * dy * weights).sum() / max(float((dy * dy * weights).sum()), 1e-6), -1.0, 1.0))
