"""Numbers written on ruled lines: a form's line under the digits, a notebook's rules through them, a line
turned with the sheet, an underline apart from the digits; as pictures and as phone photos.

Numbers of 2 to 6 MNIST test digits with clear gaps are composed as bench.numbers composes them, each
read without a rule and with each kind of rule drawn in, by the served default model loaded in this
process (its answers as the server gives them); ``--out`` gets the share read whole and right per kind.

    python -m bench.ruled --models-dir models [--numbers 60] [--out bench/results-ruled.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import ROOT, data_arguments, mnist
from bench.numbers import PHOTO_CONDITION, compose
from bench.photos import photo
from bench.tune_cuts import CachedModel
from clients import numbers
from server.registry import PREFERRED_DEFAULT


KINDS = ("none", "under", "notebook", "turned", "underline")


def ruled(picture: Image.Image, boxes: list, kind: str, rng: np.random.Generator) -> Image.Image:
    """The picture (dark ink on white) with a rule of this kind drawn in: "under", a dark line 2 px thick
    across the picture touching the digits' feet; "notebook", faint rules 1 px thick every half digit
    height, through and under the digits; "turned", the "under" line turned by up to 2 degrees either
    way; "underline", a dark line under the digits only, 3 to 6 px below them."""
    ink = np.asarray(picture).astype(np.float32)
    h, w = ink.shape
    base = int(np.median([b[3] for b in boxes]))
    height = base - int(np.median([b[1] for b in boxes]))
    rows, columns = np.mgrid[0:h, 0:w]
    if kind == "under":
        line = (rows >= base) & (rows < base + 2)
    elif kind == "notebook":
        step = max(8, height // 2)
        line = (rows - base) % step == 0
    elif kind == "turned":
        slope = math.tan(math.radians(rng.uniform(-2, 2)))
        middle = base + 1 + slope * (columns - w / 2)
        line = np.abs(rows - middle) < 1.0
    elif kind == "underline":
        below = base + int(rng.integers(3, 7))
        line = (rows >= below) & (rows < below + 2) & (columns >= min(b[0] for b in boxes) - 5) \
            & (columns < max(b[2] for b in boxes) + 5)
    else:
        return picture
    shade = 170 if kind == "notebook" else 0
    return Image.fromarray(np.where(line, np.minimum(ink, shade), ink).astype(np.uint8))


def measure(images: np.ndarray, labels: np.ndarray, classify, count: int, seed: int) -> dict:
    """The share of ``count`` numbers read whole and right, per kind of rule, as pictures and as photos."""
    rng = np.random.default_rng(seed)
    right = {(medium, kind): 0 for medium in ("picture", "photographed") for kind in KINDS}
    for _ in range(count):
        pick = rng.choice(len(images), int(rng.integers(2, 7)), replace=False)
        label = "".join(str(int(v)) for v in labels[pick])
        picture, _, boxes = compose(rng, images[pick], len(pick), "clear")
        for kind in KINDS:
            drawn = ruled(picture, boxes, kind, rng)
            for medium, image in (("picture", drawn),
                                  ("photographed", photo(255 - np.asarray(drawn), PHOTO_CONDITION, rng))):
                try:
                    right[medium, kind] += numbers.read_image(image, classify).text == label
                except ValueError:
                    pass
    return {medium: {kind: round(right[medium, kind] / count, 4) for kind in KINDS}
            for medium in ("picture", "photographed")}


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.ruled", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--numbers", type=int, default=60, help="numbers per kind of rule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-ruled.json")
    args = parser.parse_args(argv)
    images, labels = mnist(args.mnist_dir, "t10k")
    started = time.perf_counter()
    read = measure(images, labels, CachedModel(args.models_dir, PREFERRED_DEFAULT), args.numbers, args.seed)
    results = {"model": PREFERRED_DEFAULT, "numbers_per_kind": args.numbers, "seed": args.seed,
               "photo_condition": PHOTO_CONDITION, "whole_number_right": read,
               "seconds": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(read, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
