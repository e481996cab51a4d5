"""Digits and numbers written on ruled lines: a form's line under the digits, a notebook's rules through
them, a line turned with the sheet, an underline apart from the digits, a form's boxes and comb, squared
paper, and a ring drawn round them; as pictures and as phone photos.

Numbers of 2 to 6 MNIST test digits with clear gaps are composed as bench.numbers composes them, and
single MNIST test digits are put on a page 1.5 to 4 times their size; each is read without a rule and with
each kind of rule drawn in, by the served default model loaded in this process (its answers as the server
gives them). ``--out`` gets the share read right per kind: numbers whole, digits one by one.

    python -m bench.ruled --models-dir models [--numbers 60] [--digits 300] [--out bench/results-ruled.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.common import ROOT, data_arguments, mnist, model_manifest
from bench.numbers import PHOTO_CONDITION, compose
from bench.photos import photo
from bench.tune_cuts import CachedModel
from clients import numbers, preprocessing
from digitserve.contract import IMAGE_SIDE
from server.registry import PREFERRED_DEFAULT


KINDS = ("none", "under", "notebook", "turned", "underline", "boxes", "comb", "grid", "ring", "ringed")
# Kinds added later are drawn from generators of their own, so that the other kinds' pictures stay those of
# earlier runs: the streams of the numbers' and the single digits' generators for them.
OWN_STREAMS = {"boxes": (2, 3), "comb": (2, 3), "grid": (4, 5), "ring": (6, 7), "ringed": (8, 9)}


def ruled(picture: Image.Image, boxes: list, kind: str, rng: np.random.Generator) -> Image.Image:
    """The picture (dark ink on white) with a rule of this kind drawn in: "under", a dark line 2 px thick
    across the picture touching the digits' feet; "notebook", faint rules 1 px thick every half digit
    height, through and under the digits; "turned", the "under" line turned by up to 2 degrees either
    way; "underline", a dark line under the digits only, 3 to 6 px below them; "boxes", a form's box for
    each digit, dark lines 2 px thick, its sides a little above and below the digits (the lower one may
    touch them) and its edges halfway between them; "comb", the same boxes' lower side with ticks a third
    of their height; "grid", squared paper: faint lines 1 px thick both ways, every half digit height;
    "ring", a ring drawn round the digits (_ring), on a picture made larger to hold it; "ringed", that ring
    on a notebook's page: its rules drawn across the whole picture, ring and all."""
    if kind == "ring":
        return _ring(picture, boxes, rng)
    if kind == "ringed":
        ringed = _ring(picture, boxes, rng)
        dx, dy = (ringed.width - picture.width) // 2, (ringed.height - picture.height) // 2
        return ruled(ringed, [(a + dx, b + dy, c + dx, d + dy) for a, b, c, d in boxes], "notebook", rng)
    ink = np.asarray(picture).astype(np.float32)
    h, w = ink.shape
    base = int(np.median([b[3] for b in boxes]))
    height = base - int(np.median([b[1] for b in boxes]))
    rows, columns = np.mgrid[0:h, 0:w]
    if kind == "under":
        line = (rows >= base) & (rows < base + 2)
    elif kind in ("notebook", "grid"):
        step = max(8, height // 2)
        line = (rows - base) % step == 0
        if kind == "grid":
            line |= (columns - int(rng.integers(0, step))) % step == 0
    elif kind == "turned":
        slope = math.tan(math.radians(rng.uniform(-2, 2)))
        middle = base + 1 + slope * (columns - w / 2)
        line = np.abs(rows - middle) < 1.0
    elif kind == "underline":
        below = base + int(rng.integers(3, 7))
        line = (rows >= below) & (rows < below + 2) & (columns >= min(b[0] for b in boxes) - 5) \
            & (columns < max(b[2] for b in boxes) + 5)
    elif kind in ("boxes", "comb"):
        line = _boxes(boxes, height, rows, columns, comb=kind == "comb", rng=rng)
    else:
        return picture
    shade = 170 if kind in ("notebook", "grid") else 0
    return Image.fromarray(np.where(line, np.minimum(ink, shade), ink).astype(np.uint8))


def _boxes(boxes: list, height: int, rows: np.ndarray, columns: np.ndarray, comb: bool,
           rng: np.random.Generator) -> np.ndarray:
    """Where a form's boxes around the digits are (ruled): lines 2 px thick, boxes of the writing's own
    height (the digits' tops and feet, not their median), edges halfway between the digits (a single
    digit's box at least 0.8 times as wide as it is tall); with ``comb``, only the lower side, and its
    ticks rising a third of the boxes' height."""
    h, w = rows.shape
    top = max(0, min(b[1] for b in boxes) - int(rng.integers(1, max(2, height // 6))))
    bottom = min(h - 2, max(b[3] for b in boxes) + int(rng.integers(-1, max(1, height // 8))))
    reach = [int(rng.integers(2, max(3, height // 5))) for _ in range(2)]
    edges = [boxes[0][0] - reach[0], *((a[2] + b[0]) // 2 for a, b in zip(boxes, boxes[1:])), boxes[-1][2] + reach[1]]
    if len(boxes) == 1:  # a form's box is no narrower than a wide digit, a 1 in it too
        middle, half = (edges[0] + edges[1]) // 2, max(edges[1] - edges[0], 0.8 * (bottom - top)) // 2
        edges = [int(middle - half), int(middle + half)]
    edges = [min(max(0, x), w - 2) for x in edges]
    across = (columns >= edges[0]) & (columns < edges[-1] + 2)
    line = across & (rows >= bottom) & (rows < bottom + 2)
    if not comb:
        line |= across & (rows >= top) & (rows < top + 2)
    rise = top if not comb else bottom - (bottom - top) // 3
    upright = np.isin(columns, [x + d for x in edges for d in (0, 1)])
    return line | upright & (rows >= rise) & (rows < bottom + 2)


def _ring(picture: Image.Image, boxes: list, rng: np.random.Generator) -> Image.Image:
    """The picture, with room added around it, and a ring drawn round its digits as a pen circles an answer:
    an ellipse through the corners of the digits' box (at 1 to 1.25 times that size, so the end digits
    may touch it; a single digit's ring at least 0.8 times as wide as tall) in a dark stroke a 14th of the
    digits' height thick, closed or, half the time, left open by up to 20 degrees where the pen started."""
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pen = max(2, round((bottom - top) / 14))
    half = np.array([right - left, bottom - top]) / 2 * math.sqrt(2) * rng.uniform(1.0, 1.25)
    if len(boxes) == 1:  # a digit alone is circled, not drawn round in its own shape (a 1 in a sliver)
        half[0] = max(half[0], 0.8 * half[1])
    room = (np.ceil(half - np.array([right - left, bottom - top]) / 2) + pen + 4).astype(int)
    sheet = Image.new("L", (picture.width + 2 * int(room[0]), picture.height + 2 * int(room[1])), 255)
    sheet.paste(picture, (int(room[0]), int(room[1])))
    middle = np.array([(left + right) / 2, (top + bottom) / 2]) + room
    start, gap = float(rng.uniform(0, 360)), float(rng.uniform(0, 20)) * (rng.random() < 0.5)
    ImageDraw.Draw(sheet).arc((*(middle - half), *(middle + half)), start + gap, start + 360, fill=0, width=pen)
    return sheet


def _read_as(picture: Image.Image, boxes: list, rng: np.random.Generator, own: dict[str, np.random.Generator]):
    """The picture with each kind of rule drawn in, as a picture and photographed: (medium, kind, image);
    ``own`` draws the kinds of OWN_STREAMS, ``rng`` the others."""
    for kind in KINDS:
        draw = own.get(kind, rng)
        drawn = ruled(picture, boxes, kind, draw)
        yield "picture", kind, drawn
        yield "photographed", kind, photo(255 - np.asarray(drawn), PHOTO_CONDITION, draw)


def _own_generators(seed: int, which: int) -> dict[str, np.random.Generator]:
    """The generators of the kinds of OWN_STREAMS, for the numbers (``which`` 0) or the single digits (1);
    kinds sharing a stream share one generator."""
    made: dict[int, np.random.Generator] = {}
    return {kind: made.setdefault(streams[which], np.random.default_rng([seed, streams[which]]))
            for kind, streams in OWN_STREAMS.items()}


def _by_medium(share: dict) -> dict:
    """{(medium, kind): share} as {medium: {kind: share}}, rounded."""
    return {medium: {kind: round(share[medium, kind], 4) for kind in KINDS} for medium in ("picture", "photographed")}


def page(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, list]:
    """An MNIST digit as dark ink on a white page, scaled 1.5 to 4 times with room around it; and its ink's
    box (left, top, right, bottom)."""
    scale = rng.uniform(1.5, 4.0)
    side = round(IMAGE_SIDE * scale)
    glyph = np.asarray(Image.fromarray(digit.reshape(IMAGE_SIDE, IMAGE_SIDE)).resize((side, side), Image.BILINEAR))
    width, height = side + int(rng.integers(20, 80)), side + int(rng.integers(10, 40))
    left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    sheet = np.zeros((height, width), np.uint8)
    sheet[top : top + side, left : left + side] = glyph
    rows, cols = np.flatnonzero((sheet > 64).any(axis=1)), np.flatnonzero((sheet > 64).any(axis=0))
    return Image.fromarray(255 - sheet), [(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)]


def measure_digits(images: np.ndarray, labels: np.ndarray, classify, count: int, seed: int) -> dict:
    """The share of ``count`` single digits read right, per kind of rule, as pictures and as photos."""
    rng, own = np.random.default_rng([seed, 1]), _own_generators(seed, 1)
    vectors: dict = {}
    for digit in images[:count]:
        for medium, kind, image in _read_as(*page(digit, rng), rng, own):
            try:
                vector = preprocessing.to_mnist(image)
            except ValueError:
                vector = np.zeros(IMAGE_SIDE * IMAGE_SIDE, np.uint8)  # read wrong
            vectors.setdefault((medium, kind), []).append(vector)
    return _by_medium({key: float(np.mean([p.digit == label for p, label in zip(classify(np.stack(found)), labels)]))
                       for key, found in vectors.items()})


def measure(images: np.ndarray, labels: np.ndarray, classify, count: int, seed: int) -> dict:
    """The share of ``count`` numbers read whole and right, per kind of rule, as pictures and as photos."""
    rng, own = np.random.default_rng(seed), _own_generators(seed, 0)
    right: dict = {}
    for _ in range(count):
        pick = rng.choice(len(images), int(rng.integers(2, 7)), replace=False)
        label = "".join(str(int(v)) for v in labels[pick])
        picture, _, boxes = compose(rng, images[pick], len(pick), "clear")
        for medium, kind, image in _read_as(picture, boxes, rng, own):
            try:
                read = numbers.read_image(image, classify).text == label
            except ValueError:
                read = False
            right[medium, kind] = right.get((medium, kind), 0) + read
    return _by_medium({key: right[key] / count for key in right})


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.ruled", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--numbers", type=int, default=60, help="numbers per kind of rule")
    parser.add_argument("--digits", type=int, default=300, help="single digits per kind of rule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-ruled.json")
    args = parser.parse_args(argv)
    images, labels = mnist(args.mnist_dir, "t10k")
    manifest = model_manifest(args.models_dir, PREFERRED_DEFAULT, "bench.ruled")
    if manifest is None:
        return 2
    started = time.perf_counter()
    classify = CachedModel(args.models_dir, PREFERRED_DEFAULT)
    read = measure(images, labels, classify, args.numbers, args.seed)
    alone = measure_digits(images, labels[: args.digits], classify, args.digits, args.seed)
    results = {"model": PREFERRED_DEFAULT, "version": manifest.version, "mnist_accuracy": manifest.test_accuracy,
               "numbers_per_kind": args.numbers, "digits_per_kind": args.digits,
               "seed": args.seed, "photo_condition": PHOTO_CONDITION, "whole_number_right": read,
               "digit_right": alone, "seconds": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"whole_number_right": read, "digit_right": alone}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
