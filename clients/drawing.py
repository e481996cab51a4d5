"""A mouse drawing as data: strokes on a canvas, saved as JSON, rendered like MNIST ink.

The Tk client only records mouse drags into a :class:`Drawing` and shows
them; everything else (files, rendering, the 784-pixel vector) lives here so
that it is testable without a display and so that ``digits predict
drawing.json`` sees exactly what the Tk client sends.

Stroke file format::

    {"canvas": [WIDTH, HEIGHT],
     "strokes": [[[x, y], [x, y], ...], {"points": [[x, y], ...], "width": 30, "erase": true}, ...]}

points in canvas pixels, origin top-left, y down, one entry per mouse drag:
a plain list of points is drawn with the default pen; an object may give the
pen's width (canvas pixels) and mark an eraser stroke, which paints
background over the strokes before it.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from clients import preprocessing

# The pen the Tk canvas draws with on a 280x280 canvas. MNIST strokes are ~2
# pixels of a 20 pixel digit (0.1); a digit drawn about 180 pixels tall with
# this pen looks on screen like MNIST ink does at 28x28.
DISPLAY_PEN = 18.0
DISPLAY_CANVAS = 280.0
# to_vector's pen as a fraction of the digit's extent (the strokes' bounding
# box plus the pen): MNIST-like strokes whatever the canvas or digit size.
PEN_FRACTION = 0.14
# to_vector renders the digit with this longer side before preprocessing: big
# enough for smooth anti-aliased edges, small enough to take about a millisecond.
_WORK_SIZE = 96
_MARGIN = 4  # work pixels of black around the ink, so the border reads as background
_SUPERSAMPLE = 4

Point = tuple[float, float]


class DrawingError(ValueError):
    """A drawing that cannot be loaded or used; the message names the file and field."""


@dataclass
class Stroke:
    """One mouse drag: its points, the pen's width in canvas pixels (None: the display pen), ink or eraser."""

    points: list[Point] = field(default_factory=list)
    width: float | None = None
    erase: bool = False

    def __post_init__(self) -> None:
        if self.width is not None and not (_is_number(self.width) and self.width > 0):
            raise DrawingError(f"stroke width must be a positive number up to {_LIMIT:,}, got {self.width!r}")


class Drawing:
    """The strokes of one drawing on a ``width`` x ``height`` canvas, painted in order."""

    def __init__(self, width: int = 280, height: int = 280, strokes: list[Stroke | list[Point]] | None = None):
        for name, value in (("width", width), ("height", height)):
            if not _is_number(value) or value <= 0:
                raise DrawingError(f"canvas {name} must be a positive number up to {_LIMIT:,}, got {value!r}")
        self.width = width
        self.height = height
        # Empty strokes carry nothing and a stroke file may not hold them: they are dropped.
        self.strokes: list[Stroke] = [_stroke(s) for s in strokes or [] if len(_points_of(s))]

    def __repr__(self) -> str:
        points = sum(len(s.points) for s in self.strokes)
        return f"Drawing({self.width}x{self.height}, {len(self.strokes)} strokes, {points} points)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Drawing):
            return NotImplemented
        return (self.width, self.height, self.strokes) == (other.width, other.height, other.strokes)

    # --- editing, as the mouse moves -------------------------------------------------------

    def begin_stroke(self, x: float, y: float, width: float | None = None, erase: bool = False) -> None:
        """Start a new stroke (mouse button pressed) with this pen."""
        self.strokes.append(Stroke([_point(x, y)], width, erase))

    def extend_stroke(self, x: float, y: float) -> None:
        """Add a point to the current stroke (mouse dragged); starts one if there is none."""
        point = _point(x, y)
        if not self.strokes:
            self.strokes.append(Stroke([point]))
        elif self.strokes[-1].points[-1] != point:  # Tk repeats motion events without moving
            self.strokes[-1].points.append(point)

    def clear(self) -> None:
        self.strokes.clear()

    @property
    def is_empty(self) -> bool:
        """No ink stroke (an eraser alone leaves nothing)."""
        return not any(not s.erase for s in self.strokes)

    def fitted(self, width: int, height: int) -> Drawing:
        """This drawing scaled uniformly and centred onto a width x height canvas.

        A uniform scale keeps ``to_vector`` unchanged (it depends only on the
        strokes' shape), so a file drawn on another canvas predicts the same
        on this one.
        """
        if (self.width, self.height) == (width, height):
            return Drawing(width, height, self.strokes)
        factor = min(width / self.width, height / self.height)
        dx, dy = (width - self.width * factor) / 2, (height - self.height * factor) / 2
        # The default pen follows the canvas by itself; a stroke's own pen is scaled with its points.
        return Drawing(width, height, [Stroke([(x * factor + dx, y * factor + dy) for x, y in s.points],
                                              None if s.width is None else s.width * factor, s.erase)
                                       for s in self.strokes])

    # --- files ---------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"canvas": [self.width, self.height], "strokes": [_stroke_json(s) for s in self.strokes]})

    def save(self, path: str | Path) -> None:
        """Write strokes (``.json``) or the picture as seen, dark ink on white (``.png``), by the extension."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(self.to_json() + "\n", encoding="utf-8")
        elif suffix == ".png":
            ImageOps.invert(self.render()).save(path, format="PNG")
        else:
            raise DrawingError(f"{path}: cannot save as {suffix or 'a file without an extension'}; "
                               "expected .json (strokes) or .png (image)")

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Drawing:
        """Parse and validate a stroke file; errors say which field is wrong and what was expected."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DrawingError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        if not isinstance(data, dict):
            raise DrawingError(f'{source}: expected an object {{"canvas": [width, height], "strokes": [...]}}, '
                               f"got {_show(data)}")
        for key in ("canvas", "strokes"):
            if key not in data:
                raise DrawingError(f"{source}: {key}: missing")
        canvas = data["canvas"]
        if (not isinstance(canvas, list) or len(canvas) != 2
                or not all(_is_number(v) and v > 0 for v in canvas)):
            raise DrawingError(f"{source}: canvas: expected [width, height] positive numbers up to {_LIMIT:,}, "
                               f"got {_show(canvas)}")
        strokes = data["strokes"]
        if not isinstance(strokes, list):
            raise DrawingError(f"{source}: strokes: expected a list of strokes, got {_show(strokes)}")
        parsed = [_parse_stroke(stroke, f"{source}: strokes[{i}]") for i, stroke in enumerate(strokes)]
        return cls(canvas[0], canvas[1], parsed)

    @classmethod
    def load(cls, path: str | Path) -> Drawing:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DrawingError(f"{path}: not a stroke file (not UTF-8 text)") from None
        except OSError as exc:
            raise DrawingError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return cls.from_json(text, source=str(path))

    # --- pixels --------------------------------------------------------------------------

    def display_pen_width(self) -> float:
        """The on-screen pen for this canvas: DISPLAY_PEN scaled with the canvas's shorter side."""
        return DISPLAY_PEN * min(self.width, self.height) / DISPLAY_CANVAS

    def pen_of(self, stroke: Stroke) -> float:
        """The stroke's pen width in canvas pixels."""
        return self.display_pen_width() if stroke.width is None else stroke.width

    def render(self, pen_width: float | None = None, scale: float = 1.0) -> Image.Image:
        """The canvas as a greyscale "L" image, white ink on black, round pens, anti-aliased.

        ``pen_width`` (canvas pixels) replaces every stroke's own pen when
        given; the image is the canvas size times ``scale``.
        """
        if pen_width is not None and not (math.isfinite(pen_width) and pen_width > 0):
            raise ValueError(f"pen_width must be a positive number, got {pen_width!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        pens = [(pen_width or self.pen_of(s)) * scale for s in self.strokes]
        return _rasterise(self.strokes, pens, size, (0.0, 0.0), scale)

    def to_vector(self) -> np.ndarray:
        """The 784-pixel MNIST-style vector of this drawing: what the model is asked about.

        The drawing is re-rendered off screen with a pen proportional to the
        digit rather than the canvas (PEN_FRACTION of its extent), so small
        and large drawings both get MNIST's stroke width, then goes through
        the same preprocessing as image files. A brush wider or narrower than
        the display pen keeps that ratio to the digit's pen; eraser strokes
        paint the background back.
        """
        if self.is_empty:
            raise DrawingError("drawing is empty")
        points = np.array([p for s in self.strokes if not s.erase for p in s.points], dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        extent = float((high - low).max())
        if extent > 0:
            pen = PEN_FRACTION * extent / (1.0 - PEN_FRACTION)  # pen = PEN_FRACTION * (extent + pen)
        else:
            pen = self.display_pen_width()  # a single dot: any pen gives the same round blob
        scale = _WORK_SIZE / (extent + pen)
        pens = [pen * scale * self.pen_of(s) / self.display_pen_width() for s in self.strokes]
        widest = max(p for p, s in zip(pens, self.strokes) if not s.erase) / scale
        margin = widest / 2 + _MARGIN / scale
        origin = (float(low[0] - margin), float(low[1] - margin))
        size = tuple(int(math.ceil((span + 2 * margin) * scale)) for span in high - low)
        image = _rasterise(self.strokes, pens, size, origin, scale)
        return preprocessing.to_mnist(image, ink="light")


def _rasterise(strokes: list[Stroke], pens: list[float], size: tuple[int, int], origin: Point,
               scale: float) -> Image.Image:
    """Draw strokes white on black, erasers black: (x, y) lands at ((x - ox) * scale, (y - oy) * scale).

    ``pens`` (one per stroke) are in output pixels. Drawing happens at
    _SUPERSAMPLE times the size and is box-averaged down, for anti-aliased
    edges; a disc at every point gives round caps and joins (and makes a
    one-point stroke a dot).
    """
    s = _SUPERSAMPLE
    big = Image.new("L", (size[0] * s, size[1] * s), 0)
    draw = ImageDraw.Draw(big)
    ox, oy = origin
    factor = scale * s
    for stroke, pen in zip(strokes, pens):
        fill = 0 if stroke.erase else 255
        radius = max(pen * s / 2, 0.5)
        xy = [((x - ox) * factor, (y - oy) * factor) for x, y in stroke.points]
        if len(xy) > 1:
            draw.line(xy, fill=fill, width=max(1, round(pen * s)))
        for x, y in xy:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    return big.reduce(s)


def _points_of(stroke: Stroke | list[Point]) -> list[Point]:
    return stroke.points if isinstance(stroke, Stroke) else stroke


def _stroke(stroke: Stroke | list[Point]) -> Stroke:
    """A validated copy: a plain list of points is a stroke with the default pen."""
    if isinstance(stroke, Stroke):
        return Stroke([_point(x, y) for x, y in stroke.points], stroke.width, stroke.erase)
    return Stroke([_point(x, y) for x, y in stroke])


def _stroke_json(stroke: Stroke) -> list | dict:
    points = [[x, y] for x, y in stroke.points]
    if stroke.width is None and not stroke.erase:
        return points  # the plain form every version of the format reads
    entry: dict = {"points": points}
    if stroke.width is not None:
        entry["width"] = stroke.width
    if stroke.erase:
        entry["erase"] = True
    return entry


def _parse_stroke(stroke: object, where: str) -> Stroke:
    width, erase = None, False
    if isinstance(stroke, dict):
        unknown = sorted(set(stroke) - {"points", "width", "erase"})
        if unknown:
            raise DrawingError(f"{where}: unknown field {unknown[0]!r}; expected points, width, erase")
        if "points" not in stroke:
            raise DrawingError(f"{where}: points: missing")
        width, erase = stroke.get("width"), stroke.get("erase", False)
        if width is not None and not (_is_number(width) and width > 0):
            raise DrawingError(f"{where}: width: expected a positive number up to {_LIMIT:,}, got {_show(width)}")
        if not isinstance(erase, bool):
            raise DrawingError(f"{where}: erase: expected true or false, got {_show(erase)}")
        where, stroke = f"{where}.points", stroke["points"]
    if not isinstance(stroke, list) or not stroke:
        raise DrawingError(f"{where}: expected a non-empty list of [x, y] points, got {_show(stroke)}")
    points = []
    for j, point in enumerate(stroke):
        if not (isinstance(point, list) and len(point) == 2 and all(_is_number(v) for v in point)):
            raise DrawingError(f"{where}[{j}]: expected [x, y] numbers within ±{_LIMIT:,}, got {_show(point)}")
        points.append((float(point[0]), float(point[1])))
    return Stroke(points, None if width is None else float(width), erase)


def _point(x: float, y: float) -> Point:
    point = (float(x), float(y))
    if not all(map(_is_number, point)):
        raise DrawingError(f"points must be numbers within ±{_LIMIT:,}, got ({x!r}, {y!r})")
    return point


# Coordinates, canvas sides and pen widths are at most this in size: far beyond any screen, and
# far enough from float's range that the differences and scales of rendering stay finite.
_LIMIT = 1_000_000


def _is_number(value: object) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) <= _LIMIT)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
