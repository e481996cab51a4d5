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
