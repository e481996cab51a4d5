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
    box = (int(atom.left), int(atom.top), int(atom.right), int(atom.bottom))
    return runs_mask(atom.parts if runs is None else runs, box)


def runs_mask(runs: Sequence[tuple[int, int, int]], box: tuple[int, int, int, int]) -> np.ndarray:
    """Runs of ink (row, start, end) as a boolean image of the ``box`` (left, top, right, bottom) holding them.

    All painted at once: +1 where each run starts and -1 where it ends,
    summed along the row (runs of neighbouring slices may meet end to start).
    """
    left, top, right, bottom = box
    h, w = bottom - top, right - left
    rows, starts, ends = np.array(runs, np.int64).reshape(-1, 3).T
    at = (rows - top) * (w + 1) - left
    size = h * (w + 1)
    painted = np.bincount(at + starts, minlength=size) - np.bincount(at + ends, minlength=size)
    return np.cumsum(painted.reshape(h, w + 1), axis=1)[:, :-1] > 0


def pen_width(atom: Atom) -> float:
    """How wide a picture atom's strokes are, in pixels (preprocessing.stroke_width of its ink)."""
    return preprocessing.stroke_width(ink_mask(atom).astype(np.float32))


def connected_components(mask: np.ndarray, dust: float = DUST) -> list[Atom]:
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
    atoms = [runs_atom(g) for g in groups.values()]
    if not atoms:
        return []
    areas = [ink_area(a) for a in atoms]
    biggest = max(areas)
    return [a for a, area in zip(atoms, areas) if area >= dust * biggest]


def ink_area(atom: Atom) -> int:
    return sum(e - s for _, s, e in atom.parts)


def runs_atom(runs: list[tuple[int, int, int]]) -> Atom:
    rows = [r for r, _, _ in runs]
    return Atom(min(s for _, s, _ in runs), min(rows), max(e for _, _, e in runs), max(rows) + 1, runs)


def line_height(atoms: Sequence[Atom], meets: np.ndarray | None = None) -> float:
    """The height of the digits: the median height of the pieces of ink at least half as tall as the tallest.

    A piece is an atom, or strokes whose inks meet taken together (piece_boxes):
    a drawn digit's strokes are often its halves or less (a 2's curve and
    its foot), and their own heights put the line below 0.75 of the digits'
    height in 67 of bench.numbers' 800 traced numbers (down to 0.55), too
    low for the widths a digit may span and the heights it should reach.
    ``meets`` is ``which_meet(atoms)`` when already known.
    """
    if meets is None and any(a.points is not None for a in atoms):  # only a drawing's strokes meet
        meets = which_meet(atoms)
    boxes = [box_of([a]) for a in atoms] if meets is None else piece_boxes(atoms, meets)
    heights = [bottom - top for _, top, _, bottom in boxes]
    tallest = max(heights)
    return float(np.median([h for h in heights if h >= 0.5 * tallest]))


def piece_boxes(atoms: Sequence[Atom], meets: np.ndarray) -> list[Box]:
    """The boxes of the atoms joined where their inks meet (``meets``, from which_meet: only a drawing's strokes do)."""
    group = list(range(len(atoms)))
    for i, j in zip(*np.nonzero(np.triu(meets))):
        if group[i] != group[j]:
            joined = group[j]
            group = [group[i] if g == joined else g for g in group]
    return [box_of([a for a, g in zip(atoms, group) if g == k]) for k in sorted(set(group))]


def count_groups(atoms: list[Atom]) -> int:
    if not atoms:
        return 0
    height = line_height(atoms)
    groups, reach = 0, -math.inf
    for atom in sorted(atoms, key=lambda a: a.left):
        if atom.left - reach > _SEPARATE * height:
            groups += 1
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
