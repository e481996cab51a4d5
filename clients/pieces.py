"""Pieces of ink in a boolean picture, kept as runs: each row's stretches of ink (row, first column, end
column), the 8-connected pieces they join into, each piece's box, and runs painted back into a picture.

A single digit (preprocessing) and a number (numbers.atoms) find their ink's pieces here. Runs keep the
work proportional to the strokes' outlines, not to the picture's pixels, and every step is a whole-array
one: a phone photo's table grain makes thousands of runs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pieces(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected pieces (8-neighbours) of a boolean image: (runs, piece of each run).

    runs is an (n, 3) array of row, first column, end column of every
    horizontal run of ink, row by row. Pieces are numbered in the order of
    their first runs. The runs that touch from one row to the next are found
    by sorted search, and joined in whole-array steps: each pair's larger
    label takes the smaller, then every run follows its label's label to the
    piece's first run, until no touching runs differ.
    """
    edges = np.diff(np.pad(ink, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]
    # The runs of the row above that touch a run (diagonals included) are consecutive: from the first whose
    # end reaches its start to the last that starts by its end. Rows apart keep their keys apart.
    stride = ink.shape[1] + 2
    first = np.searchsorted(rows * stride + ends, (rows - 1) * stride + starts, "left")
    last = np.searchsorted(rows * stride + starts, (rows - 1) * stride + ends, "right")
    count = np.maximum(last - first, 0)
    below = np.repeat(np.arange(len(rows)), count)
    above = np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    label = np.arange(len(rows))
    while True:
        a, b = label[above], label[below]
        differ = a != b
        if not differ.any():
            break
        np.minimum.at(label, np.maximum(a[differ], b[differ]), np.minimum(a[differ], b[differ]))
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
    return np.stack([rows, starts, ends], axis=1), np.unique(label, return_inverse=True)[1]


def piece_boxes(runs: np.ndarray, piece: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each piece's box (top, left, bottom, right; exclusive), from its runs (pieces)."""
    box = np.zeros((int(piece.max()) + 1, 4), np.int64)
    box[:, :2] = shape
    np.minimum.at(box[:, 0], piece, runs[:, 0])
    np.minimum.at(box[:, 1], piece, runs[:, 1])
    np.maximum.at(box[:, 2], piece, runs[:, 0] + 1)
    np.maximum.at(box[:, 3], piece, runs[:, 2])
    return box


def runs_mask(runs: Sequence[tuple[int, int, int]] | np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Runs of ink (row, start, end) as a boolean image of the ``box`` (top, left, bottom, right) holding them.

    All painted at once: +1 where each run starts and -1 where it ends,
    summed along the row (runs of neighbouring slices may meet end to start).
    """
    top, left, bottom, right = box
    h, w = bottom - top, right - left
    rows, starts, ends = np.asarray(runs, np.int64).reshape(-1, 3).T
    at = (rows - top) * (w + 1) - left
    size = h * (w + 1)
    painted = np.bincount(at + starts, minlength=size) - np.bincount(at + ends, minlength=size)
    return np.cumsum(painted.reshape(h, w + 1), axis=1)[:, :-1] > 0
