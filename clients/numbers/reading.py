"""Choosing the reading: the split of the atoms into runs with the highest total
of weights times features (best_reading, dynamic programming), and the
number it makes (best_number). The weights are learnt for pictures and for
drawings apart (learnt.py); learning starts from HAND_SET_WEIGHTS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clients.numbers import learnt
from clients.numbers.candidates import Candidates
from clients.numbers.dates import dated
from clients.numbers.features import NARROW, SIDING, WIDE, boundary_features
from clients.numbers.number import Digit, MAX_DIGITS, Number, NumberError, Sign


_CUT = 0.8  # what cutting through one stroke costs (in log-confidence)


@dataclass(frozen=True)
class Weights:
    """What each feature of a run and of a boundary between two digits adds to a reading's score."""

    run: tuple[float, ...]
    boundary: tuple[float, ...]


# Set by hand: the log-confidence of each digit, minus what the geometry says against it. Learning starts here.
HAND_SET_WEIGHTS = Weights(run=(1.0, 0.0, -8.0, -WIDE, -NARROW, -3.0, -SIDING, 0.0, 0.0, 0.0, -1.0, -WIDE, 0.0),
                           boundary=(-_CUT, -SIDING, 0.0))


def learnt_weights(medium: str) -> Weights:
    """The weights learnt for "picture" or "drawing" (bench/learn_number_weights.py, learnt.py)."""
    weights = learnt.LEARNT[medium]
    return Weights(run=tuple(weights["run"]), boundary=tuple(weights["boundary"]))


PICTURE_WEIGHTS = learnt_weights("picture")
DRAWING_WEIGHTS = learnt_weights("drawing")


def best_split(found: Candidates, weights: Weights) -> list[tuple[int, int]]:
    """The runs covering every atom in order with the highest total score (best_reading)."""
    return best_reading(found, weights)[0]


def best_reading(found: Candidates, weights: Weights) -> tuple[list[tuple[int, int]], float]:
    """The runs covering every atom in order with the highest total score, and that score (dynamic programming).

    Between two neighbouring digits: cutting through ink costs per stroke
    crossed, and separate marks that overlap in x or come closer than digits
    written apart pay for it (a stroke inside another digit's width is more
    likely part of it): boundary_features.
    """
    scores = dict(zip(found.runs, (found.features @ np.asarray(weights.run)).tolist()))
    boundary = np.asarray(weights.boundary)

    def between(prev: tuple[int, int], run: tuple[int, int]) -> float:
        return float(boundary @ boundary_features(found, prev, run))

    best: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
    for run in sorted(scores, key=lambda r: r[1]):
        i, _ = run
        if i == 0:
            best[run] = (scores[run], None)
            continue
        options = [(total + between(prev, run), prev) for prev, (total, _) in best.items() if prev[1] == i]
        if options:
            total, prev = max(options)
            best[run] = (total + scores[run], prev)
    ends = [run for run in best if run[1] == len(found.atoms)]
    run: tuple[int, int] | None = max(ends, key=lambda r: best[r][0])
    score = best[run][0]
    chosen = []
    while run is not None:
        chosen.append(run)
        run = best[run][1]
    return chosen[::-1], score


def best_number(found: Candidates, weights: Weights, factor: float) -> Number:
    """The best reading of these candidates, its boxes scaled by ``factor`` to the input's coordinates."""
    chosen = best_split(found, weights)
    if len(chosen) > MAX_DIGITS:
        raise NumberError(f"{len(chosen)} digits found: at most {MAX_DIGITS} digits are read as one number")
    index = {run: k for k, run in enumerate(found.runs)}
    digits = []
    for run in chosen:
        k = index[run]
        left, top, right, bottom = found.boxes[run]
        digits.append(Digit(found.probabilities[k].astype(np.float32), found.doubts[k], pixels=found.vectors[k],
                            box=(left * factor, top * factor, right * factor, bottom * factor)))
    centres = [(d.box[0] + d.box[2]) / 2 for d in digits]
    signs = []
    for char, box in found.signs:
        after = sum(c < (box[0] + box[2]) / 2 * factor for c in centres)
        signs.append(Sign(char, after, tuple(v * factor for v in box)))
    return dated(Number(digits, tuple(sorted(signs, key=lambda m: m.box[0]))))
