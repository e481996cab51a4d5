"""How ``digits predict`` shows its results: a table for people, JSON or CSV for scripts.

Writers are streaming: each result is written as soon as it is known, so the
output of a huge batch never has to fit in memory.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from clients.inputs import Item
from clients.prediction import Prediction
from digitserve.contract import CLASSES
from digitserve.unsure import UNDECIDED


@dataclass(frozen=True)
class Result:
    """An input and the server's answer about it; no answer when the input could not be read."""

    item: Item
    prediction: Prediction | None = None

    def record(self, top: int) -> dict:
        record: dict = {"source": self.item.source}
        if self.item.index is not None:
            record["index"] = self.item.index
        if self.item.error is not None:
            record["error"] = self.item.error
        else:
            record.update(self.prediction.record(top, unsure=bool(self.prediction.doubt)))
        if self.item.label is not None:
            record["label"] = self.item.label
        if (self.item.digits_seen or 0) > 1:
            record["digits_seen"] = self.item.digits_seen
        return record


class JsonWriter:
    """One JSON array, an object per input, written incrementally."""

    def __init__(self, out: TextIO, top: int):
        self.out, self.top, self.count = out, top, 0

    def write(self, result: Result) -> None:
        self.out.write("[\n  " if self.count == 0 else ",\n  ")
        self.out.write(json.dumps(result.record(self.top)))
        self.count += 1

    def close(self) -> None:
        self.out.write("[]\n" if self.count == 0 else "\n]\n")


class CsvWriter:
    """The JSON fields as columns; probabilities as p0..p9, top K as top1_digit, top1_p, ..."""

    def __init__(self, out: TextIO, top: int):
        self.top = top
        columns = ["source", "index", "digit", "confidence", "unsure", "unsure_reason"] + [f"p{d}" for d in CLASSES]
        columns += [f"top{k}_{part}" for k in range(1, top + 1) for part in ("digit", "p")]
        columns += ["label", "digits_seen", "error"]
        self.writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        self.writer.writeheader()

    def write(self, result: Result) -> None:
        record = result.record(self.top)
        for d, p in enumerate(record.pop("probabilities", [])):
            record[f"p{d}"] = p
        for k, (d, p) in enumerate(record.pop("top", []), start=1):
            record[f"top{k}_digit"], record[f"top{k}_p"] = d, p
        self.writer.writerow(record)

    def close(self) -> None:
        pass


class TableWriter:
    """Aligned columns for a terminal: fixed-width columns first, the source last.

    With a label known, a wrong answer is marked ``wrong``; an answer the
    server doubts gets a ``?`` after its digit and the reason after its
    source; the K likeliest digits show ``<0.001`` rather than a misleading
    ``0.000``.
    """

    def __init__(self, out: TextIO, top: int):
        self.out, self.top, self.header_done = out, top, False

    def write(self, result: Result) -> None:
        if not self.header_done:
            top = f"{'top':<{9 * self.top}}  " if self.top else ""
            self.out.write(f"{'digit':>5}  {'confidence':>10}  {'label':>5}  {'':5}  {top}source\n")
            self.header_done = True
        record = result.record(self.top)
        source = record["source"] + (f"#{record['index']}" if "index" in record else "")
        label = "" if result.item.label is None else str(result.item.label)
        if "error" in record:
            self.out.write(f"{'-':>5}  {'error':>10}  {label:>5}  {'':5}  {record['error']}\n")
            return
        wrong = "wrong" if label and int(label) != record["digit"] else ""
        top = "".join(f"{f'{d}:{probability_text(p)}':<9}" for d, p in record["top"]) + "  " if self.top else ""
        prediction = result.prediction
        digit = f"{record['digit']}?" if prediction.doubt else str(record["digit"])
        doubt = f"  ({not_sure(prediction.probabilities, prediction.doubt)})" if prediction.doubt else ""
        self.out.write(f"{digit:>5}  {record['confidence']:>10.4f}  {label:>5}  {wrong:5}  {top}{source}{doubt}\n")

    def close(self) -> None:
        pass


def not_sure(probabilities, doubt: str) -> str:
    """How clients put a doubted answer: "not sure: 4 or 9?" when torn between two digits."""
    if doubt == UNDECIDED:
        first, second = np.argsort(-np.asarray(probabilities))[:2]
        return f"not sure: {first} or {second}?"
    return f"not sure: {doubt}"


def probability_text(p: float) -> str:
    return "<0.001" if p < 0.0005 else f"{p:.3f}"


WRITERS = {"table": TableWriter, "json": JsonWriter, "csv": CsvWriter}


class Scoreboard:
    """Accuracy and confusion matrix over the results that carry a label."""

    def __init__(self):
        self.confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)

    def add(self, result: Result) -> None:
        if result.item.label is not None and result.prediction is not None:
            self.confusion[result.item.label, result.prediction.digit] += 1

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.total, 1))

    def report(self) -> str:
        lines = [f"accuracy: {self.accuracy:.2%} ({np.trace(self.confusion)} of {self.total} labelled digits)",
                 "confusion matrix (rows: true digit, columns: predicted):",
                 "      " + "".join(f"{d:>6}" for d in CLASSES)]
        for t in CLASSES:
            lines.append(f"{t:>6}" + "".join(f"{int(v):>6}" for v in self.confusion[t]))
        return "\n".join(lines)
