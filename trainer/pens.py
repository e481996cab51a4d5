"""Training digits redrawn with another pen, the way a drawing window draws them.

MNIST's digits were written with pens of many widths and scanned with soft,
uneven ink; a digit drawn with a mouse has one even pen everywhere and full
ink along its whole length. A copy made here keeps a training digit's shape
and replaces its ink: the middle lines of its strokes, found on the digit
enlarged four times (trainer.styles.middle_lines), are drawn over with a
round pen of the chosen width at full ink, and the copy is averaged back
down and fitted into MNIST's box as the styled copies are.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from trainer.styles import SIDE, SUPERSAMPLE, middle_lines, refit

# Faint ink still belongs to a stroke: a pen lifting off the paper, not a second
# digit. Lower than trainer.styles.INK, which measures where the ink is solid.
_FAINT = 64
# Pen widths in pixels of the 28x28 image, around the 2.9 px that the drawing
# window's pen (0.14 of the digit's extent) comes to in MNIST's 20-pixel box.
PENS = (2.4, 3.6)


def redraw(image: np.ndarray, pen: float) -> np.ndarray:
    """A 28x28 digit's middle lines drawn with a round ``pen`` pixels wide, refitted to MNIST's box: 784 uint8."""
    # Within half an enlarged pixel of the local maximum: the exact maxima break up along diagonal strokes.
    _, ridge = middle_lines(image, _FAINT, slack=0.5)
    if not ridge.any():
        return np.asarray(image, dtype=np.uint8).reshape(-1)
    inked = ndimage.distance_transform_edt(~ridge) <= pen * SUPERSAMPLE / 2
    small = inked.reshape(SIDE, SUPERSAMPLE, SIDE, SUPERSAMPLE).mean(axis=(1, 3)) * 255
    return refit(np.rint(small).astype(np.uint8)).reshape(-1)


def redrawn_copies(images: np.ndarray, labels: np.ndarray, share: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``share`` of the digits redrawn, each with a pen width drawn from ``PENS``: (n, 784) uint8 and labels."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(labels), size=int(round(share * len(labels))), replace=False))
    copies = [redraw(images[i], rng.uniform(*PENS)) for i in chosen]
    return np.array(copies, dtype=np.uint8).reshape(len(chosen), SIDE * SIDE), labels[chosen]
