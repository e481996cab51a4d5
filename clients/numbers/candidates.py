"""Every plausible digit of a line (read_candidates): the runs of neighbouring
atoms that may be one digit, each turned into the 784 pixels of the MNIST
recipe, all read by the model in one batch, with their features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from clients import preprocessing
from clients.drawing import DrawingError
from clients.numbers.atoms import Atom, Box, MERGE_GAP, box_of, which_meet
from clients.numbers.features import RUN_FEATURES, ink_shapes, run_features
from clients.numbers.signs import FoundSign
from clients.prediction import Prediction
from digitserve.contract import CLASSES, PIXELS


Classify = Callable[[np.ndarray], Sequence[Prediction]]  # (n, 784) uint8 -> the model's answer about each image


_MAX_RUN = 9  # atoms one digit may be made of (a traced digit can take nine strokes, dots of a pen's width among them)
_JOIN_WIDTH = 2.0  # atoms spanning more than this are never one digit (a wide, slanted 2 reaches 1.8)


@dataclass
class Candidates:
    """Every plausible digit of a number and what the reading's score is made of.

    ``runs`` are (first atom, end atom) pairs, each with its box, its 784
    pixels, the model's probabilities and doubt, and its features (run_features); the
    reading is the split of the atoms into runs with the highest total of
    weights times features, runs and the boundaries between them
    (boundary_features) alike.
    """

    atoms: list[Atom]
    runs: list[tuple[int, int]]
    boxes: dict[tuple[int, int], Box]
    vectors: np.ndarray
    probabilities: np.ndarray
    doubts: list[str]  # why the model doubts each run's answer (Prediction.doubt), "" for none
    features: np.ndarray  # (runs, len(RUN_FEATURES))
    height: float  # the line height (line_height)
    meets: np.ndarray  # (atoms, atoms): do the two strokes' inks meet (strokes_meet; never for a picture's atoms)
    cuts: list[list[tuple[int, float]]]  # per atom, its neighbouring slices and what the cuts cross (_cuts)
    signs: list[FoundSign] = field(default_factory=list)  # points, commas, colons, a minus (split_signs)


def read_candidates(atoms: list[Atom], pixels: Callable[[list[Atom]], np.ndarray], classify: Classify,
                height: float, image_widths: bool, signs: list[FoundSign] | None = None,
                meets: np.ndarray | None = None) -> Candidates:
    """Every plausible run of atoms of this line ``height``, read in one batch; ``signs``, the points, commas,
    colons and minus found beside them, are carried along; ``meets`` is ``which_meet(atoms)`` when known.

    The one-digit check looks at widths across the slant on the 28x28 image
    (pictures) or on the strokes' box (drawings: traced strokes are drawn with
    a pen unlike MNIST's, and the box check measured better on them).
    """
    return read_ways([atoms], pixels, classify, height, image_widths, signs, meets)[0]


def read_ways(ways: list[list[Atom]], pixels: Callable[[list[Atom]], np.ndarray], classify: Classify,
               height: float, image_widths: bool, signs: list[FoundSign] | None = None,
               meets: np.ndarray | None = None) -> list[Candidates]:
    """The candidates of each way of cutting a line into atoms (read_candidates), all read in one batch: a
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
        meeting = which_meet(atoms) if meets is None else meets[np.ix_(order, order)]
        laid.append((atoms, runs, np.stack(vectors), meeting))
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


def _cuts(atoms: Sequence[Atom]) -> list[list[tuple[int, float]]]:
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


def _joinable(group: Sequence[Atom], height: float) -> bool:
    """May these neighbouring atoms be one digit: no clear gap between them, and not much wider than a digit."""
    reach = group[0].right
    for atom in group[1:]:
        if atom.left - reach > MERGE_GAP * height:
            return False
        reach = max(reach, atom.right)
    left, _, right, _ = box_of(group)
    return len(group) == 1 or right - left <= _JOIN_WIDTH * height
