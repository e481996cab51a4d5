"""A ring or a box drawn round the writing (a circled answer, a boxed one, a number in an oval or on a
price tag) found and taken out of an ink map.

Read as ink, a ring round one digit is a 0 bigger than the digit, and round
a number it joins the digits it touches into one piece as wide as the
number; a box's straight sides go with the rules (clients/rules.py), but its
round corners or ends were read as 1s or 6s. A piece of ink is taken for a
frame when:

- other ink lies inside its box and inside its outline, weighing at least
  _INSIDE of the frame's own (a 0 or a 6 holds a speck at most); or, when no
  other ink lies inside its box at all (a single digit touching its ring is
  one piece with it), its own ink deeper than its outer band weighs that
  much, and the pen is thin beside the frame's size (_THIN_RING: a round 6
  or 8 is mostly written thicker), when the caller reads a single digit;
  a form's box round one digit, its outer edge four straight sides
  (_squared), needs no thin pen;
- its outer edge runs round nearly all the way (_ROUND of the directions from
  the box's middle), as far out as the ellipse the box holds at least
  (_NEAR): a hand's ring is seldom closed;
- most of its ink lies in its outer band (_BANDED), unless its sides are
  straight (a bold digit touching a box drawn with a fine pen outweighs it),
  and the band runs round as one line (_LOOP): a line under a number, joined
  to the digits standing on it, runs round much of its box too, with the
  digits' tops apart;
- nothing inside joined to it runs across it as an upright bar (_ACROSS): a
  form's row of boxes, one per digit, has edges between them, and is the
  rules' business. A digit touching its box can run across most of it, but
  is wider than an edge leaning as far as a box's side may (_LEAN).

Only the frame's outer band, one and a half of its strokes deep, is taken out
(with the fainter fringe along it): a digit touching the ring from inside
keeps its ink but where they meet. The frames go before the ruled lines: a
wide ring's top and bottom are straight enough to be taken for rules, and
what is left of it would be read as digits.
"""

from __future__ import annotations

import numpy as np

from clients.pieces import piece_boxes, pieces, runs_mask


_INSIDE = 0.2  # the ink inside weighs at least this share of the frame's own
_ROUND = 0.75  # the share of directions in which the frame's outer edge lies ...
_NEAR = 0.8  # ... at least this far out, in units of the box's ellipse
_INNER = 0.9  # the share of the ink inside the box that must be inside the outline too, where it runs
_BINS = 72  # directions round the box's middle
_LARGEST = 8  # the pieces with the largest boxes are the only candidates
_SMALLEST = 12  # pixels: a frame's box is at least this tall and wide
_BAND = 1.5  # the outer band taken out: this many strokes deep, plus a pixel
_BANDED = 0.5  # the share of a ring's own ink in its band at least
_LOOP = 0.95  # the share of the directions where the ring runs that its band's longest piece covers
_ACROSS = 0.7  # ink inside a frame and joined to it, across this share of its height: a box's edge
_FRINGE = 2  # pixels of fainter ink beyond the band on either side
_LEAN = np.tan(np.radians(16))  # a box's side is turned by at most this (a sheet photographed at an angle),
_CORNER = 0.15  # and away from its corners, this share of its length at each end,
_SIDE = 0.9  # its outer edge lies along one line for this share of its length at least,
_STRAIGHT = 2.0  # within half a stroke or this many pixels
_THIN_RING = 12  # the pen of a ring a digit touches is at most this many times thinner than its box is high


def without_frames(level: np.ndarray, ink: float, touching: bool = False) -> np.ndarray:
    """The ink map (0..1) with the rings and boxes drawn round its writing taken out: ``level`` itself when
    there are none, else a copy. Pieces are the ink of at least ``ink`` strength; ``touching``: a ring
    that a single digit touches, with nothing else inside, is looked for too (a number's round digits
    alone would look like one)."""
    runs, piece = pieces(level > ink)
    if not len(runs):
        return level
    boxes = piece_boxes(runs, piece, level.shape)
    mass = np.bincount(piece, weights=runs[:, 2] - runs[:, 1])
    heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    out = level
    for p in np.argsort(-(heights * widths), kind="stable")[:_LARGEST]:
        top, left, bottom, right = (int(v) for v in boxes[p])
        if bottom - top < _SMALLEST or right - left < _SMALLEST:
            continue
        inside = (boxes[:, 0] >= top) & (boxes[:, 1] >= left) & (boxes[:, 2] <= bottom) & (boxes[:, 3] <= right)
        inside[p] = False
        if (inside.any() or not touching) and mass[inside].sum() < _INSIDE * mass[p]:
            continue  # with nothing inside at all, a digit touching the ring may be one piece with it
        # The box and the fringe beyond it: the pen's fainter edge lies outside the piece.
        grown = (max(0, top - _FRINGE), max(0, left - _FRINGE), min(level.shape[0], bottom + _FRINGE),
                 min(level.shape[1], right + _FRINGE))
        # Straight sides cut by the map's edge may be a dark table's round a sheet (the outline of a
        # photo): no box.
        clear = top > 0 and left > 0 and bottom < level.shape[0] and right < level.shape[1]
        taken = _ring(runs_mask(runs[piece == p], grown), runs_mask(runs[inside[piece]], grown),
                      out[grown[0] : grown[2], grown[1] : grown[3]], ink, clear)
        if taken is not None:
            out = out.copy() if out is level else out
            out[grown[0] : grown[2], grown[1] : grown[3]][taken] = 0.0
    return out


def _ring(own: np.ndarray, held: np.ndarray, level: np.ndarray, ink: float, boxed: bool) -> np.ndarray | None:
    """The pixels of a frame's outer band and its fringe, in a window round its box; None when the piece
    (``own``) is no frame round the ink its box holds (``held``), or, when that is none, round its own ink
    deeper than the band (a digit touching the ring). ``boxed``: four straight sides may make it a box."""
    rows, columns = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
    low, high = np.array([rows[0], columns[0]]), np.array([rows[-1], columns[-1]])
    centre, half = (low + high) / 2, (high - low + 1) / 2

    def polar(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's distance out, in units of the box's ellipse, and its direction's bin."""
        y, x = (np.nonzero(mask) - centre[:, None]) / half[:, None]
        return np.hypot(y, x), ((np.arctan2(y, x) + np.pi) * (_BINS / (2 * np.pi))).astype(np.int64) % _BINS

    reach, bins = polar(own)
    outer = np.zeros(_BINS)
    np.maximum.at(outer, bins, reach)
    round_ = outer >= _NEAR
    if round_.mean() < _ROUND:
        return None
    touched = not held.any()
    if not touched:
        held_out, held_bins = polar(held)
        judged = round_[held_bins]  # where the ring is open, nothing says what is inside
        if not judged.any() or np.mean(held_out[judged] < outer[held_bins[judged]]) < _INNER:
            return None
    # Depth in pixels below the outer edge, across the ring: between the ellipses of the box at sizes r and
    # r + d, the gap across is d times this at each direction (along the ray, more where the ring is flat).
    angle = (np.arange(_BINS) + 0.5) * (2 * np.pi / _BINS) - np.pi
    unit = 1 / np.hypot(np.sin(angle) / half[0], np.cos(angle) / half[1])
    stroke = _stroke(own)
    squared = boxed and _squared(own, stroke)
    if touched and not squared and stroke * _THIN_RING > min(own.shape):
        return None
    band = _BAND * stroke + 1
    deep = np.zeros(own.shape)
    deep[np.nonzero(own)] = (outer[bins] - reach) * unit[bins]
    # A ring is mostly its band; digits touching it add a little. A line under the digits joined to them
    # runs round much of its box (its ends, the digits' tops), but most of that ink lies deep inside.
    banded = own & (deep <= band)
    if not squared and banded.sum() < _BANDED * own.sum():
        return None
    if touched and (own & ~banded).sum() < _INSIDE * banded.sum():
        return None  # a loop round nothing (a 0)
    # The band must run round as one line: a line under digits has their tops apart above it. (Measured
    # across an ellipse, the band of a box with round corners is thinner where the sides turn: twice as deep.)
    runs, piece = pieces(own & (deep <= 2 * band))
    longest = np.bincount(piece, weights=runs[:, 2] - runs[:, 1]).argmax()
    loop = runs_mask(runs[piece == longest], (0, 0) + own.shape)
    if np.mean(np.isin(np.arange(_BINS), bins[loop[np.nonzero(own)]]) | ~round_) < _LOOP:
        return None
    # A row of a form's boxes: edges between the digits run across from band to band (the rules' business).
    # In a squared piece holding other ink (a row of boxes round the digits), they run between the bands of
    # its top and bottom: the band, measured across the ellipse, is deeper towards the corners and cuts a
    # photographed edge short of the piece's height.
    across = 2 * (half[0] - band) if squared and not touched else own.shape[0]
    runs, piece = pieces(own & ~banded)
    if len(runs):
        boxes = piece_boxes(runs, piece, own.shape)
        tall = boxes[:, 2] - boxes[:, 0]
        if np.any((tall >= _ACROSS * across) & (boxes[:, 3] - boxes[:, 1] <= _LEAN * tall + 2 * stroke)):
            return None
    faint = own | ((level > 0) & (level <= ink))  # the frame and the ink too faint to be any piece's
    far, where = polar(faint)
    depth = (outer[where] - far) * unit[where]
    near = round_[where] & (depth >= -_FRINGE) & (depth <= band + _FRINGE * ~own[faint])
    taken = np.zeros_like(own)
    taken[np.nonzero(faint)] = near
    return taken


def _squared(own: np.ndarray, stroke: float) -> bool:
    """Whether a piece's outer edge runs along four straight sides, each turned by up to _LEAN: a form's box.
    Away from the corners, the first and the last ink of each column (and of each row) lie within
    half a stroke of one line, nearly all along.

    A turned box's top runs on past its corner's row, and so above part of
    its side, by its slope times its width: a wide row of boxes turned by a
    few degrees, by more rows than the corners' share. The sides are fitted
    along their middle, and where the top and bottom are straight, the sides
    are measured that much further from the corners (and the other way round).
    """
    sides = []
    for mask in (own, own.T):
        columns = np.flatnonzero(mask.any(axis=0))
        if len(columns) < 4:
            return False
        held = mask[:, columns]
        edges = (held.argmax(axis=0), len(held) - 1 - held[::-1].argmax(axis=0))
        middle = slice(len(columns) // 4, len(columns) - len(columns) // 4)
        fits = [np.polyfit(columns[middle], edge[middle], 1) for edge in edges]
        if any(abs(slope) > _LEAN for slope, _ in fits):
            return False
        sides.append((columns, edges, fits))

    def straight(columns: np.ndarray, edges: tuple, fits: list, beyond: float = 0.0) -> bool:
        trim = int(_CORNER * len(columns) + beyond)
        inner = slice(trim, len(columns) - trim)
        if len(columns[inner]) < 2:
            return False
        return all(np.mean(np.abs(slope * columns[inner] + offset - edge[inner]) <= max(_STRAIGHT, stroke / 2))
                   >= _SIDE for edge, (slope, offset) in zip(edges, fits))

    alone = [straight(*side) for side in sides]
    if all(alone):
        return True
    if not any(alone):
        return False
    (columns, _, fits), other = (sides[0], sides[1]) if alone[0] else (sides[1], sides[0])
    return straight(*other, beyond=max(abs(slope) for slope, _ in fits) * len(columns))


def _stroke(own: np.ndarray) -> float:
    """The stroke's width: the lower quartile of the lengths of the runs of ink across rows and columns
    (a ring's runs along its top and sides are longer)."""
    lengths = []
    for mask in (own, own.T):
        edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
        lengths.append(np.nonzero(edges == -1)[1] - np.nonzero(edges == 1)[1])
    return float(np.percentile(np.concatenate(lengths), 25))
