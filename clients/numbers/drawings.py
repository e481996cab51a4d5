"""Numbers in drawings: one atom per stroke, the signs among them, and the best
reading (read_drawing).
"""

from __future__ import annotations

import numpy as np

from clients.drawing import Drawing, DrawingError
from clients.numbers.atoms import Atom, count_groups, line_height, which_meet
from clients.numbers.candidates import Candidates, Classify, read_candidates
from clients.numbers.layout import one_line
from clients.numbers.number import MAX_MARKS, Number, check_count
from clients.numbers.reading import DRAWING_WEIGHTS, best_number
from clients.numbers.signs import FoundSign, split_signs


_MAX_POINTS = 200  # points of a stroke compared with another's (a digit's mouse strokes have fewer)


def read_drawing(drawing: Drawing, classify: Classify) -> Number:
    """The number written in a drawing: its strokes grouped into digits."""
    return best_number(drawing_candidates(drawing, classify), DRAWING_WEIGHTS, 1.0)


def drawing_candidates(drawing: Drawing, classify: Classify) -> Candidates:
    """Every plausible digit of a drawing (a run of its strokes), read."""
    atoms, signs, meets = _drawn_signs(drawing_atoms(drawing))
    check_count(len(atoms))
    height = line_height(atoms, meets)
    kept = one_line(atoms, height)
    atoms, meets = kept, _meets_among(kept, atoms, meets)
    erasers = [s for s in drawing.strokes if s.erase]

    def pixels(group: list[Atom]) -> np.ndarray:
        strokes = sorted((part for atom in group for part in atom.parts), key=lambda p: p[0])
        # Erasers are painted in their place in time; one reaching into no stroke of the group changes nothing.
        ordered = sorted([*strokes, *((drawing.strokes.index(e), e) for e in erasers)], key=lambda p: p[0])
        return Drawing(drawing.width, drawing.height, [s for _, s in ordered]).to_vector()

    return read_candidates(atoms, pixels, classify, height, image_widths=False, signs=signs, meets=meets)


def drawing_atoms(drawing: Drawing) -> list[Atom]:
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
        atoms.append(Atom(float(left), float(top), float(right), float(bottom), [(index, stroke)], index,
                           points=points, reach=half))
    return atoms


def count_drawn(drawing: Drawing) -> int | None:
    """How many clearly separate digits a drawing holds (no model asked); None for more strokes than a
    number may have, which only reading it as a number refuses."""
    marks = sum(not stroke.erase for stroke in drawing.strokes)
    if marks == 0:
        return 0
    return None if marks > MAX_MARKS else count_groups(_drawn_signs(drawing_atoms(drawing))[0])


def _drawn_signs(atoms: list[Atom]) -> tuple[list[Atom], list[FoundSign], np.ndarray | None]:
    """A drawing's strokes that are no sign, the signs (split_signs), and which of those strokes meet
    (which_meet, found once for the signs, the line and the candidates: point against point, it is the dearest
    measure of a drawing); None for more strokes than a number may have, refused by check_count."""
    if len(atoms) > MAX_MARKS:  # refused by check_count: not searched
        return atoms, [], None
    meets = which_meet(atoms)
    kept, signs = split_signs(atoms, line_height(atoms, meets), meets=meets)
    return kept, signs, _meets_among(kept, atoms, meets)


def _meets_among(kept: list[Atom], atoms: list[Atom], meets: np.ndarray) -> np.ndarray:
    """Which of the ``kept`` strokes meet, from ``meets`` of all the ``atoms`` they were kept from."""
    place = {id(a): k for k, a in enumerate(atoms)}
    rows = [place[id(a)] for a in kept]
    return meets[np.ix_(rows, rows)]
