"""Reading whole numbers: MNIST test digits composed into numbers, read as pictures and as drawings.

Numbers of 2 to 8 digits are made from MNIST *test* digits at random sizes,
baselines and slants. Each number has one kind of gap: "clear" (every pair
apart), "touching" (one pair's ink touches) or "overlap" (one pair as close
as it goes without touching, so their widths overlap). Each number is read
twice: as a picture (dark ink on white) and as mouse strokes traced from the
same digits. The baseline reads the same digits one by one, each alone in
its own picture or drawing: the difference is what finding the digits costs.
Each picture is also photographed as a phone takes it (bench.photos) and read.
Amounts, numbers with a decimal point or a comma written between two digits
or a minus before them, are read too, in all three ways, and so are times
(a colon), dates (slashes), numbers with a hyphen between two digits or a
plus before them, numbers with several signs (dates with points or hyphens,
amounts with a thousands separator) and pairs of numbers one above the other
(read line by line).
Everything goes through a real digits-server on loopback.

    python -m bench.numbers [--models-dir DIR] [--model ensemble] [--per-cell 30] [--only dates]

--only measures one section read apart from the numbers of each length and
gap kind (amounts, times, dates, hyphens, pluses, several, lines) and adds it to the results already
written, with the version and accuracy of the models that read it: the
figures of one results file may then come from two trainings, and each
such section says which.

The model of --models-dir is served, by default the one the server answers
with when a request names none, so that the figures are what users get
(make bench passes models/, the trained default set); a folder without it,
or no --models-dir, means it is trained on 10,000 training digits into a
temporary folder first. Results go to bench/results-numbers.json (--out); the
summary (all but the figures of each length and gap kind) also to the
results.json beside it, with the other benches' headline figures: its
"numbers" section for the default model, "numbers_<model>" for another.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import numpy as np
from PIL import Image, ImageDraw

from bench.common import MNIST_DIR, ROOT, mnist, write_sections
from bench.photos import CONDITIONS, photo
from bench.process import BIN, ServerProcess
from clients import numbers
from clients.connection import Connection, ConnectionOptions
from clients.drawing import Drawing, Stroke
from clients.number_results import digits_of, edit_distance
from clients.prediction import Prediction
from clients.preprocessing import stroke_width, to_mnist
from digitserve.contract import IMAGE_SIDE
from digitserve.settings import add_settings
from server.registry import PREFERRED_DEFAULT
from tests.strokes import traced_drawing

KINDS = ("clear", "touching", "overlap")
LENGTHS = range(2, 9)
GOALS = {"digit_accuracy_cost_points": 0.5, "four_digit_clear_number_accuracy": 0.97}
_ROOM = 0.3  # the more room between two digits with a point or a comma between them, in digit heights
_SLASH_LEAN = (25.0, 45.0)  # degrees from upright a date's slash leans, before the number's slant
PHOTO_CONDITION = "phone"  # how each number's picture is also photographed (bench.photos)


@dataclass
class Sample:
    label: str
    picture: Image.Image  # the whole number, dark ink on white
    drawing: Drawing  # the whole number as strokes
    alone_pictures: list[np.ndarray]  # each digit in its own picture (light on black)
    alone_drawings: list[Drawing]  # each digit in its own drawing
    picture_boxes: list[tuple]  # where each digit's ink is in the picture: left, top, right, bottom
    drawing_boxes: list[tuple]  # ... and in the drawing, pen included


def _glyph(digit: np.ndarray, height: float, slant: float) -> np.ndarray:
    """An MNIST digit cropped to its ink, scaled to ``height`` pixels and sheared (top to the right for > 0)."""
    ink = digit.reshape(IMAGE_SIDE, IMAGE_SIDE).astype(np.float32) / 255
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    factor = height / ink.shape[0]
    size = (max(1, round(ink.shape[1] * factor)), max(1, round(height)))
    scaled = np.asarray(Image.fromarray(ink, "F").resize(size, Image.Resampling.BILINEAR))
    h, w = scaled.shape
    extra = int(abs(slant) * h) + 1
    # x_out = x_in + slant * (h - y) + shift: the bottom row stays put, the top leans by slant * h.
    shift = max(0.0, -slant * h)
    sheared = Image.fromarray(scaled, "F").transform(
        (w + extra, h), Image.Transform.AFFINE, (1, slant, -slant * h - shift, 0, 1, 0), Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(sheared), 0, 1)
    cols = np.flatnonzero(out.max(axis=0) > 0.05)
    return out[:, cols[0] : cols[-1] + 1]


def _closest(left: np.ndarray, left_top: int, right: np.ndarray, right_top: int) -> float:
    """Over the rows both glyphs share, the smallest gap from the left glyph's ink to the right one's, if
    the right glyph's box started at x = 0 and the left glyph's box ended at x = 0."""
    gaps = []
    for row in range(max(left_top, right_top), min(left_top + left.shape[0], right_top + right.shape[0])):
        a, b = left[row - left_top] > 0.3, right[row - right_top] > 0.3
        if a.any() and b.any():
            gaps.append((left.shape[1] - 1 - np.flatnonzero(a)[-1]) + np.flatnonzero(b)[0])
    return float(min(gaps)) if gaps else float(left.shape[1])


def compose(rng: np.random.Generator, digits: np.ndarray, length: int, kind: str,
            room: Collection[int] = ()) -> tuple[Image.Image, list, list]:
    """A number's picture, its digits' glyphs, and the box of each glyph's ink in the picture; ``room``: the
    digits before which a sign will go (_ROOM more between each and the digit before it)."""
    size = float(rng.uniform(30, 110))
    slant = float(rng.uniform(-0.25, 0.25))
    special = int(rng.integers(1, length)) if kind != "clear" else -1
    glyphs, places = [], []
    x = 0.0
    for k, digit in enumerate(digits):
        glyph = _glyph(digit, size * rng.uniform(0.9, 1.1), slant + rng.uniform(-0.05, 0.05))
        top = int(round(size * rng.uniform(-0.08, 0.08)))
        if k:
            prev, (px, ptop) = glyphs[-1], places[-1]
            if k == special:
                # Ink touching by one or two pixels, or as close as it goes while two pixels apart.
                target = -rng.integers(1, 3) if kind == "touching" else 2
                x = px + prev.shape[1] - _closest(prev, ptop, glyph, top) + target
            else:
                x = px + prev.shape[1] + size * rng.uniform(0.15, 0.5) + (_ROOM * size if k in room else 0.0)
        glyphs.append(glyph)
        places.append((int(round(x)), top))
    margin = int(size * 0.3)
    lowest = min(t for _, t in places)
    width = max(px + g.shape[1] for g, (px, _) in zip(glyphs, places)) + 2 * margin
    height = max(t - lowest + g.shape[0] for g, (_, t) in zip(glyphs, places)) + 2 * margin
    canvas = np.zeros((height, width), np.float32)
    boxes = []
    for glyph, (px, top) in zip(glyphs, places):
        y = top - lowest + margin
        view = canvas[y : y + glyph.shape[0], px + margin : px + margin + glyph.shape[1]]
        np.maximum(view, glyph, out=view)
        rows, cols = np.flatnonzero((glyph > 0.25).any(axis=1)), np.flatnonzero((glyph > 0.25).any(axis=0))
        boxes.append((px + margin + cols[0], y + rows[0], px + margin + cols[-1] + 1, y + rows[-1] + 1))
    picture = Image.fromarray((255 - np.clip(canvas, 0, 1) * 255).astype(np.uint8))
    return picture, glyphs, boxes


def compose_drawing(rng: np.random.Generator, digits: np.ndarray, kind: str,
                    room: Collection[int] = ()) -> tuple[Drawing, list[Drawing]]:
    """The same digits traced into strokes on a wide canvas, with the number's kind of gap (and room for a
    sign before each digit of ``room``, as in compose)."""
    size = float(rng.uniform(90, 200))
    slant = float(rng.uniform(-0.25, 0.25))
    length = len(digits)
    special = int(rng.integers(1, length)) if kind != "clear" else -1
    canvas = (int(length * size * 1.3 + 200), int(size * 1.6))
    alone, strokes, x, previous = [], [], 0.0, 0.0
    for k, digit in enumerate(digits):
        d = traced_drawing(digit, size * rng.uniform(0.9, 1.1), (0.0, canvas[1] / 2 + size * rng.uniform(-0.08, 0.08)),
                           slant + rng.uniform(-0.05, 0.05), canvas)
        xs = [p[0] for s in d.strokes for p in s.points]
        pen = d.display_pen_width()
        low, high = min(xs) - pen / 2, max(xs) + pen / 2
        if k == special:  # widths shared: a little, and never more than a third of the narrower digit
            x -= min({"touching": 0.05, "overlap": 0.15}[kind] * size, (high - low) / 3, previous / 3)
        elif k:
            x += (rng.uniform(0.15, 0.5) + (_ROOM if k in room else 0.0)) * size
        shift = 100 + x - low
        placed = [[(px + shift, py) for px, py in s.points] for s in d.strokes]
        strokes.extend(placed)
        alone.append(Drawing(canvas[0], canvas[1], placed))
        x += high - low
        previous = high - low
    return Drawing(canvas[0], canvas[1], strokes), alone


def compose_amount(rng: np.random.Generator, digits: np.ndarray, char: str,
                   between: bool = False) -> tuple[Image.Image, Drawing, int]:
    """A number with a sign written as a person writes it: a decimal point (".") or a comma (",") low
    between two clear digits, a colon (":", before the last two digits: a time), a minus ("-") or a plus
    ("+") before the first, or with ``between`` a hyphen ("-") between two digits (a phone number, a
    postcode); its picture, its drawing (compose_signed), and how many digits come before the sign."""
    leading = char == "+" or char == "-" and not between
    after = 0 if leading else len(digits) - 2 if char == ":" else int(rng.integers(1, len(digits)))
    return *compose_signed(rng, digits, {after: char}), after


def compose_signed(rng: np.random.Generator, digits: np.ndarray, signs: dict[int, str]
                   ) -> tuple[Image.Image, Drawing]:
    """These digits with clear gaps and ``signs`` written into them as a person writes them, each after as
    many digits as its key says: a point, a comma, a colon or a hyphen ("-") between two digits (in a
    widened gap), a minus or a plus before the first (key 0); as a picture and as a drawing."""
    room = [after for after in signs if after]
    picture, glyphs, boxes = compose(rng, digits, len(digits), "clear", room=room)
    size = float(np.mean([b[3] - b[1] for b in boxes]))
    pen = float(np.median([stroke_width(g) for g in glyphs]))  # the digits' own pen
    lead = int(size) if 0 in signs else 0  # room for a minus or a plus before the number
    ink = np.pad((255 - np.asarray(picture, np.float32)) / 255, ((0, int(0.2 * size)), (lead, 0)))  # and a comma
    boxes = [(left + lead, top, right + lead, bottom) for left, top, right, bottom in boxes]
    rows, cols = np.mgrid[: ink.shape[0], : ink.shape[1]]
    for after, char in sorted(signs.items()):
        if char in "-+":
            paths = _leading(rng, char, boxes[0], size) if not after else \
                [_hyphen(rng, boxes[after - 1], boxes[after], size)]
            width = pen * rng.uniform(0.9, 1.3)
        else:
            left, right = boxes[after - 1], boxes[after]
            x = (left[2] + right[0]) / 2 + size * rng.uniform(-0.05, 0.05)
            base = (left[3] + right[3]) / 2 + size * rng.uniform(-0.04, 0.02)
            width = pen * rng.uniform(1.0, 1.6)  # dabbed
            paths = [[(x, base - width / 2)]]
            if char == ",":
                paths[0] += [(x - 0.05 * size, base + 0.1 * size), (x - 0.1 * size, base + 0.2 * size)]
            elif char == ":":  # the lower dot on the line or a little above it, the upper one about halfway up
                paths = [[(x, base - width / 2 - size * rng.uniform(0, 0.25))],
                         [(x + size * rng.uniform(-0.04, 0.04), base - size * rng.uniform(0.5, 0.7))]]
        for path in paths:
            for (ax, ay), (bx, by) in zip(path, path[1:] or path):  # each piece of the sign as a thick segment
                along = ((cols - ax) * (bx - ax) + (rows - ay) * (by - ay)) / max((bx - ax) ** 2 + (by - ay) ** 2, 1e-9)
                t = np.clip(along, 0, 1)
                distance = np.hypot(cols - (ax + t * (bx - ax)), rows - (ay + t * (by - ay)))
                np.maximum(ink, np.clip(width / 2 + 0.5 - distance, 0, 1), out=ink)
    picture = Image.fromarray((255 - ink * 255).round().astype(np.uint8))

    drawing, alone = compose_drawing(rng, digits, "clear", room=room)
    pen = drawing.display_pen_width()
    boxes = [numbers.box_of(numbers.drawing_atoms(d)) for d in alone]
    size = float(np.mean([b[3] - b[1] for b in boxes]))
    if 0 in signs:  # everything moved right to make room; a minus is a short drag across, a plus two crossing
        drawing = Drawing(drawing.width + int(size), drawing.height,
                          [[(x + size, y) for x, y in stroke.points] for stroke in drawing.strokes])
        boxes = [(left + size, top, right + size, bottom) for left, top, right, bottom in boxes]
    marks = []
    for after, char in sorted(signs.items()):
        if not after:
            marks += _leading(rng, char, boxes[0], size)
        elif char == "-":  # so is a hyphen
            marks.append(_hyphen(rng, boxes[after - 1], boxes[after], size))
        else:
            left, right = boxes[after - 1], boxes[after]
            x, base = (left[2] + right[0]) / 2, (left[3] + right[3]) / 2 - pen / 2
            # A point is a click (one point) or a short dab; a comma a short drag down and to the left; a colon
            # two clicks.
            marks.append([(x, base)] if char == "." and rng.random() < 0.5 else
                         [(x, base), (x + pen * 0.2, base + pen * 0.1)] if char == "." else
                         [(x, base), (x - 0.04 * size, base + 0.1 * size), (x - 0.08 * size, base + 0.18 * size)]
                         if char == "," else [(x, base - size * rng.uniform(0, 0.25))])
            if char == ":":
                marks.append([(x + size * rng.uniform(-0.04, 0.04), base - size * rng.uniform(0.5, 0.7))])
    return picture, Drawing(drawing.width, drawing.height, [*drawing.strokes, *marks])


def slash(rng: np.random.Generator, lean: float | None = None) -> np.ndarray:
    """A date's slash as MNIST would hold it: a straight stroke of an MNIST pen (2-3 px of 28), as tall as its
    digits (18-21 px), leaning ``lean`` degrees from upright (default: at random in _SLASH_LEAN); 784
    pixels, light on dark."""
    fine = 8  # drawn this many times finer, then averaged down: antialiased as MNIST's scans
    side = IMAGE_SIDE * fine
    height, pen = rng.uniform(18, 21) * fine, rng.uniform(2.0, 3.2) * fine
    across = height * np.tan(np.radians(rng.uniform(*_SLASH_LEAN) if lean is None else lean))
    ends = [(side / 2 - across / 2, side / 2 + height / 2), (side / 2 + across / 2, side / 2 - height / 2)]
    big = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(big)
    draw.line(ends, fill=255, width=int(pen))
    for x, y in ends:  # round ends, as a pen leaves
        draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return np.asarray(big.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BOX)).reshape(-1)


def compose_date(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray
                 ) -> tuple[str, Image.Image, Drawing]:
    """A date written with slashes: day/month/year, month/day/year or year/month/day, with a year of 2 or 4
    digits and days and months with or without a leading zero; each digit an MNIST digit of its value, each
    slash a straight stroke (slash), composed as a number with clear gaps (compose, compose_drawing):
    (the date as written, picture, drawing)."""
    day, month, year = _date(rng)
    padded = rng.random() < 0.5
    dd, mm = (f"{day:02d}", f"{month:02d}") if padded else (str(day), str(month))
    yy = str(year) if rng.random() < 0.6 else f"{year % 100:02d}"
    order = int(rng.integers(3))
    written = "/".join([(dd, mm, yy), (mm, dd, yy), (str(year), f"{month:02d}", f"{day:02d}")][order])
    return (written, *compose_written(rng, images, labels, written))


def compose_several(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, kind: int
                    ) -> tuple[str, Image.Image, Drawing]:
    """A number written with several signs, of ``kind`` 0 to 3: a date with points ("5.12.2026" or
    "05.12.2026"), an ISO date ("2026-12-05"), an amount with a thousands comma and a decimal point
    ("1,250.75") or one written the other way ("1.250,75"); each digit an MNIST digit of its value, each sign
    as compose_signed writes it: (the number as written, picture, drawing)."""
    day, month, year = _date(rng)
    if kind == 0:
        written = f"{day:02d}.{month:02d}.{year}" if rng.random() < 0.5 else f"{day}.{month}.{year}"
    elif kind == 1:
        written = f"{year}-{month:02d}-{day:02d}"
    else:
        whole, cents = int(rng.integers(1, 1000)), int(rng.integers(0, 100))
        group, point = (",", ".") if kind == 2 else (".", ",")
        written = f"{whole}{group}{int(rng.integers(0, 1000)):03d}{point}{cents:02d}"
    glyphs = np.stack([_written_digit(rng, images, labels, c) for c in written if c.isdigit()])
    signs = {sum(d.isdigit() for d in written[:k]): c for k, c in enumerate(written) if not c.isdigit()}
    return (written, *compose_signed(rng, glyphs, signs))


def compose_written(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, text: str,
                    lean: float | None = None) -> tuple[Image.Image, Drawing]:
    """``text`` written with clear gaps, as a picture and as a drawing (compose, compose_drawing): each digit
    one of these MNIST ``images`` of its value, each "/" a slash leaning ``lean`` (slash)."""
    glyphs = np.stack([slash(rng, lean) if c == "/" else _written_digit(rng, images, labels, c) for c in text])
    return compose(rng, glyphs, len(glyphs), "clear")[0], compose_drawing(rng, glyphs, "clear")[0]


def _date(rng: np.random.Generator) -> tuple[int, int, int]:
    """A day, a month and a year that make a date (days to the 28th: every month has them)."""
    return int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(1950, 2040))


def _written_digit(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, char: str) -> np.ndarray:
    """One of these MNIST ``images`` whose label is the digit ``char``, at random."""
    return images[rng.choice(np.flatnonzero(labels == int(char)))]


def amounts(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, count: int, chars: str = ".,-",
            lengths: tuple[int, int] = (2, 6), between: bool = False, several: bool = False):
    """``count`` numbers of these digits, of ``lengths`` digits (a time of three at least), with each of
    ``chars`` in turn written into them (compose_amount, a "-" ``between`` two digits as a hyphen; for "/",
    a date: compose_date), or with ``several`` signs each (compose_several, its four kinds in turn): (the
    label as written, picture, drawing)."""
    for k in range(count):
        char = chars[k % len(chars)]
        if several:
            yield compose_several(rng, images, labels, k % 4)
            continue
        if char == "/":
            yield compose_date(rng, images, labels)
            continue
        low = max(lengths[0], 3) if char == ":" else lengths[0]
        pick = rng.choice(len(images), int(rng.integers(low, lengths[1] + 1)), replace=False)
        picture, drawing, after = compose_amount(rng, images[pick], char, between)
        digits = "".join(str(int(v)) for v in labels[pick])
        yield digits[:after] + char + digits[after:], picture, drawing


def one_above_other(top: Image.Image | Drawing, bottom: Image.Image | Drawing) -> Image.Image | Drawing:
    """Two pictures (dark ink on white) or two drawings made one, the second below the first."""
    if isinstance(top, Drawing):
        below = [Stroke([(x, y + top.height) for x, y in s.points], s.width, s.erase) for s in bottom.strokes]
        return Drawing(max(top.width, bottom.width), top.height + bottom.height, list(top.strokes) + below)
    both = Image.new("L", (max(top.width, bottom.width), top.height + bottom.height), 255)
    both.paste(top, (0, 0))
    both.paste(bottom, (0, top.height))
    return both


def two_lines(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, count: int,
              lengths: tuple[int, int] = (2, 6)):
    """``count`` pairs of numbers of ``lengths`` digits with clear gaps, one above the other, each at a size
    of its own (compose, compose_drawing): (the two labels, top first; picture; drawing)."""
    for _ in range(count):
        made = []
        for _ in range(2):
            pick = rng.choice(len(images), int(rng.integers(lengths[0], lengths[1] + 1)), replace=False)
            picture, _, _ = compose(rng, images[pick], len(pick), "clear")
            drawing, _ = compose_drawing(rng, images[pick], "clear")
            made.append(("".join(str(int(v)) for v in labels[pick]), picture, drawing))
        (top, top_picture, top_drawing), (bottom, bottom_picture, bottom_drawing) = made
        yield (top, bottom), one_above_other(top_picture, bottom_picture), one_above_other(top_drawing, bottom_drawing)


def _leading(rng: np.random.Generator, char: str, first: tuple, size: float) -> list[list[tuple[float, float]]]:
    """A minus ("-", a bar) or a plus ("+", a bar and an upright one crossing it) about halfway down the
    ``first`` digit's box, before it: each stroke's two ends."""
    y = first[1] + (first[3] - first[1]) * rng.uniform(0.4, 0.6)
    end = first[0] - size * rng.uniform(0.12, 0.35)
    length = size * (rng.uniform(0.3, 0.55) if char == "-" else rng.uniform(0.3, 0.6))
    bar = [(end - length, y), (end, y + size * rng.uniform(-0.05, 0.05))]
    if char == "-":
        return [bar]
    x, half = end - length * rng.uniform(0.4, 0.6), length * rng.uniform(0.4, 0.6)
    return [bar, [(x + size * rng.uniform(-0.05, 0.05), y - half), (x, y + half)]]


def _hyphen(rng: np.random.Generator, left: tuple, right: tuple, size: float) -> list[tuple[float, float]]:
    """A hyphen's two ends: a bar about halfway down the digits' boxes ``left`` and ``right`` of it, in the gap
    between them and shorter than it."""
    gap = right[0] - left[2]
    length = min(size * rng.uniform(0.25, 0.45), 0.7 * gap)
    x = (left[2] + right[0]) / 2 + gap * rng.uniform(-0.05, 0.05)
    y = (left[1] + left[3] + right[1] + right[3]) / 4 + size * rng.uniform(-0.08, 0.08)
    return [(x - length / 2, y), (x + length / 2, y + size * rng.uniform(-0.04, 0.04))]


def make_samples(images: np.ndarray, labels: np.ndarray, per_cell: dict, seed: int = 0) -> list[tuple]:
    """(length, kind, Sample) for every cell; each MNIST test digit is used at most once per run if it can be."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    used = 0
    samples = []
    for (length, kind), count in per_cell.items():
        for _ in range(count):
            pick = order[np.arange(used, used + length) % len(order)]
            used += length
            picture, glyphs, boxes = compose(rng, images[pick], length, kind)
            drawing, alone = compose_drawing(rng, images[pick], kind)
            pads = [np.pad(g, 4) for g in glyphs]
            drawn = [numbers.box_of(numbers.drawing_atoms(d)) for d in alone]
            samples.append((length, kind, Sample("".join(str(int(v)) for v in labels[pick]), picture, drawing,
                                                 pads, alone, boxes, drawn)))
    return samples


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    shared = max(0.0, width) * max(0.0, height)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - shared
    return shared / union if union > 0 else 0.0


def found_digits(read: numbers.Number | None, truth: list[tuple]) -> bool:
    """Were the digits found where they are (one box per digit, each on its digit's ink), right or wrong?

    Boxes of digits cut apart are where the cut fell, so they need only cover
    most of the true box: an intersection over union of at least _FOUND.
    """
    if read is None or len(read.digits) != len(truth):
        return False
    return all(_overlap(d.box, box) >= _FOUND for d, box in zip(read.digits, truth))


_FOUND = 0.7


def _evaluate(samples: list[tuple], connection: Connection, model: str) -> dict:
    sent = [0]  # candidate digits sent to the model

    def classify(vectors: np.ndarray) -> list[Prediction]:
        sent[0] += len(vectors)
        return connection.predict(vectors, model).predictions()

    cells: dict[str, dict] = {}
    seconds = {"picture": 0.0, "drawing": 0.0}
    candidates = {"picture": 0, "drawing": 0}
    for length, kind, sample in samples:
        truth = [int(c) for c in sample.label]
        for medium in ("picture", "drawing"):
            started, before = time.perf_counter(), sent[0]
            try:
                read = (numbers.read_image(sample.picture, classify) if medium == "picture"
                        else numbers.read_drawing(sample.drawing, classify))
                text = read.text
            except ValueError:
                read, text = None, ""
            seconds[medium] += time.perf_counter() - started
            candidates[medium] += sent[0] - before
            found = found_digits(read, sample.picture_boxes if medium == "picture" else sample.drawing_boxes)
            if medium == "picture":
                alone = np.stack([to_mnist(g, ink="light") for g in sample.alone_pictures])
            else:
                alone = np.stack([d.to_vector() for d in sample.alone_drawings])
            one_by_one = [answer.digit for answer in classify(alone)]
            cell = cells.setdefault(f"{medium}/{length}/{kind}", {
                "medium": medium, "length": length, "kind": kind, "numbers": 0, "numbers_right": 0,
                "digits": 0, "digits_right": 0, "digits_right_alone": 0, "numbers_right_alone": 0,
                "wrong_count": 0, "wrong_found": 0, "wrong_not_found": 0, "false_signs": 0})
            cell["numbers"] += 1
            cell["numbers_right"] += text == sample.label
            cell["digits"] += length
            # Digit accuracy as in OCR: the digits minus the edits (wrong, missing, extra) from the truth.
            cell["digits_right"] += max(0, length - edit_distance(sample.label, text))
            # Why a number is wrong: its digits were not found where they are (segmentation, stroke
            # grouping), or they were and one was read wrong (recognition).
            cell["wrong_found"] += text != sample.label and found
            cell["wrong_not_found"] += text != sample.label and not found
            cell["wrong_count"] += len(text) != length
            cell["false_signs"] += sum(not c.isdigit() for c in text)
            cell["digits_right_alone"] += int(sum(int(a) == b for a, b in zip(one_by_one, truth)))
            cell["numbers_right_alone"] += bool(all(int(a) == b for a, b in zip(one_by_one, truth)))
    return {"cells": list(cells.values()), "seconds": seconds,
            "candidates_per_number": {m: round(c / len(samples), 1) for m, c in candidates.items()}}


def _photographed(samples: list[tuple], classify, seed: int) -> dict:
    """Each number's picture photographed as a phone takes it, read: by gap kind and in all.

    The photo is bench.photos' ``PHOTO_CONDITION``: printed on tinted paper, under
    a lamp with vignetting and a soft shadow, on a sheet turned and tilted on a
    grained table, blurred, grainy and JPEG-compressed, all mildly. A photo
    read as no number at all counts as refused (and wrong).
    """
    rng = np.random.default_rng([seed, CONDITIONS.index(PHOTO_CONDITION)])
    rows, reading = [], 0.0
    for length, kind, sample in samples:
        image = photo(255 - np.asarray(sample.picture), PHOTO_CONDITION, rng)
        started = time.perf_counter()
        try:
            text: str | None = numbers.read_image(image, classify).text
        except ValueError:
            text = None
        reading += time.perf_counter() - started
        rows.append((kind, length, sample.label, text))

    def rates(selected: list[tuple]) -> dict:
        digits = sum(length for _, length, _, _ in selected)
        return {"numbers": len(selected),
                "number_accuracy": round(sum(text == label for _, _, label, text in selected) / len(selected), 4),
                "digit_accuracy": round(sum(max(0, length - edit_distance(label, text or ""))
                                            for _, length, label, text in selected) / digits, 4),
                "refused": sum(text is None for *_, text in selected),
                "false_signs": sum(not c.isdigit() for *_, text in selected for c in text or "")}

    return {"condition": PHOTO_CONDITION, "all": rates(rows),
            "by_kind": {k: rates([r for r in rows if r[0] == k]) for k in KINDS},
            "seconds_per_number": round(reading / len(rows), 3)}


def _amounts(images: np.ndarray, labels: np.ndarray, classify, seed: int, count: int, stream: int,
             chars: str = ".,-", lengths: tuple[int, int] = (2, 6), between: bool = False,
             several: bool = False) -> dict:
    """Numbers of ``lengths`` MNIST test digits with a sign (amounts(); each of ``chars`` in turn: for
    amounts a decimal point, a comma, a minus; for times a colon; for dates two slashes; for hyphens a "-"
    ``between`` two digits; for pluses a "+" before the first; with ``several``, dates with points or
    hyphens and amounts with a thousands separator and a decimal sign), read as pictures, photographed as
    a phone takes them, and as drawings; their random numbers are ``stream`` of the run's ``seed``.

    Per medium: whole numbers right (the signs in their places), signs right (the right ones in the right
    places, whatever the digits), and digits right (as for numbers, the signs left out).
    """
    rng = np.random.default_rng([seed, stream])
    rows: dict[str, list[tuple[str, str]]] = {"picture": [], "photographed": [], "drawing": []}
    # Each number is photographed with the same generator right after it is composed.
    for label, picture, drawing in amounts(rng, images, labels, count, chars, lengths, between, several):
        for medium, read in (("picture", lambda: numbers.read_image(picture, classify)),
                             ("photographed", lambda: numbers.read_image(
                                 photo(255 - np.asarray(picture), PHOTO_CONDITION, rng), classify)),
                             ("drawing", lambda: numbers.read_drawing(drawing, classify))):
            try:
                rows[medium].append((label, read().text))
            except ValueError:
                rows[medium].append((label, ""))

    def rates(pairs: list[tuple[str, str]]) -> dict:
        truths = [digits_of(label) for label, _ in pairs]
        found = [max(0, len(truth) - edit_distance(truth, digits_of(text))) for truth, (_, text) in zip(truths, pairs)]
        placed = sum(_marks(label) == _marks(text) for label, text in pairs)
        return {"numbers": len(pairs),
                "number_accuracy": round(sum(label == text for label, text in pairs) / len(pairs), 4),
                "sign_accuracy": round(placed / len(pairs), 4),
                "digit_accuracy": round(sum(found) / sum(len(truth) for truth in truths), 4)}

    return {"numbers": count, "lengths": f"{lengths[0]}-{lengths[1]}", "signs": list(chars),
            **{medium: rates(pairs) for medium, pairs in rows.items()}}


def _lines(images: np.ndarray, labels: np.ndarray, classify, seed: int, count: int, stream: int) -> dict:
    """Pairs of numbers of MNIST test digits one above the other (two_lines(); random numbers ``stream`` of
    the run's ``seed``), read line by line (numbers.read_lines) as pictures, photographed as a phone takes
    them, and as drawings: per medium, how often two lines are found, and both numbers read right."""
    rng = np.random.default_rng([seed, stream])
    rows: dict[str, list[tuple[list[str], list[str | None]]]] = {"picture": [], "photographed": [], "drawing": []}
    for truth, picture, drawing in two_lines(rng, images, labels, count):
        for medium, whole in (("picture", picture), ("photographed", photo(255 - np.asarray(picture), PHOTO_CONDITION, rng)),
                              ("drawing", drawing)):
            try:
                read = [n.text if isinstance(n, numbers.Number) else None for n in numbers.read_lines(whole, classify)]
            except ValueError:
                read = []
            rows[medium].append((list(truth), read))

    def rates(pairs: list[tuple[list[str], list[str | None]]]) -> dict:
        return {"pairs": len(pairs),
                "two_lines_found": round(sum(len(read) == 2 for _, read in pairs) / len(pairs), 4),
                "both_right": round(sum(truth == read for truth, read in pairs) / len(pairs), 4)}

    return {"pairs": count, "lengths": "2-6", **{medium: rates(pairs) for medium, pairs in rows.items()}}


def _marks(text: str) -> list[tuple[int, str]]:
    """The signs of a number as written, each with how many digits come before it."""
    return [(len(digits_of(text[:k])), c) for k, c in enumerate(text) if not c.isdigit()]


def _summary(cells: list[dict]) -> dict:
    def rates(selected: list[dict]) -> dict:
        n = sum(c["numbers"] for c in selected)
        d = sum(c["digits"] for c in selected)
        return {"numbers": n,
                "number_accuracy": round(sum(c["numbers_right"] for c in selected) / n, 4),
                "number_accuracy_one_by_one": round(sum(c["numbers_right_alone"] for c in selected) / n, 4),
                "digit_accuracy": round(sum(c["digits_right"] for c in selected) / d, 4),
                "digit_accuracy_one_by_one": round(sum(c["digits_right_alone"] for c in selected) / d, 4),
                "wrong_digit_count": sum(c["wrong_count"] for c in selected),
                "wrong_numbers_segmentation": sum(c["wrong_not_found"] for c in selected),
                "wrong_numbers_recognition": sum(c["wrong_found"] for c in selected),
                "false_signs": sum(c["false_signs"] for c in selected)}

    out: dict = {}
    for medium in ("picture", "drawing"):
        mine = [c for c in cells if c["medium"] == medium]
        out[medium] = {
            "all": rates(mine),
            "by_kind": {k: rates([c for c in mine if c["kind"] == k]) for k in KINDS},
            "by_length": {str(n): rates([c for c in mine if c["length"] == n]) for n in LENGTHS},
            "four_digits_clear": rates([c for c in mine if c["length"] == 4 and c["kind"] == "clear"]),
        }
        everything = out[medium]["all"]
        out[medium]["digit_accuracy_cost_points"] = round(
            100 * (everything["digit_accuracy_one_by_one"] - everything["digit_accuracy"]), 2)
    return out


def _train(folder: Path, mnist_dir: str, model: str) -> None:
    subprocess.run([str(BIN / "digits-train"), "--mnist-dir", mnist_dir, "--out", str(folder), "--limit", "10000",
                    "--models", model, "--no-report"], check=True)


# Measured apart from the numbers of each length and gap kind (--only).
SECTIONS = ("amounts", "times", "dates", "hyphens", "pluses", "several", "lines")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.numbers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, help="served models (default: train --model on 10,000 digits)")
    parser.add_argument("--model", default=PREFERRED_DEFAULT,
                        help=f"the model that reads (default: {PREFERRED_DEFAULT}, the server's default)")
    parser.add_argument("--per-cell", type=int, default=30, help="numbers per length and gap kind (default: 30)")
    parser.add_argument("--four-clear", type=int, default=200, help="4-digit numbers with clear gaps (default: 200)")
    parser.add_argument("--amounts", type=int, default=120,
                        help="numbers with a decimal point, a comma or a minus (default: 120)")
    parser.add_argument("--times", type=int, default=60, help="times: numbers with a colon (default: 60)")
    parser.add_argument("--dates", type=int, default=60, help="dates written with slashes (default: 60)")
    parser.add_argument("--hyphens", type=int, default=60,
                        help="numbers with a hyphen between two digits, as phone numbers are written (default: 60)")
    parser.add_argument("--pluses", type=int, default=60,
                        help="numbers with a plus before them, as international phone numbers start (default: 60)")
    parser.add_argument("--several", type=int, default=60,
                        help="numbers with several signs: dates with points or hyphens, amounts with a thousands "
                             "separator (default: 60)")
    parser.add_argument("--lines", type=int, default=60,
                        help="pairs of numbers written one above the other, read line by line (default: 60)")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="measure this section alone (repeatable) and write it beside the figures already in "
                             "--out and results.json, with the version of the models that read it")
    add_settings(parser, [MNIST_DIR])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-numbers.json")
    args = parser.parse_args(argv)

    images, labels = mnist(args.mnist_dir, "t10k")
    per_cell = {(n, k): args.per_cell for n in LENGTHS for k in KINDS}
    per_cell[(4, "clear")] = max(args.four_clear, args.per_cell)
    samples = [] if args.only else make_samples(images, labels, per_cell, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        models_dir = args.models_dir
        if models_dir is None or not (models_dir / f"{args.model}.manifest.json").exists():
            models_dir = Path(scratch)
            _train(models_dir, args.mnist_dir, args.model)
        manifest = json.loads((models_dir / f"{args.model}.manifest.json").read_text())
        models = {"version": manifest["version"], "accuracy": manifest["evaluation"]["accuracy"]}
        server = ServerProcess(models_dir)
        try:
            with Connection(ConnectionOptions(address=server.address)) as connection:
                def classify(vectors: np.ndarray) -> list[Prediction]:
                    return connection.predict(vectors, args.model).predictions()

                if samples:
                    measured = _evaluate(samples, connection, args.model)
                    photographed = _photographed(samples, classify, args.seed)
                runs = {"amounts": lambda: _amounts(images, labels, classify, args.seed, args.amounts, stream=2),
                        "times": lambda: _amounts(images, labels, classify, args.seed, args.times, stream=3,
                                                  chars=":", lengths=(3, 4)),
                        "dates": lambda: _amounts(images, labels, classify, args.seed, args.dates, stream=5,
                                                  chars="/", lengths=(4, 8)),
                        "hyphens": lambda: _amounts(images, labels, classify, args.seed, args.hyphens, stream=6,
                                                    chars="-", lengths=(3, 8), between=True),
                        "pluses": lambda: _amounts(images, labels, classify, args.seed, args.pluses, stream=7,
                                                   chars="+", lengths=(2, 8)),
                        "several": lambda: _amounts(images, labels, classify, args.seed, args.several, stream=8,
                                                    chars=".,-", lengths=(6, 8), several=True),
                        "lines": lambda: _lines(images, labels, classify, args.seed, args.lines, stream=4)}
                found = {name: run() for name, run in runs.items() if not args.only or name in args.only}
        finally:
            server.stop()
    # The default model's figures are "numbers", another model's "numbers_<model>": a run with --model svm
    # adds to the headline figures instead of replacing them.
    section = "numbers" if args.model == PREFERRED_DEFAULT else f"numbers_{args.model}"
    summary_file = args.out.with_name("results.json")  # a run written elsewhere leaves bench/ alone
    if args.only:  # added to what is there, each section saying which models read it
        found = {name: part | {"models": models} for name, part in found.items()}
        results = json.loads(args.out.read_text()) | found
        headline = json.loads(summary_file.read_text()).get(section, {}) if summary_file.exists() else {}
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        write_sections(summary_file, {section: headline | found})
        _print_sections(found)
        print(f"wrote {', '.join(found)} into {args.out}")
        return 0
    summary = _summary(measured["cells"])
    goals = {
        medium: {
            "digit_accuracy_cost_points": summary[medium]["digit_accuracy_cost_points"]
            < GOALS["digit_accuracy_cost_points"],
            "four_digit_clear_number_accuracy": summary[medium]["four_digits_clear"]["number_accuracy"]
            >= GOALS["four_digit_clear_number_accuracy"]}
        for medium in ("picture", "drawing")}
    results = {"model": args.model, "models": models, "training_digits": manifest["training_samples"],
               "seed": args.seed, "goals": GOALS, "met": goals, "summary": summary, "photographed": photographed,
               **found,
               "seconds": {k: round(v, 1) for k, v in measured["seconds"].items()},
               "candidates_per_number": measured["candidates_per_number"],
               "cells": measured["cells"]}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_sections(summary_file, {section: {key: value for key, value in results.items() if key != "cells"}
                                  | {"cells": args.out.name}})
    for medium in ("picture", "drawing"):
        s = summary[medium]
        every = s["all"]
        print(f"{medium}: numbers {every['number_accuracy']:.2%} (one by one {every['number_accuracy_one_by_one']:.2%}), "
              f"digits {every['digit_accuracy']:.2%} (one by one {every['digit_accuracy_one_by_one']:.2%}), "
              f"4-digit clear {s['four_digits_clear']['number_accuracy']:.2%}; by kind "
              + ", ".join(f"{k} {v['number_accuracy']:.2%}" for k, v in s["by_kind"].items())
              + f"; {measured['candidates_per_number'][medium]} candidate digits sent per number")
    every = photographed["all"]
    print(f"photographed ({PHOTO_CONDITION}): numbers {every['number_accuracy']:.2%}, digits "
          f"{every['digit_accuracy']:.2%}, {every['refused']} refused; by kind "
          + ", ".join(f"{k} {v['number_accuracy']:.2%}" for k, v in photographed["by_kind"].items()))
    _print_sections(found)
    print(f"wrote {args.out}")
    return 0


def _print_sections(found: dict) -> None:
    """One line per section measured apart (SECTIONS)."""
    names = {"amounts": "amounts (a point, a comma or a minus)", "times": "times (a colon)",
             "dates": "dates (slashes)", "hyphens": "hyphens between digits", "pluses": "a plus before the digits",
             "several": "several signs (dates with points or hyphens, amounts with a thousands separator)"}
    for name, part in found.items():
        media = ("picture", "photographed", "drawing")
        if name == "lines":
            print("two lines (a number above another): " + ", ".join(
                f"{m} {part[m]['two_lines_found']:.2%} found, {part[m]['both_right']:.2%} both right" for m in media))
        else:
            print(f"{names[name]}: " + ", ".join(
                f"{m} {part[m]['number_accuracy']:.2%} whole, sign {part[m]['sign_accuracy']:.2%}" for m in media))


if __name__ == "__main__":
    raise SystemExit(main())
