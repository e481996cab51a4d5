"""``digits predict --number``: every input read as a whole number, one Predict per number.

Each result carries the number (a string, with any decimal point, comma,
colon, hyphen or a date's slashes written between its digits and a minus
before them, as in "34.93", "12:30", "555-0123", "12/05/2026" or "-12"),
its confidence (the product of its digits') and, per digit, the value,
confidence, probabilities, box in the input's own coordinates and whether it
is uncertain; the signs with their places and boxes; with --top K the K
likeliest values of every digit, and with --labels the number expected.
Table, JSON and CSV (one row per digit) carry all of it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, TextIO

from clients import numbers
from clients.connection import Connection
from clients.drawing import Drawing, DrawingError
from clients.inputs import Item
from clients.output import JsonWriter, probability_text
from clients.preprocessing import PreprocessingError
from digitserve.contract import CLASSES


class LabelsError(ValueError):
    """A labels file for numbers that cannot be read; the message names the file and line."""


def read_number_labels(path: str | Path) -> dict[str, str]:
    """The expected number of each input: lines ``NAME NUMBER`` (or ``NAME,NUMBER``); ``#`` at the start of a
    line or after a space starts a comment (``meter.jpg#1`` names the second line read by --lines).

    NAME is the input as given or its file name alone; NUMBER is digits, with
    any decimal points, commas, colons, slashes or hyphens written in it and a
    minus or a plus before it (``34.93``, ``1,250``, ``12:30``, ``12/05/2026``,
    ``555-0123``, ``-12``, ``+44``). Raises
    OSError when the file cannot be read and LabelsError naming the line when
    it is wrong.
    """
    labels: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
        if not text:
            continue
        fields = re.split(r"\s*,\s*|\s+", text, maxsplit=1)  # the name ends at its first comma or space
        if len(fields) != 2 or not re.fullmatch(r"[-+]?[0-9]+([.,:/-][0-9]+)*", fields[1]):
            raise LabelsError(f"{path}:{number}: expected NAME NUMBER (digits 0-9, with any decimal point, "
                              f"comma, colon, slash or hyphen between them and a minus or plus before them), found {text!r}")
        labels[fields[0]] = fields[1]
    return labels


def label_of(source: str, labels: dict[str, str]) -> str | None:
    """The expected number of an input: by the name it was given, else by its file name."""
    return labels.get(source, labels.get(Path(source).name))


def digits_of(number: str) -> str:
    """The digits of a number as written, without its signs (points, commas, colons, slashes, hyphens, a minus)."""
    return "".join(c for c in number if c.isdigit())


def edit_distance(truth: str, read: str) -> int:
    """Digits replaced, dropped or added to turn ``truth`` into ``read`` (Levenshtein)."""
    row = list(range(len(read) + 1))
    for i, t in enumerate(truth, 1):
        previous, row[0] = row[0], i
        for j, r in enumerate(read, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (t != r))
    return row[-1]


@dataclass(frozen=True)
class NumberResult:
    item: Item
    number: numbers.Number | None = None
    error: str | None = None
    label: str | None = None  # the number expected, from --labels

    @property
    def wrong(self) -> bool:
        return self.label is not None and (self.number is None or self.number.text != self.label)

    def record(self, top: int = 0) -> dict:
        record: dict = {"source": self.item.source}
        if self.item.index is not None:
            record["index"] = self.item.index
        if self.label is not None:
            record["label"] = self.label
        if self.error is not None:
            record["error"] = self.error
            return record
        record["number"] = self.number.text
        record["confidence"] = round(self.number.confidence, 6)
        record["digits"] = [d.record(top) for d in self.number.digits]
        record["signs"] = [s.record() for s in self.number.signs]
        return record


class NumberScoreboard:
    """Whole numbers and digits right over the results that carry a label; digits by edit distance."""

    def __init__(self):
        self.total = self.right = self.digits = self.digits_right = 0

    def add(self, result: NumberResult) -> None:
        if result.label is None:
            return
        read = result.number.text if result.number is not None else ""
        truth = digits_of(result.label)
        self.total += 1
        self.right += read == result.label
        self.digits += len(truth)
        self.digits_right += max(0, len(truth) - edit_distance(truth, digits_of(read)))

    def report(self) -> str:
        return (f"numbers right: {self.right / max(self.total, 1):.2%} ({self.right} of {self.total} labelled); "
                f"digits right: {self.digits_right / max(self.digits, 1):.2%} ({self.digits_right} of {self.digits}, "
                "counting wrong, missing and extra digits)")


def read_numbers(connection: Connection, items: Iterator[Item], model: str, ink: str,
                 labels: dict[str, str] | None = None, lines: bool = False) -> Iterator[NumberResult]:
    """A result per item: its number, or why it could not be read (named by its source).

    With ``lines``, a picture or drawing of several lines gives a result per
    line, top first, its ``index`` the line's place (labels NAME#INDEX).
    """
    def classify(vectors):
        return connection.predict(vectors, model).predictions()

    for item in items:
        label = label_of(item.source, labels) if labels else None
        if item.error is not None:
            yield NumberResult(item, error=item.error, label=label)
            continue
        by_line = lines and item.index is None  # a row of an IDX or .npy file is one digit's image
        try:
            if by_line:
                read = numbers.read_lines(item.whole, classify, ink)
            elif isinstance(item.whole, Drawing):
                read = [numbers.read_drawing(item.whole, classify)]
            else:
                read = [numbers.read_image(item.whole, classify, ink)]
        except numbers.SeveralLines as exc:
            yield NumberResult(item, error=f"{item.source}: {exc}, or read each with --lines", label=label)
            continue
        except (numbers.NumberError, PreprocessingError, DrawingError) as exc:
            yield NumberResult(item, error=f"{item.source}: {exc}", label=label)
            continue
        for index, number in enumerate(read):
            if by_line:
                item = replace(item, index=index)
                label = label_of(f"{item.source}#{index}", labels) if labels else None
            if isinstance(number, numbers.NumberError):
                yield NumberResult(item, error=f"{item.source}#{index}: {number}", label=label)
            else:
                yield NumberResult(item, number, label=label)


class NumberTableWriter:
    """Number, confidence and the digits with theirs; uncertain digits carry a ?, wrong numbers are marked."""

    def __init__(self, out: TextIO, top: int = 0):
        self.out, self.top, self.header_done = out, top, False

    def write(self, result: NumberResult) -> None:
        if not self.header_done:
            self.out.write(f"{'number':>10}  {'confidence':>10}  {'label':>10}  {'':5}  source  digits\n")
            self.header_done = True
        source = result.item.source + (f"#{result.item.index}" if result.item.index is not None else "")
        label = result.label or ""
        wrong = "wrong" if result.wrong else ""
        if result.error is not None:
            self.out.write(f"{'-':>10}  {'error':>10}  {label:>10}  {wrong:5}  {result.error}\n")
            return
        number = result.number
        digits = " ".join(f"{d.digit}{'?' if d.uncertain else ''}:{d.confidence:.2f}" + self._top(d)
                          for d in number.digits)
        self.out.write(f"{number.marked:>10}  {number.confidence:>10.4f}  {label:>10}  {wrong:5}  {source}  {digits}\n")

    def _top(self, digit: numbers.Digit) -> str:
        if not self.top:
            return ""
        return "[" + " ".join(f"{d}:{probability_text(p)}" for d, p in digit.top(self.top)) + "]"

    def close(self) -> None:
        pass


class NumberCsvWriter:
    """One row per digit, with its number's columns repeated (an unreadable input: one row with the error)."""

    COLUMNS = (["source", "index", "number", "confidence", "label", "position", "digit", "digit_confidence",
                "uncertain", "unsure_reason", "left", "top", "right", "bottom"] + [f"p{d}" for d in CLASSES])

    def __init__(self, out: TextIO, top: int = 0):
        self.top = top
        columns = self.COLUMNS + [f"top{k}_{part}" for k in range(1, top + 1) for part in ("digit", "p")] + ["error"]
        self.writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        self.writer.writeheader()

    def write(self, result: NumberResult) -> None:
        record = result.record(self.top)
        digits = record.pop("digits", [])
        record.pop("signs", None)  # written in the number column, where they stand
        if not digits:
            self.writer.writerow(record)
        for position, digit in enumerate(digits):
            row = {**record, "position": position, "digit": digit["digit"],
                   "digit_confidence": digit["confidence"], "uncertain": digit["uncertain"],
                   "unsure_reason": digit.get("unsure_reason", "")}
            row.update(zip(("left", "top", "right", "bottom"), digit["box"]))
            row.update({f"p{d}": p for d, p in enumerate(digit["probabilities"])})
            for k, (d, p) in enumerate(digit.get("top", []), start=1):
                row[f"top{k}_digit"], row[f"top{k}_p"] = d, p
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

