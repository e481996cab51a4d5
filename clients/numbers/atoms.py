"""Pieces of ink (*atoms*) and their geometry: the strokes of a drawing or the
connected components of a picture's ink (and slices of them), their boxes,
the line height they give, how many clearly separate groups they make, and
which strokes meet.

Lengths here and in the package's other modules are in units of the line
height H (line_height) unless they say otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from clients import preprocessing
from clients.pieces import pieces, runs_mask


# A component smaller than this fraction of the largest one is dust, not a stroke.
DUST = 0.02
MERGE_GAP = 0.25  # atoms further apart than this are never one digit
SHORT = 0.55  # a digit shorter than this is suspicious (a bar, a foot)
_SEPARATE = 0.1  # ink groups further apart than this are counted as separate digits (count_separate)
# Separate tall marks sharing more than SHARED of the narrower one's width are
# probably one digit, less probably two (features.SIDING: what the wrong side costs at the extreme).
SHARED = 0.5


Box = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(eq=False)
class Atom:
    """A piece of ink: its box (work coordinates) and what it is made of (runs of a picture, or a stroke)."""

    left: float
    top: float
    right: float
    bottom: float
    parts: list
    origin: int = 0  # the component or stroke it comes from: slices of one component share it
    crossing: float = 0.0  # for a slice, how many strokes the cut at its left edge goes through
    order: int = 0  # for a slice, its place among its component's slices, left to right along the slant
    one: bool = False  # a 1's straight stroke taken out of the neighbour it runs along (ones.py)
    points: np.ndarray | None = None  # for a stroke, its points, and the ink's reach around them:
    reach: float = 0.0

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def width(self) -> float:
        return self.right - self.left


def box_of(group: Sequence[Atom]) -> Box:
    """The box around these atoms: left, top, right, bottom."""
    return (min(a.left for a in group), min(a.top for a in group),
            max(a.right for a in group), max(a.bottom for a in group))


def ink_mask(atom: Atom, runs: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """A picture atom's ink, or these ``runs`` of it, as a boolean image of its box."""
    box = (int(atom.top), int(atom.left), int(atom.bottom), int(atom.right))
    return runs_mask(atom.parts if runs is None else runs, box)


def pen_width(atom: Atom) -> float:
    """How wide a picture atom's strokes are, in pixels (preprocessing.stroke_width of its ink)."""
    return preprocessing.stroke_width(ink_mask(atom).astype(np.float32))


def connected_components(mask: np.ndarray, dust: float = DUST) -> list[Atom]:
    """8-connected components of a boolean image, as runs (row, start, end) of ink per row, dust dropped
    (components of less than ``dust`` times the largest one's area)."""
    runs, piece = pieces(mask)
    if len(runs) == 0:
        return []
    areas = np.bincount(piece, weights=runs[:, 2] - runs[:, 1])
    kept = areas >= dust * areas.max()
    runs, piece = runs[kept[piece]], piece[kept[piece]]
    order = np.argsort(piece, kind="stable")  # each piece's runs together, row by row
    ordered = [tuple(run) for run in runs[order].tolist()]
    bounds = [0, *(np.flatnonzero(np.diff(piece[order])) + 1).tolist(), len(ordered)]
    return [runs_atom(ordered[start:end]) for start, end in zip(bounds[:-1], bounds[1:])]


def ink_area(atom: Atom) -> int:
    return sum(e - s for _, s, e in atom.parts)


def runs_atom(runs: list[tuple[int, int, int]]) -> Atom:
    rows = [r for r, _, _ in runs]
    return Atom(min(s for _, s, _ in runs), min(rows), max(e for _, _, e in runs), max(rows) + 1, runs)


def line_height(atoms: Sequence[Atom], meets: np.ndarray | None = None) -> float:
    """The height of the digits: the median height of the pieces of ink at least half as tall as the tallest.

    A piece is an atom, or strokes whose inks meet taken together (joined_boxes):
    a drawn digit's strokes are often its halves or less (a 2's curve and
    its foot), and their own heights put the line below 0.75 of the digits'
    height in 67 of bench.numbers' 800 traced numbers (down to 0.55), too
    low for the widths a digit may span and the heights it should reach.
    ``meets`` is ``which_meet(atoms)`` when already known.
    """
    if meets is None and any(a.points is not None for a in atoms):  # only a drawing's strokes meet
        meets = which_meet(atoms)
    boxes = [box_of([a]) for a in atoms] if meets is None else joined_boxes(atoms, meets)
    heights = [bottom - top for _, top, _, bottom in boxes]
    tallest = max(heights)
    return float(np.median([h for h in heights if h >= 0.5 * tallest]))


def joined_boxes(atoms: Sequence[Atom], meets: np.ndarray) -> list[Box]:
    """The boxes of the atoms joined where their inks meet (``meets``, from which_meet: only a drawing's strokes do)."""
    group = list(range(len(atoms)))
    for i, j in zip(*np.nonzero(np.triu(meets))):
        if group[i] != group[j]:
            joined = group[j]
            group = [group[i] if g == joined else g for g in group]
    return [box_of([a for a, g in zip(atoms, group) if g == k]) for k in sorted(set(group))]


def count_groups(atoms: list[Atom]) -> int:
    return len(side_by_side(atoms, _SEPARATE * line_height(atoms))) if atoms else 0


def side_by_side(atoms: Sequence[Atom], gap: float) -> list[list[Atom]]:
    """The atoms in groups, left to right: an atom starting further than ``gap`` beside all the ones before
    it starts a group."""
    groups: list[list[Atom]] = []
    reach = -math.inf
    for atom in sorted(atoms, key=lambda a: a.left):
        if not groups or atom.left - reach > gap:
            groups.append([])
        groups[-1].append(atom)
        reach = max(reach, atom.right)
    return groups


def which_meet(atoms: Sequence[Atom]) -> np.ndarray:
    """Which pairs of atoms have inks that meet (strokes_meet): only strokes of a drawing ever do."""
    meets = np.zeros((len(atoms), len(atoms)), bool)
    for i, a in enumerate(atoms):
        if a.points is None:
            continue
        for j in range(i + 1, len(atoms)):
            b = atoms[j]
            # The boxes include the pen: strokes whose boxes are apart cannot meet.
            if a.left <= b.right and b.left <= a.right and a.top <= b.bottom and b.top <= a.bottom \
                    and strokes_meet(a, b):
                meets[i, j] = meets[j, i] = True
    return meets


def strokes_meet(a: Atom, b: Atom) -> bool:
    """Do two strokes' inks meet (strokes that touch belong to one digit more often than not)?"""
    if a.points is None or b.points is None:
        return False
    # Squared distances as |p|^2 + |q|^2 - 2 p.q: one small matrix product, not a (n, m, 2) array of differences.
    near = (a.points ** 2).sum(axis=1)[:, None] + (b.points ** 2).sum(axis=1)[None, :] - 2 * a.points @ b.points.T
    return float(near.min()) <= (a.reach + b.reach) ** 2


def x_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """How much two boxes overlap in x, as a fraction of the narrower one."""
    shared = min(a[2], b[2]) - max(a[0], b[0])
    return max(0.0, shared) / max(min(a[2] - a[0], b[2] - b[0]), 1e-6)
