"""The ink's pieces as runs (clients/pieces.py), against scipy's own 8-connected labelling."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from clients.pieces import piece_boxes, pieces, runs_mask


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_pieces_are_the_8_connected_components_numbered_by_their_first_run(ink):
    runs, piece = pieces(ink)
    labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
    assert len(runs) == 0 if count == 0 else piece.max() + 1 == count
    painted = np.zeros(ink.shape, np.int64)
    for (row, start, end), p in zip(runs, piece):
        assert ink[row, start:end].all() and (start == 0 or not ink[row, start - 1])
        assert end == ink.shape[1] or not ink[row, end]
        painted[row, start:end] = p + 1
    assert np.array_equal(painted > 0, ink)
    # The same partition as scipy's: each of its labels is exactly one piece.
    for label in range(1, count + 1):
        assert len(np.unique(painted[labels == label])) == 1
    assert np.all(np.diff([np.flatnonzero(piece == p)[0] for p in range(count)]) > 0)
    if count:
        box = piece_boxes(runs, piece, ink.shape)
        for p in range(count):
            rows, cols = np.nonzero(painted == p + 1)
            assert tuple(box[p]) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
            assert np.array_equal(runs_mask(runs[piece == p], tuple(box[p])),
                                  (painted == p + 1)[box[p, 0] : box[p, 2], box[p, 1] : box[p, 3]])
