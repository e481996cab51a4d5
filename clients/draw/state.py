"""What the drawing window knows, as plain data: no Tk, no threads, no gRPC.

The view draws this state and the app changes it; tests read it directly.
The drawing's edit history lives here too: every change (a stroke, a clear,
opening a file, undo itself) is undoable, and redo walks forward again until
the next new change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from clients.drawing import DISPLAY_PEN, Drawing, Stroke
from clients.numbers import Number, NumberError, worth_a_look
from clients.prediction import Prediction

CANVAS = 280  # canvas side in pixels, the size Drawing's display pen is tuned for
NUMBER_WIDTH = 840  # the canvas's width in number mode, until the window is resized (its height stays CANVAS)
BRUSH_MIN, BRUSH_MAX = 6.0, 48.0  # pen widths the brush slider and the mouse wheel allow


class Status(enum.Enum):
    """The channel as the status bar shows it."""

    CONNECTING = "connecting…"  # not yet connected once
    CONNECTED = "connected"
    DISCONNECTED = "disconnected — reconnecting"


class Level(enum.Enum):
    """How a message is shown."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class Message:
    text: str = ""
    level: Level = Level.INFO


@dataclass(frozen=True)
class Reading:
    """What number mode read: a number per line of writing, top first, or why that line could not be read."""

    lines: tuple[Number | NumberError, ...]

    @property
    def numbers(self) -> list[Number]:
        return [line for line in self.lines if isinstance(line, Number)]

    @property
    def text(self) -> str:
        """The numbers read, a line each, as the clipboard takes them."""
        return "\n".join(number.text for number in self.numbers)

    @property
    def confidence(self) -> float:
        """The chance that every digit read is right, taking the model's confidences at their word."""
        return float(np.prod([number.confidence for number in self.numbers]))

    def most_doubtful(self) -> tuple[int, int] | None:
        """The line and place of the digit most worth a look (Number.most_doubtful), over every line read."""
        places = [(k, line.most_doubtful()) for k, line in enumerate(self.lines)
                  if isinstance(line, Number) and line.digits]
        return min(places, key=lambda at: worth_a_look(self.lines[at[0]].digits[at[1]]), default=None)


@dataclass(frozen=True)
class Placement:
    """Where a picture lies on the canvas: a point (x, y) of it is at (x * scale + left, y * scale + top)."""

    scale: float = 1.0
    left: float = 0.0
    top: float = 0.0


@dataclass(frozen=True)
class Picture:
    """An opened image or photo: shown on the canvas, its recognised pixels sent instead of strokes.

    In number mode ``image`` is the picture already fitted to the canvas
    (fit_to_canvas) and ``opened`` the picture as opened, which is what is
    read as a number, at its own resolution and without the canvas's margin:
    the digits' boxes are then moved to the canvas by ``placement`` and drawn
    over it as they are over strokes.
    """

    path: Path
    image: Image.Image
    vector: np.ndarray
    opened: Image.Image | None = None
    placement: Placement = Placement()


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """The picture scaled to fit a width x height box (RGB); tiny pictures (28x28) are enlarged."""
    picture = image.convert("RGB")
    picture.thumbnail((width, height), Image.Resampling.LANCZOS)
    if picture.size[0] < width / 2 and picture.size[1] < height / 2:
        factor = max(1, min(width // picture.size[0], height // picture.size[1]))
        picture = picture.resize((picture.size[0] * factor, picture.size[1] * factor), Image.Resampling.NEAREST)
    return picture


def fit_to_canvas(image: Image.Image, width: int, height: int) -> tuple[Image.Image, Placement]:
    """The picture fitted into a width x height canvas and centred on its own paper; and where it lies.

    The margin takes the colour of the picture's border (the median), so
    light ink on dark paper stays told apart from its paper.
    """
    picture = fit(image, width, height)
    pixels = np.asarray(picture)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    canvas = Image.new("RGB", (width, height), tuple(int(v) for v in np.median(border, axis=0)))
    left, top = (width - picture.size[0]) // 2, (height - picture.size[1]) // 2
    canvas.paste(picture, (left, top))
    return canvas, Placement(picture.size[0] / image.size[0], left, top)


@dataclass(frozen=True)
class ModelChoice:
    name: str
    accuracy: float


@dataclass
class Brush:
    width: float = DISPLAY_PEN
    erase: bool = False

    def resized(self, width: float) -> None:
        self.width = min(max(float(width), BRUSH_MIN), BRUSH_MAX)


@dataclass(frozen=True)
class _Snapshot:
    strokes: tuple[Stroke, ...]
    picture: Picture | None


@dataclass
class DrawState:
    """The window's state. ``epoch`` counts the changes that replace the content (clear, undo, open…):
    an answer asked for in an older epoch is about something no longer shown."""

    address: str
    model: str = ""  # the picker's model; "" is the server's default
    drawing: Drawing = field(default_factory=lambda: Drawing(CANVAS, CANVAS))
    picture: Picture | None = None
    brush: Brush = field(default_factory=Brush)
    auto_predict: bool = True  # predict while drawing, not only on request
    status: Status = Status.CONNECTING
    round_trip_ms: float | None = None
    models: list[ModelChoice] = field(default_factory=list)
    default_model: str = ""
    result: Prediction | None = None  # the answer on display, with the pixels it was about
    number_mode: bool = False  # read the drawing as a whole number, digit by digit
    reading: Reading | None = None  # what number mode read: a number per line of writing
    message: Message = field(default_factory=Message)  # under the answer: confidence, a hint, an error
    notice: Message = field(default_factory=Message)  # under the buttons: the last save or open
    epoch: int = 0
    _undo: list[_Snapshot] = field(default_factory=list)
    _redo: list[_Snapshot] = field(default_factory=list)

    # --- the content: strokes or a picture ------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return self.picture is None and self.drawing.is_empty

    def vector(self) -> np.ndarray:
        """The 784 pixels to send for what is shown (raises for an empty or fully erased drawing)."""
        return self.picture.vector if self.picture is not None else self.drawing.to_vector()

    def begin_stroke(self, x: float, y: float) -> None:
        """A stroke with the current brush; on an opened picture it starts a new drawing."""
        self._remember()
        if self.picture is not None:
            self.picture = None
            self.epoch += 1
        self.drawing.begin_stroke(x, y, self.brush.width, self.brush.erase)

    def extend_stroke(self, x: float, y: float) -> None:
        self.drawing.extend_stroke(x, y)

    def clear(self) -> bool:
        """Empty the canvas (undoable); False when it was empty already."""
        if self.picture is None and not self.drawing.strokes:
            return False
        self._remember()
        self._replace(_Snapshot((), None))
        return True

    def open_drawing(self, drawing: Drawing) -> None:
        self._remember()
        self._replace(_Snapshot(tuple(drawing.fitted(self.drawing.width, self.drawing.height).strokes), None))

    def set_number_mode(self, on: bool, width: int = NUMBER_WIDTH) -> None:
        """Number mode on a ``width`` x CANVAS canvas, or back to one digit; what is drawn is fitted to it.

        The history is about strokes on the other canvas, so it starts afresh.
        """
        self.number_mode = on
        size = (width, CANVAS) if on else (CANVAS, CANVAS)
        self.drawing = self.drawing.fitted(*size)
        self._undo.clear()
        self._redo.clear()
        self.result, self.reading = None, None
        self.epoch += 1

    def resize(self, width: int) -> None:
        """The number canvas got wider or narrower: strokes stay where they are."""
        if self.number_mode and width >= CANVAS:
            self.drawing.width = width

    def open_picture(self, picture: Picture) -> None:
        self._remember()
        self._replace(_Snapshot((), picture))

    # --- history -------------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._snapshot())
        self._replace(self._undo.pop())
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._snapshot())
        self._replace(self._redo.pop())
        return True

    def _snapshot(self) -> _Snapshot:
        # Finished strokes never change again, so sharing them between snapshots is safe.
        return _Snapshot(tuple(self.drawing.strokes), self.picture)

    def _remember(self) -> None:
        """Before a new change: it can be undone, and what was undone cannot be redone any more."""
        self._undo.append(self._snapshot())
        self._redo.clear()

    def _replace(self, snapshot: _Snapshot) -> None:
        self.drawing.strokes = list(snapshot.strokes)
        self.picture = snapshot.picture
        self.epoch += 1
        if self.is_empty:
            self.result, self.reading = None, None
