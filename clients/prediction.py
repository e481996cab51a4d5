"""The server's answer about one image, as every client shows it.

``digits predict`` writes it per input, the drawing window shows it, and
number mode keeps one per digit of a number, with the digit's box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)  # arrays have no single truth value: predictions compare by identity
class Prediction:
    probabilities: np.ndarray  # one per class (digitserve.contract.CLASSES), float32
    doubt: str = ""  # why the server doubts the answer (Prediction.unsure_reason), "" when it does not
    model: str = ""  # the model that answered
    pixels: np.ndarray | None = None  # the image that was sent, when the caller keeps it
    box: tuple[float, float, float, float] | None = None  # left, top, right, bottom in a number's picture

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def top(self, k: int) -> list[tuple[int, float]]:
        """The k likeliest digits with their probabilities, likeliest first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def record(self, top: int = 0, **marks) -> dict:
        """The answer as JSON output gives it: digit, confidence and probabilities, then ``marks`` (what the
        caller adds, in order), why the server doubts it if it does, and the ``top`` likeliest digits."""
        record = {"digit": self.digit, "confidence": round(self.confidence, 6),
                  "probabilities": [round(float(p), 6) for p in self.probabilities], **marks}
        if self.doubt:
            record["unsure_reason"] = self.doubt
        if top:
            record["top"] = [[d, round(p, 6)] for d, p in self.top(top)]
        return record
