"""Learn the weights of a number's reading (clients/numbers/learnt.py) on numbers of MNIST *training* digits.

A reading is the split of a picture's or a drawing's atoms into digits with
the highest total of weights times features (clients.numbers.RUN_FEATURES for each
digit, BOUNDARY_FEATURES between neighbours). The weights are learnt as a
structured perceptron (averaged): numbers are composed as bench.numbers
composes them, but from training digits and with seeds of their own; for
each, the right split is the best-scoring one whose digits lie where the
digits were put (the boxes bench.numbers checks); whenever the reading
differs, the weights move toward the right split's features and away from
the reading's. The log-confidence keeps weight 1: it sets the scale. Pictures
and drawings (the same digits traced into strokes) are learnt apart: their
atoms are unlike (a picture's ink cut apart, a drawing's strokes).

    python -m bench.learn_number_weights --models-dir DIR [--medium picture] [--seeds 201,...,208] [--per-cell 15]
    python -m bench.learn_number_weights --models-dir DIR --medium drawing --seeds 201,202,203,204 --epochs 30 --rate 0.2

Drawings' weights go further from the hand-set ones: after 10 epochs at 0.05
their average stays near where learning starts, and on 1,260 other drawn
numbers of training digits (seeds 205-208) 34 had digits not found where
they are, against 22.

The model is loaded in this process (the client image needs no scikit-learn:
only the numbers learnt go into clients/numbers/learnt.py).
"""

from __future__ import annotations

import argparse
import pprint
import time
from pathlib import Path

import numpy as np

from bench.common import MNIST_DIR, ROOT, mnist
from bench.numbers import _FOUND, KINDS, LENGTHS, _overlap, make_samples
from bench.tune_cuts import CachedModel
from clients import numbers
from clients.numbers import learnt
from digitserve.settings import add_settings
from server.registry import PREFERRED_DEFAULT

OUT = ROOT / "clients" / "numbers" / "learnt.py"


def split_features(found: numbers.Candidates, split: list[tuple[int, int]]) -> np.ndarray:
    """The summed run and boundary features of a split, run features first."""
    index = {run: k for k, run in enumerate(found.runs)}
    runs = found.features[[index[run] for run in split]].sum(axis=0)
    boundaries = np.zeros(len(numbers.BOUNDARY_FEATURES))
    for prev, run in zip(split, split[1:]):
        boundaries += numbers.boundary_features(found, prev, run)
    return np.concatenate([runs, boundaries])


def right_split(found: numbers.Candidates, truth: list[tuple], factor: float,
                weights: numbers.Weights) -> list[tuple[int, int]] | None:
    """The best-scoring split whose k-th digit covers the k-th true box (None if there is none)."""
    scores = dict(zip(found.runs, (found.features @ np.asarray(weights.run)).tolist()))
    boundary = np.asarray(weights.boundary)
    # (atoms covered, digits placed) -> (score, last run, previous state)
    best: dict[tuple[int, int], tuple[float, tuple[int, int] | None, tuple[int, int] | None]] = {(0, 0): (0.0, None, None)}
    for run in sorted(found.runs, key=lambda r: r[1]):
        i, j = run
        box = tuple(v * factor for v in found.boxes[run])
        for placed in range(len(truth)):
            if (i, placed) not in best or _overlap(box, truth[placed]) < _FOUND:
                continue
            total, prev, _ = best[(i, placed)]
            if prev is not None:
                total += float(boundary @ numbers.boundary_features(found, prev, run))
            total += scores[run]
            if (j, placed + 1) not in best or best[(j, placed + 1)][0] < total:
                best[(j, placed + 1)] = (total, run, (i, placed))
    state: tuple[int, int] | None = (len(found.atoms), len(truth))
    if state not in best:
        return None
    split = []
    while state != (0, 0):
        _, run, state = best[state]
        split.append(run)
    return split[::-1]


def learn(cases: list[tuple[numbers.Candidates, list[tuple], float]], start: numbers.Weights, epochs: int,
          rate: float, seed: int) -> numbers.Weights:
    """Averaged structured perceptron from ``start``; the log-confidence weight stays 1."""
    runs = len(numbers.RUN_FEATURES)
    weights = np.concatenate([start.run, start.boundary]).astype(np.float64)
    total, steps = np.zeros_like(weights), 0
    order = np.random.default_rng(seed)
    for epoch in range(epochs):
        mistakes = 0
        for k in order.permutation(len(cases)):
            found, truth, factor = cases[k]
            current = numbers.Weights(tuple(weights[:runs]), tuple(weights[runs:]))
            read = numbers.best_split(found, current)
            if not all(_overlap(tuple(v * factor for v in found.boxes[r]), t) >= _FOUND
                       for r, t in zip(read, truth)) or len(read) != len(truth):
                right = right_split(found, truth, factor, current)
                step = rate * (split_features(found, right) - split_features(found, read))
                step[0] = 0.0  # the scale
                weights += step
                mistakes += 1
            total += weights
            steps += 1
        print(f"epoch {epoch + 1}: {mistakes} of {len(cases)} read wrong", flush=True)
    average = total / steps
    rounded = [round(float(w), 3) for w in average]
    return numbers.Weights(tuple(rounded[:runs]), tuple(rounded[runs:]))


def write(medium: str, weights: numbers.Weights, description: str) -> None:
    """Replace one medium's weights in clients/numbers/learnt.py, keeping the other's."""
    weights_now = {**learnt.LEARNT, medium: {"run": weights.run, "boundary": weights.boundary,
                                             "learnt_on": description}}
    OUT.write_text(f'''"""The learnt weights of a number's reading, per medium.

In the order of RUN_FEATURES and BOUNDARY_FEATURES (clients/numbers/features.py). Written by
bench/learn_number_weights.py; "learnt_on" says from what.
"""

LEARNT = {pprint.pformat(weights_now, width=120, sort_dicts=False)}
''')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learn_number_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default=PREFERRED_DEFAULT,
                        help="the model that reads, as the server does (default: the server's default)")
    parser.add_argument("--medium", choices=("picture", "drawing"), default="picture")
    parser.add_argument("--per-cell", type=int, default=15, help="numbers per length and gap kind and seed")
    # The pictures' weights: on 3,360 numbers of other training digits (seeds 101-108), learnt on these
    # eight seeds they read 17 more whole than learnt on two (201-202) for 10 epochs at 0.05, every gap
    # kind gaining; on six seeds, 12 to 15 more.
    parser.add_argument("--seeds", default="201,202,203,204,205,206,207,208",
                        help="comma-separated seeds of the composed numbers")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.1)
    add_settings(parser, [MNIST_DIR])
    args = parser.parse_args(argv)
    images, labels = mnist(args.mnist_dir, "train")
    model = CachedModel(args.models_dir, args.model)
    cases, missing = [], 0
    started = time.perf_counter()
    for seed in args.seeds.split(","):
        per_cell = {(n, k): args.per_cell for n in LENGTHS for k in KINDS}
        for _, _, sample in make_samples(images, labels, per_cell, int(seed)):
            if args.medium == "picture":
                (found, factor), truth = numbers.picture_candidates(sample.picture, model), sample.picture_boxes
            else:
                found, factor, truth = numbers.drawing_candidates(sample.drawing, model), 1.0, sample.drawing_boxes
            if right_split(found, truth, factor, numbers.HAND_SET_WEIGHTS) is None:
                missing += 1  # no split has the digits where they are: nothing to learn from
            else:
                cases.append((found, truth, factor))
    print(f"{len(cases)} numbers to learn from, {missing} without a right split "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    weights = learn(cases, numbers.HAND_SET_WEIGHTS, args.epochs, args.rate, seed=0)
    print(weights)
    write(args.medium, weights,
          f"{len(cases)} {args.medium}s of numbers of MNIST training digits composed as bench.numbers composes them "
          f"(seeds {args.seeds}, {args.per_cell} per length and gap kind), read by the {args.model} of the full "
          f"models; averaged structured perceptron, {args.epochs} epochs at rate {args.rate}, from the hand-set "
          f"weights.")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
