"""Trying the cuts between touching digits on numbers composed from MNIST *training* digits.

The constants of clients/numbers/ that decide where touching digits are
cut are tried here, never on the test digits bench.numbers reads: numbers
are composed as bench.numbers composes them (same gaps, sizes and slants),
but from training digits and with their own seeds, and read as pictures by
a model of --models-dir loaded in this process (the answers are cached, so
a sweep asks the model once per distinct candidate).

    python -m bench.tune_cuts --models-dir DIR [--per-cell 20] [--seeds 101,102] [--grid cuts._CUT_BAND=0.1,0.12]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import time
from pathlib import Path

import numpy as np

from bench.common import MNIST_DIR, mnist
from bench.numbers import KINDS, LENGTHS, make_samples
from clients import numbers
from clients.number_results import edit_distance
from clients.prediction import Prediction
from digitserve.artifacts import load_estimator, manifest_path, read_manifest
from digitserve.confidence import assess
from digitserve.settings import add_settings
from server.registry import PREFERRED_DEFAULT


class CachedModel:
    """A served model's answers (probabilities and doubts, as the server gives them), asked once per distinct
    image; counts candidates and batches."""

    def __init__(self, models_dir: Path, name: str):
        self.estimator = load_estimator(models_dir, read_manifest(manifest_path(models_dir, name)))
        self.cache: dict[bytes, Prediction] = {}
        self.candidates = self.batches = 0

    def __call__(self, vectors: np.ndarray) -> list[Prediction]:
        self.batches += 1
        self.candidates += len(vectors)
        keys = [hashlib.blake2b(v.tobytes(), digest_size=16).digest() for v in vectors]
        missing = [k for k in dict.fromkeys(keys) if k not in self.cache]
        if missing:
            rows = {k: v for k, v in zip(keys, vectors)}
            probabilities, doubts = assess(self.estimator, np.stack([rows[k] for k in missing]).astype(np.float32))
            self.cache.update((k, Prediction(p, doubt)) for k, p, doubt in zip(missing, probabilities, doubts))
        return [self.cache[k] for k in keys]


def score(samples: list[tuple], model: CachedModel) -> dict:
    """Number and digit accuracy by gap kind, and candidates per number, reading the pictures."""
    out: dict = {}
    before = model.candidates
    for length, kind, sample in samples:
        try:
            text = numbers.read_image(sample.picture, model).text
        except ValueError:
            text = ""
        cell = out.setdefault(kind, {"numbers": 0, "right": 0, "digits": 0, "digits_right": 0})
        cell["numbers"] += 1
        cell["right"] += text == sample.label
        cell["digits"] += length
        cell["digits_right"] += max(0, length - edit_distance(sample.label, text))
    result = {k: {"number_accuracy": round(c["right"] / c["numbers"], 4),
                  "digit_accuracy": round(c["digits_right"] / c["digits"], 4)} for k, c in out.items()}
    result["candidates_per_number"] = round((model.candidates - before) / len(samples), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tune_cuts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default=PREFERRED_DEFAULT, help="the model that reads (default: the server's)")
    parser.add_argument("--per-cell", type=int, default=20)
    parser.add_argument("--seeds", default="101", help="comma-separated seeds of the composed numbers")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                        help="constants of clients.numbers' modules to try, every combination, "
                             "e.g. --grid cuts._CUT_BAND=0.1,0.12")
    add_settings(parser, [MNIST_DIR])
    args = parser.parse_args(argv)
    grid = {name: [float(v) for v in values.split(",")]
            for name, values in (g.split("=", 1) for g in args.grid)}
    images, labels = mnist(args.mnist_dir, "train")
    model = CachedModel(args.models_dir, args.model)
    samples = [sample for seed in args.seeds.split(",")
               for sample in make_samples(images, labels, {(n, k): args.per_cell for n in LENGTHS for k in KINDS},
                                          int(seed))]
    for values in itertools.product(*grid.values()):
        for name, value in zip(grid, values):
            module, constant = name.rsplit(".", 1)
            setattr(importlib.import_module(f"clients.numbers.{module}"), constant, value)
        started = time.perf_counter()
        print(dict(zip(grid, values)), score(samples, model), f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
