"""Writing in several lines, one above the other: a number per line (read_lines)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image

from clients import preprocessing
from clients.drawing import Drawing, DrawingError
from clients.numbers.candidates import Classify
from clients.numbers.drawings import read_drawing
from clients.numbers.number import Number, NumberError, SeveralLines
from clients.numbers.pictures import line_number, work_ink


_LINE_MARGIN = 0.5  # read_lines reads a picture's line with this much of its height above and below it


def read_lines(whole: Image.Image | np.ndarray | Drawing, classify: Classify,
               ink: str = "auto") -> list[Number | NumberError]:
    """A number per line of writing, top first (each read as read_image or read_drawing reads a number,
    its boxes in the input's coordinates), or why that line could not be read. Writing in one line is read
    as it is alone, and its errors are raised.

    A picture's lines are read from its ink map, found once for the whole
    picture (a photo's sheet, its ink's darkness), each within its rows and
    _LINE_MARGIN of its height around them, no further than halfway to the
    next line; a drawing's strokes go to the line nearest their middle,
    erasers to every line.
    """
    if isinstance(whole, Drawing):
        try:
            return [read_drawing(whole, classify)]
        except SeveralLines as several:
            parts = [Drawing(whole.width, whole.height, part) for part in _line_strokes(whole, several.lines)]
        return [_line_read(lambda: read_drawing(part, classify)) for part in parts]
    level, factor = work_ink(whole, ink)
    try:
        return [line_number(level, factor, classify)]
    except SeveralLines as several:
        rows = [(top / factor, bottom / factor) for top, bottom in several.lines]
    halves = [0] + [round((a[1] + b[0]) / 2) for a, b in zip(rows, rows[1:])] + [len(level)]
    # Read with what lies beyond it (a photo's table, a sheet's edge), a small line's height makes grain look
    # like digits.
    crops = [(max(above, math.floor(top - _LINE_MARGIN * (bottom - top))),
              min(below, math.ceil(bottom + _LINE_MARGIN * (bottom - top))))
             for (top, bottom), above, below in zip(rows, halves, halves[1:])]
    return [_line_read(lambda: line_number(level[top:bottom], factor, classify).moved(1.0, 0.0, top * factor))
            for top, bottom in crops]


def _line_read(read: Callable[[], Number]) -> Number | NumberError:
    """A line's number, or why it cannot be read."""
    try:
        return read()
    except (NumberError, preprocessing.PreprocessingError, DrawingError) as exc:
        return exc if isinstance(exc, NumberError) else NumberError(str(exc))


def _line_strokes(drawing: Drawing, lines: list[tuple[float, float]]) -> list[list]:
    """A drawing's strokes split by line (the one nearest each ink stroke's middle row); erasers in every line."""
    parts: list[list] = [[] for _ in lines]
    for stroke in drawing.strokes:
        if stroke.erase:
            for part in parts:
                part.append(stroke)
            continue
        rows = [y for _, y in stroke.points]
        middle = (min(rows) + max(rows)) / 2
        nearest = min(range(len(lines)), key=lambda k: max(lines[k][0] - middle, middle - lines[k][1], 0.0))
        parts[nearest].append(stroke)
    return parts
