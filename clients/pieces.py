"""Pieces of ink in a boolean picture, kept as runs: each row's stretches of ink (row, first column, end
column), the 8-connected pieces they join into, each piece's box, and runs painted back into a picture.

A single digit (preprocessing) and a number (numbers.atoms) find their ink's pieces here. Runs keep the
work proportional to the strokes' outlines, not to the picture's pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pieces(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected pieces (8-neighbours) of a boolean image: (runs, piece of each run).

    runs is an (n, 3) array of row, first column, end column of every
    horizontal run of ink, row by row. Runs are joined row by row with a union-find, so
    the work grows with the number of runs, not of pixels. Pieces are numbered in the
    order of their first runs.
    """
    edges = np.diff(np.pad(ink, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_starts = np.searchsorted(rows, np.arange(ink.shape[0] + 1))
    for r in range(1, ink.shape[0]):
        above, here = range(row_starts[r - 1], row_starts[r]), range(row_starts[r], row_starts[r + 1])
        j = above.start
        for i in here:
            while j < above.stop and ends[j] < starts[i]:  # runs above ending before this one starts
                j += 1
            k = j
            while k < above.stop and starts[k] <= ends[i]:  # touching, diagonals included
                a, b = root(k), root(i)
                parent[max(a, b)] = min(a, b)  # a piece's root is its first run
                k += 1
    labels = np.array([root(i) for i in range(len(rows))], dtype=np.int64)
    return np.stack([rows, starts, ends], axis=1), np.unique(labels, return_inverse=True)[1]


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
