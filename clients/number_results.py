"""``digits predict --number``: every input read as a whole number, one Predict per number.

Each result carries the number (a string), its confidence (the product of
its digits') and, per digit, the value, confidence, probabilities, box in
the input's own coordinates and whether it is uncertain. Table, JSON and CSV
(one row per digit) carry all of it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Iterator, TextIO

from clients import numbers
from clients.connection import Connection
from clients.drawing import Drawing, DrawingError
from clients.inputs import Item
from clients.output import JsonWriter
from clients.preprocessing import PreprocessingError
from digitserve.contract import CLASSES


@dataclass(frozen=True)
class NumberResult:
    item: Item
    number: numbers.Number | None = None
    error: str | None = None

    def record(self, top: int = 0) -> dict:
        record: dict = {"source": self.item.source}
        if self.item.index is not None:
            record["index"] = self.item.index
        if self.error is not None:
            record["error"] = self.error
            return record
        record["number"] = self.number.text
        record["confidence"] = round(self.number.confidence, 6)
        record["digits"] = [d.record() for d in self.number.digits]
        return record


def read_numbers(connection: Connection, items: Iterator[Item], model: str, ink: str) -> Iterator[NumberResult]:
    """A result per item: its number, or why it could not be read (named by its source)."""
    def classify(vectors):
        return connection.predict(vectors, model).probabilities

    for item in items:
        if item.error is not None:
            yield NumberResult(item, error=item.error)
            continue
        try:
            if isinstance(item.whole, Drawing):
                number = numbers.read_drawing(item.whole, classify)
            else:
                number = numbers.read_image(item.whole, classify, ink)
        except (numbers.NumberError, PreprocessingError, DrawingError) as exc:
            yield NumberResult(item, error=f"{item.source}: {exc}")
            continue
        yield NumberResult(item, number)


class NumberTableWriter:
    """Number, confidence and the digits with theirs; uncertain digits carry a ?."""

    def __init__(self, out: TextIO, top: int = 0):
        self.out, self.header_done = out, False

    def write(self, result: NumberResult) -> None:
        if not self.header_done:
            self.out.write(f"{'number':>10}  {'confidence':>10}  source  digits\n")
            self.header_done = True
        source = result.item.source + (f"#{result.item.index}" if result.item.index is not None else "")
        if result.error is not None:
            self.out.write(f"{'-':>10}  {'error':>10}  {result.error}\n")
            return
        number = result.number
        digits = " ".join(f"{d.digit}{'?' if d.uncertain else ''}:{d.confidence:.2f}" for d in number.digits)
        self.out.write(f"{number.marked:>10}  {number.confidence:>10.4f}  {source}  {digits}\n")

    def close(self) -> None:
        pass


class NumberCsvWriter:
    """One row per digit, with its number's columns repeated (an unreadable input: one row with the error)."""

    COLUMNS = (["source", "index", "number", "confidence", "position", "digit", "digit_confidence", "uncertain",
                "left", "top", "right", "bottom"] + [f"p{d}" for d in CLASSES] + ["error"])

    def __init__(self, out: TextIO, top: int = 0):
        self.writer = csv.DictWriter(out, fieldnames=self.COLUMNS, lineterminator="\n")
        self.writer.writeheader()

    def write(self, result: NumberResult) -> None:
        record = result.record()
        digits = record.pop("digits", [])
        if not digits:
            self.writer.writerow(record)
        for position, digit in enumerate(digits):
            row = {**record, "position": position, "digit": digit["digit"],
                   "digit_confidence": digit["confidence"], "uncertain": digit["uncertain"]}
            row.update(zip(("left", "top", "right", "bottom"), digit["box"]))
            row.update({f"p{d}": p for d, p in enumerate(digit["probabilities"])})
            self.writer.writerow(row)

    def close(self) -> None:
        pass


NUMBER_WRITERS = {"table": NumberTableWriter, "json": JsonWriter, "csv": NumberCsvWriter}


def digits_seen_warning(item: Item) -> str | None:
    """What to tell someone who sent a picture of several digits to be read as one."""
    if (item.digits_seen or 0) <= 1:
        return None
    return (f"{item.source}: holds {item.digits_seen} separate digits, read here as one; "
            "use --number to read it as a number")

