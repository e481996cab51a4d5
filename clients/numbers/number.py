"""A number as read: its digits, each a prediction with its box in the input's
coordinates, and its signs; and the errors of input that cannot be read as one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from clients.numbers.atoms import Box
from clients.prediction import Prediction


MAX_DIGITS = 32
LOW_CONFIDENCE = 0.5  # digits the model is less sure of than this are marked, as are those it doubts
MAX_MARKS = 3 * MAX_DIGITS  # strokes or pieces of ink a number may be made of


class NumberError(ValueError):
    """Input that cannot be read as a number; the message says why."""


class SeveralLines(NumberError):
    """Writing in several lines, one above the other, read as one number (read_lines reads each): ``lines``
    are the rows each reaches (top, bottom) in the input's coordinates, top first."""

    def __init__(self, lines: list[tuple[float, float]]):
        rows = ", ".join(f"{top:.0f}-{bottom:.0f}" for top, bottom in lines)
        super().__init__(f"{len(lines)} lines of writing, one above the other (rows {rows}): a number is read "
                         "from one line; crop to the one to read")
        self.lines = lines


class Digit(Prediction):
    """One digit of a number: the prediction for its box (in the input's coordinates)."""

    @property
    def uncertain(self) -> bool:
        """Marked for people: the model is less sure than LOW_CONFIDENCE, or doubts the answer (a scribble
        in a number is often read with confidence, but as unlike any digit)."""
        return self.confidence < LOW_CONFIDENCE or bool(self.doubt)

    def record(self, top: int = 0) -> dict:
        return super().record(top, box=[round(v, 1) for v in self.box], uncertain=self.uncertain)


@dataclass(frozen=True)
class Sign:
    """A sign written with the digits of a number: a decimal point ("."), a comma (","), a colon (":"), a
    hyphen ("-") or a date's slash ("/") between two of them, or a minus ("-") or a plus ("+") before the
    first."""

    char: str
    after: int  # how many digits come before it
    box: Box  # left, top, right, bottom in the input's coordinates

    def record(self) -> dict:
        return {"sign": self.char, "after": self.after, "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class Number:
    digits: list[Digit]
    signs: tuple[Sign, ...] = ()

    @property
    def text(self) -> str:
        return self._spelt(lambda d: str(d.digit))

    @property
    def confidence(self) -> float:
        """The chance that every digit is right, taking the model's confidences at their word."""
        return float(np.prod([d.confidence for d in self.digits]))

    @property
    def marked(self) -> str:
        """The number with a ? after every uncertain digit, for people."""
        return self._spelt(lambda d: f"{d.digit}?" if d.uncertain else str(d.digit))

    def _spelt(self, spell: Callable[[Digit], str]) -> str:
        """The digits spelt one by one, with the signs where they stand."""
        text = [spell(d) for d in self.digits]
        for sign in sorted(self.signs, key=lambda m: m.after, reverse=True):
            text.insert(sign.after, sign.char)
        return "".join(text)

    def moved(self, scale: float, left: float, top: float) -> Number:
        """The same number with its boxes in other coordinates: (x, y) -> (x * scale + left, y * scale + top)."""
        def move(box: Box) -> Box:
            return (box[0] * scale + left, box[1] * scale + top, box[2] * scale + left, box[3] * scale + top)

        return Number([replace(d, box=move(d.box)) for d in self.digits],
                      tuple(replace(m, box=move(m.box)) for m in self.signs))

    def most_doubtful(self) -> int | None:
        """The place of the digit most worth a look: one the model doubts, then the one it is least sure of."""
        return min(range(len(self.digits)), key=lambda k: worth_a_look(self.digits[k]), default=None)


def worth_a_look(digit: Digit) -> tuple[bool, float]:
    """Smaller for a digit more worth a look: one the model doubts first, then the less sure."""
    return not digit.doubt, digit.confidence


def check_count(atoms: int) -> None:
    if atoms > MAX_MARKS:
        raise NumberError(f"too many separate marks ({atoms}) for a number: at most {MAX_DIGITS} digits are read")
