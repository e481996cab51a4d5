"""Thinning digits to one-pixel skeletons (Zhang & Suen, 1984).

The trainer redraws training digits along their skeletons with an even pen
(trainer.styles), and the tests trace test digits' skeletons into mouse
strokes (tests.strokes): both thin with this.
"""

from __future__ import annotations

import numpy as np


def zhang_suen(ink: np.ndarray) -> np.ndarray:
    """Thin boolean images, (..., rows, cols), to one-pixel-wide 8-connected skeletons.

    Each pass removes, all at once, the boundary pixels whose removal keeps
    the shape connected (one 0->1 transition around them, 2-6 ink
    neighbours); the two sub-passes peel south-east and north-west sides. A
    stack of images is thinned together, until none of them changes.
    """
    ink = np.asarray(ink, dtype=bool)
    pad = [(0, 0)] * (ink.ndim - 2) + [(1, 1), (1, 1)]
    img = np.pad(ink, pad).astype(np.uint8)
    centre = img[..., 1:-1, 1:-1]
    while True:
        changed = False
        for sub in (0, 1):
            # Neighbours P2..P9, clockwise from north.
            p = [img[..., :-2, 1:-1], img[..., :-2, 2:], img[..., 1:-1, 2:], img[..., 2:, 2:],
                 img[..., 2:, 1:-1], img[..., 2:, :-2], img[..., 1:-1, :-2], img[..., :-2, :-2]]
            count = sum(q.astype(np.int16) for q in p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int16) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if sub == 0:
                side = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                side = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            remove = (centre == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & side
            if remove.any():
                centre[remove] = 0
                changed = True
        if not changed:
            return centre.astype(bool)
