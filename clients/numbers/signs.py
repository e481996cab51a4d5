"""The signs written with a number's digits: a decimal point or a comma (an
amount, a meter reading), a colon (a time) and a hyphen (a phone number, a
date) between two digits, a minus or a plus (a phone number's country code)
before the first (split_signs).
"""

from __future__ import annotations

import bisect
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from clients import preprocessing
from clients.numbers.atoms import Atom, Box, SHARED, SHORT, box_of, ink_area, joined_boxes, pen_width, x_overlap
from clients.numbers.number import MAX_MARKS
from clients.pieces import runs_mask


_MAX_SPECKS = 1000  # marks of a point's size a colon is looked for among (a grained photo has a few hundred)
# Signs: a decimal point or a comma (an amount, a meter reading) is a mark low between two digits,
_SIGN = 0.35  # at most this wide and tall (a comma twice as tall),
_SIGN_LEAST = 0.05  # at least this wide or tall (dust is smaller),
SIGN_DUST = 0.25  # with at least this much of the area that is dust beside the digits (DUST),
_SIGN_LOW = 0.55  # its top below this much of its neighbours' height,
_SIGN_NEAR = 1.0  # digits on both sides within this of it,
_SIGN_CLEAR = 0.3  # no other ink in its columns within this above or below it (a slanted digit's foot),
_SIGN_APART = 0.06  # or this close beside it (the end of a stroke broken off),
_SIGN_LIKE = 0.5  # and no mark at least this big beside it higher up (a colon).
_POINT_BELOW = 0.12  # A point reaches at most this below its neighbours' baseline
_ROUND = 1.6  # and is round: neither side longer than this times the other (a dash is a broken stroke's end);
_COMMA_BELOW = 0.5  # a comma reaches further, up to this, and is taller than wide;
_COMMA_UNDER = 0.15  # leaning, it may reach this far under the digit before it.
# A colon (a time, a ratio) is two round marks of a point's size (the smaller at least _SIGN_LIKE of the
# bigger), one above the other between two digits, the lower one not below the baseline (_POINT_BELOW),
_COLON = 1.0  # the two reaching at most this far from top to bottom,
_COLON_LEAN = 0.5  # their middles at most this much of the way down from one to the other aside (slanted writing),
_COLON_MIDDLES = (0.6, 0.5)  # the upper one's middle at most, the lower one's at least this far down the line.
# A minus is a bar before the first digit (within _SIGN_NEAR of it, nothing above or below it in the line),
# a hyphen the same bar between two digits,
_MINUS = (0.25, 1.0)  # as long as this,
_MINUS_FLAT = 2.0  # at least this many times as long as it is thick,
_MINUS_MIDDLE = (0.3, 0.75)  # its middle this far down the digit's height;
_TOUCHING = 0.06  # its ends may reach this far into the digits beside it (written close), and a plus's too.
# A plus stands as a minus does: a cross of a bar and an upright one (one or two pieces of a picture's ink,
# two strokes of a drawing),
_PLUS = (0.25, 1.0)  # its longer side this long,
_PLUS_SQUARE = 2.0  # at most this many times its shorter side,
_PLUS_SHORTER = 0.85  # at most this tall beside the digit after it (a digit before another is as tall),
_PLUS_ARMS = 0.8  # each bar (its fullest row or column, a pen either side) across this much of the cross,
_PLUS_CROSSING = (0.2, 0.8)  # crossing the other this far along it,
_PLUS_STRAY = 0.12  # with at most this much of the ink off both bars (a 4's other arm, a 7's top, a 9's loop).
# In a picture a sign's ink fills this much of its box at least (a dot, not a curl of grain; a comma
# leans across its box),
_FILLED = {".": 0.6, ",": 0.4, "-": 0.5, "+": 0.15}
SIGN_STRENGTH = 0.5  # is at least this dark beside the digits' ink (grain is faint)
_SIGN_PEN = 0.8  # and at least this wide or tall (a minus this thick) beside their strokes' width (grain is fine).


FoundSign = tuple[str, Box]  # a sign's character and its ink's box, in work coordinates (split_signs)


def split_signs(atoms: list[Atom], height: float, level: np.ndarray | None = None,
                 among: list[Atom] | None = None, meets: np.ndarray | None = None
                 ) -> tuple[list[Atom], list[FoundSign]]:
    """The atoms that are no sign; and the signs (points, commas, colons, hyphens, a minus or a plus), each with its
    character and box, found ``among`` these pieces of ink (default: the atoms). ``meets`` is
    ``which_meet(atoms)`` for a drawing's strokes (a picture's atoms never meet).

    A point or a comma stands between two digits (pieces of ink at least
    SHORT of the line height tall on either side, near), low on their line,
    small (_SIGN_LEAST to _SIGN of the line height), with no other ink in
    its columns near it: a digit's own small pieces (a 5's bar, the end of a
    broken stroke, the dots of a traced digit) lie within its width or high
    up. A comma reaches further below the baseline than a point, and may
    lean a little under the digit before it. A colon is
    two such marks, one above the middle of the line and one below it. A
    minus is a bar before the first digit, about halfway down it, and a
    hyphen the same bar between two digits; written close, its ends may
    reach a little into the digits beside it, and a drawn one's stroke may
    touch theirs. A plus stands as a minus does, a bar crossed by an upright
    one. In a picture (``level``) a sign is also filled, about as dark as the
    digits and at least about as wide (a minus as thick) as their pen: grain
    is faint, fine and curled.
    """
    if len(atoms) > MAX_MARKS:  # no number (refused by check_count): not searched
        return atoms, []
    boxes = [box_of([a]) for a in atoms] if meets is None else joined_boxes(atoms, meets)
    pieces = _tall(_stacked(boxes), height)
    if level is not None:
        ink = digits_ink(atoms, level, height)
        if ink is None:  # nothing to measure a picture's pen and ink by (a line's tallest piece is a digit)
            return atoms, []
        strength, pen = ink

    def inked(atom: Atom, char: str, pen_share: float = 1.0) -> bool:
        """Written as a sign is: in a picture, filled, dark, and no finer than ``pen_share`` of the pen."""
        return level is None or _inked_as_sign(atom, char, level, strength, pen * pen_share)

    def pieces_without(marks: Sequence[Atom]) -> list[Box]:
        """The digits' pieces as they stand without these marks: a drawn sign's stroke touching a digit's
        joins no digit's piece, and a picture's mark stacked into a digit's piece does not widen it (a comma
        a photo's perspective moved under the digit before it: "312,162" read "312162"), unless the digit
        needs it to stand (the bar of a faint 5 broken off its bowl: "0835518" read "0835-518")."""
        if meets is None:  # a picture's atoms never meet
            own = [box_of([m]) for m in marks]
            # A mark that reaches no edge of a piece it shares columns with widened none: the pieces stand.
            if not any(o[0] == p[0] or o[1] == p[1] or o[2] == p[2] or o[3] == p[3]
                       for o in own for p in pieces if x_overlap(o, p) > 0):
                return pieces
            without = _tall(_stacked([b for b in boxes if b not in own]), height)
            return without if len(without) == len(pieces) else pieces
        own = [k for k, a in enumerate(atoms) if any(a is m for m in marks)]
        if not meets[own].any():  # they meet no stroke: the pieces stand as they are
            return pieces
        rows = [k for k in range(len(atoms)) if k not in own]
        return _tall(_stacked(joined_boxes([atoms[k] for k in rows], meets[np.ix_(rows, rows)])), height)

    among = atoms if among is None else among
    signs, taken = [], set()
    for atom in among:
        char = _sign_char(atom, atoms, among, pieces_without([atom]), height, pen if level is not None else 0.0)
        if char and inked(atom, char):
            signs.append((char, box_of([atom])))
            taken.add(id(atom))
    for upper, lower in _colons(atoms, [m for m in among if id(m) not in taken], boxes, pieces, height):
        # Two dots alike say more than one: of a colon, the smaller may be as small as _colons lets it be.
        smaller, bigger = sorted((upper, lower), key=lambda m: max(m.width, m.height))
        if inked(bigger, ".") and inked(smaller, ".", _SIGN_LIKE):
            signs.append((":", box_of([upper, lower])))
            taken |= {id(upper), id(lower)}
    plus = _plus([m for m in among if id(m) not in taken], atoms, pieces_without, height)
    if plus and all(inked(m, "+") for m in plus):
        signs.append(("+", box_of(plus)))
        taken |= {id(m) for m in plus}
    return [a for a in atoms if id(a) not in taken], signs


def digits_ink(atoms: Sequence[Atom], level: np.ndarray, height: float,
                pen: bool = True) -> tuple[float, float] | None:
    """How dark a picture's digits are and how wide their pen (ink_strength, pen_width), from its atoms at least SHORT
    of the line ``height`` tall; None without one. The median digit's: a heavy digit beside light ones says
    little of the pen that wrote the rest. Without ``pen`` the pen is not measured (the dearer measure),
    and is 0: any pen is as wide."""
    digits = [a for a in atoms if a.height >= SHORT * height]
    if not digits:
        return None
    return (float(np.median([ink_strength(a, level) for a in digits])),
            float(np.median([pen_width(a) for a in digits])) if pen else 0.0)


def _tall(boxes: list[Box], height: float) -> list[Box]:
    """The boxes at least SHORT of the line ``height`` tall: a digit's."""
    return [b for b in boxes if b[3] - b[1] >= SHORT * height]


def _stacked(boxes: list[Box]) -> list[Box]:
    """The boxes joined where they share most of the narrower one's width: the pieces of a digit broken
    across (a faint 5's bar and bowl) make one."""
    joined: list[Box] = []
    for box in sorted(boxes):
        if joined and x_overlap(joined[-1], box) >= SHARED:
            last = joined.pop()
            box = (min(last[0], box[0]), min(last[1], box[1]), max(last[2], box[2]), max(last[3], box[3]))
        joined.append(box)
    return joined


def _sign_char(atom: Atom, atoms: Sequence[Atom], marks: Sequence[Atom],
               pieces: Sequence[Box], height: float, pen: float = 0.0) -> str | None:
    """".", "," or "-" if this atom's place and size are a point's, a comma's, a minus's or a hyphen's among the
    digits' ``atoms`` and ``pieces`` and the ``marks`` that may be one (split_signs), else None. ``pen`` is
    the width of a picture's digits' pen (split_signs), 0 for a drawing's strokes, drawn as they are."""
    # A bar's ends may touch the digits beside it (written close), and a comma lean under the digit before it.
    # So may a picture's point, written under the digit before it where none of that digit's ink stands above
    # it (_clear: under a 7's arm, a 3's or a 9's top), or moved under its box's edge by a photo's blur and
    # perspective: "7.3" photographed read "73". A drawing's dot there is most often a traced digit's own.
    # A picture's round mark may also reach a little into the box of the digit after it: a photo's blur and
    # perspective bring the two within a pixel ("19.35154" photographed read "1935154").
    tucked = atom.points is None and _round(atom)
    under = _COMMA_UNDER * height if tucked else 0.0  # how far its middle may stand under the digit before it
    if _bar(atom, height, pen):
        reach = (_TOUCHING * height, _TOUCHING * height)  # into the digits before and after it
    elif atom.height > atom.width or tucked:
        reach = (_COMMA_UNDER * height, _TOUCHING * height if tucked else 0.0)
    else:
        reach = (0.0, 0.0)
    middle = (atom.left + atom.right) / 2
    if any(b[0] < middle < b[2] - under for b in pieces):
        return None
    right = min((b for b in pieces if b[0] >= atom.right - reach[1]), key=lambda b: b[0], default=None)
    if not any(b[2] <= atom.left + reach[0] for b in pieces):  # before the first digit
        return "-" if right is not None and right[0] - atom.right <= _SIGN_NEAR * height \
            and _minus_like(atom, atoms, right, height, pen) else None
    line = _line_beside(box_of([atom]), atoms, pieces, height, reach, under)
    if line is None:
        return None
    if _minus_like(atom, atoms, right, height, pen):  # the same bar between two digits: a hyphen
        return "-"
    # A photo's blur widens a comma by about the pen: 13 pixels beside digits 35 tall ("496,22" photographed
    # read "49522"), and rounds its tail into its dot (_comma_shaped).
    if not _dot_sized(atom, height, 2 * _SIGN, wider=pen):
        return None
    top, base = line
    if atom.top < top + _SIGN_LOW * (base - top):
        return None
    # No ink just above or below it (a slanted digit's foot), and no mark like it higher up (a colon).
    if not _clear([atom], atoms, height):
        return None
    left, right = atom.left - _SIGN_APART * height, atom.right + _SIGN_APART * height
    size = max(atom.width, atom.height)
    if any(other is not atom and _SIGN_LIKE * size <= max(other.width, other.height) <= _SIGN * height
           and _ink_within(other, left, right, top, atom.top) for other in marks):
        return None
    below = atom.bottom - base
    if below <= _POINT_BELOW * height and max(atom.width, atom.height) <= _SIGN * height and _round(atom):
        return "."
    if below <= _COMMA_BELOW * height and _comma_shaped(atom):
        return ","
    return None


def _colons(atoms: Sequence[Atom], marks: Sequence[Atom], boxes: Sequence[Box], pieces: Sequence[Box],
            height: float) -> list[tuple[Atom, Atom]]:
    """The colons among these ``marks``: pairs of round marks of a point's size, one above the other between
    two digits (the digits' ``atoms``; ``boxes`` and ``pieces``, the boxes of their pieces as split_signs
    finds them, before and after stacking), as upper and lower mark."""
    dots = sorted((m for m in marks if _dot_sized(m, height, _SIGN) and _round(m)), key=lambda m: m.left + m.right)
    if len(dots) > _MAX_SPECKS:  # ink as speckled as a dusty page: no colon could be told from its specks
        return []
    doubled = [m.left + m.right for m in dots]  # twice their middles, in order
    aside = 2 * _COLON_LEAN * _COLON * height  # a colon's lower dot is at most this (doubled) aside
    colons: list[tuple[Atom, Atom]] = []
    for k, upper in enumerate(dots):
        for lower in dots[bisect.bisect_left(doubled, doubled[k] - aside):bisect.bisect_right(doubled, doubled[k] + aside)]:
            if lower.top <= upper.bottom or any(upper in pair or lower in pair for pair in colons):
                continue
            sizes = sorted((max(upper.width, upper.height), max(lower.width, lower.height)))
            across = abs((upper.left + upper.right) - (lower.left + lower.right)) / 2
            down = (lower.top + lower.bottom - upper.top - upper.bottom) / 2
            if lower.bottom - upper.top > _COLON * height or across > _COLON_LEAN * down \
                    or sizes[0] < _SIGN_LIKE * sizes[1]:
                continue
            # A drawing's two dots are pieces of their own: stacked, they would make one digit-tall piece.
            own = (box_of([upper]), box_of([lower]))
            beside = pieces if not any(b in own for b in boxes) else \
                [b for b in _stacked([b for b in boxes if b not in own]) if b[3] - b[1] >= SHORT * height]
            line = _line_beside(box_of([upper, lower]), atoms, beside, height)
            if line is None:
                continue
            top, base = line
            if top <= upper.top and (upper.top + upper.bottom) / 2 <= top + _COLON_MIDDLES[0] * (base - top) \
                    and (lower.top + lower.bottom) / 2 >= top + _COLON_MIDDLES[1] * (base - top) \
                    and lower.bottom - base <= _POINT_BELOW * height \
                    and _clear([upper, lower], [a for a in atoms if a is not upper and a is not lower], height):
                colons.append((upper, lower))
    return colons


def _dot_sized(atom: Atom, height: float, tallest: float, wider: float = 0.0) -> bool:
    """Is this atom of a sign's size: at least _SIGN_LEAST of the line ``height`` long, at most _SIGN of it
    (and ``wider`` pixels more) wide and ``tallest`` of it tall?"""
    return max(atom.width, atom.height) >= _SIGN_LEAST * height \
        and atom.width <= _SIGN * height + wider and atom.height <= tallest * height


def _comma_shaped(atom: Atom) -> bool:
    """Taller than wide, as a comma's tail makes it; in a picture, as tall as wide will do, give or take a
    pixel: a photo's blur rounds the tail into the dot ("5953874,9" photographed read "59538749"), and a
    mark reaching that far below the line is no point."""
    return atom.height + 1 >= atom.width if atom.points is None else atom.height > atom.width


def _round(atom: Atom) -> bool:
    """Neither side of its box longer than _ROUND times the other (a dash is a broken stroke's end), give or
    take a pixel: a picture's boxes are whole pixels, and a point's blurred ink in a photo can reach 5 by 3
    ("182,764.83" photographed read "182,76483")."""
    return max(atom.width, atom.height) <= _ROUND * min(atom.width, atom.height) + 1


def _line_beside(box: Box, atoms: Sequence[Atom], pieces: Sequence[Box], height: float,
                 reach: tuple[float, float] = (0.0, 0.0), under: float = 0.0) -> tuple[float, float] | None:
    """The top and the baseline of the digits' line where ``box`` stands between two digits' ``pieces``,
    each within _SIGN_NEAR of the line ``height`` and reaching at most ``reach`` into it (the one before, the
    one after); None if it stands elsewhere (in a digit's columns, but for ``under`` the right end of the
    one before, before the first digit or after the last)."""
    middle = (box[0] + box[2]) / 2
    before = [b for b in pieces if b[2] <= box[0] + reach[0]]
    after = [b for b in pieces if b[0] >= box[2] - reach[1]]
    if not before or not after or any(b[0] < middle < b[2] - under for b in pieces):
        return None
    left, right = max(before, key=lambda b: b[2]), min(after, key=lambda b: b[0])
    if box[0] - left[2] > _SIGN_NEAR * height or right[0] - box[2] > _SIGN_NEAR * height:
        return None
    lines = [_column_ink(b, atoms, box) for b in (left, right)]
    return (lines[0][1] + lines[1][1]) / 2, (lines[0][3] + lines[1][3]) / 2


def _column_ink(piece: Box, atoms: Sequence[Atom], mark: Box | None = None) -> Box:
    """The box of the atoms whose middles stand in this digit's ``piece``'s columns: where all its ink
    reaches (the bottom of a broken 3 is no piece of its own); but for those within a ``mark``'s box: a
    comma under the digit before it is none of that digit's ink."""
    return box_of([o for o in atoms if piece[0] <= (o.left + o.right) / 2 <= piece[2]
                   and not (mark is not None and mark[0] <= o.left and o.right <= mark[2]
                            and mark[1] <= o.top and o.bottom <= mark[3])])


def _clear(marks: Sequence[Atom], atoms: Sequence[Atom], height: float) -> bool:
    """No ink of ``atoms`` but the ``marks`` themselves in their columns within _SIGN_CLEAR of the line
    ``height`` above or below them, nor within _SIGN_APART of them beside: in a drawing, beside them and
    as far above or below.

    In a picture, only beside: the digit before a point written close ends
    above it and to its left (a 3's lower curve), and in a photo its blur
    leaves a pixel between them. Taken as ink over the point, it lost
    photographed amounts their points ("328,173.30" read "328,17330"). A
    drawing's strokes are as drawn, and a stroke there is most often the
    digit's own, broken off (a traced digit's, a quick stroke's): taken as a
    point beside it, one more of 420 drawn numbers of training digits gained
    a sign.
    """
    left, top, right, bottom = box_of(marks)
    clear, apart = _SIGN_CLEAR * height, _SIGN_APART * height
    aside = clear if any(m.points is not None for m in marks) else apart  # how far up or down "beside" reaches
    return not any(all(other is not m for m in marks)
                   and (_ink_within(other, left, right, top - clear, bottom + clear)
                        or _ink_within(other, left - apart, right + apart, top - aside, bottom + aside))
                   for other in atoms)


def _minus_like(atom: Atom, atoms: Sequence[Atom], first: Box, height: float, pen: float = 0.0) -> bool:
    """Is this atom, before the ``first`` digit's piece, a bar (_bar, a picture's of this ``pen``) about halfway
    down it with nothing above or below?"""
    if not _bar(atom, height, pen):
        return False
    _, line_top, _, base = _column_ink(first, atoms)
    return _stands_as_minus([atom], atoms, (line_top, base), _TOUCHING * height)


def _bar(atom: Atom, height: float, pen: float = 0.0) -> bool:
    """Is this atom shaped as a minus or a hyphen is: _MINUS of the line ``height`` long and _MINUS_FLAT as flat,
    half a picture's ``pen`` of its thickness not counted? A photo's blur thickens a bar by about that: a minus
    12 pixels by 7 beside digits of a pen 4.6 wide ("-58632" photographed read "+58632")."""
    return _MINUS[0] * height <= atom.width <= _MINUS[1] * height \
        and atom.width >= _MINUS_FLAT * (atom.height - pen / 2)


def _stands_as_minus(marks: Sequence[Atom], atoms: Sequence[Atom], line: tuple[float, float],
                     inset: float = 0.0) -> bool:
    """Do these marks stand as a minus does before a digit whose ink reaches over ``line`` (top, baseline):
    their middle about halfway down it (_MINUS_MIDDLE), and no other ink in their columns (but ``inset`` at
    either side) from its top to its baseline?"""
    left, top, right, bottom = box_of(marks)
    left, right = left + inset, right - inset
    line_top, base = line
    if not line_top + _MINUS_MIDDLE[0] * (base - line_top) <= (top + bottom) / 2 \
            <= line_top + _MINUS_MIDDLE[1] * (base - line_top):
        return False
    return not any(all(other is not m for m in marks) and _ink_within(other, left, right, line_top, base)
                   for other in atoms)


def _plus(marks: Sequence[Atom], atoms: Sequence[Atom], pieces_without: Callable[[Sequence[Atom]], list[Box]],
          height: float) -> list[Atom]:
    """The plus before the first digit among these ``marks``: one of them, or two whose boxes overlap (a
    drawing's two strokes, a picture's bars broken apart), with nothing but grain of the ``atoms`` before it
    (the digits' pieces as they stand without it: ``pieces_without``),
    standing as a minus does and crossed (_crossed); or []. Whether strokes meet is not asked: a quick
    stroke's points are too far apart to tell."""
    least = _PLUS_ARMS * _PLUS[0] * height  # a plus's bars are no shorter; grain is
    long = [m for m in marks if max(m.width, m.height) >= least]
    groups = [[m] for m in long] + [[a, b] for k, a in enumerate(long) for b in long[k + 1:]
                                    if a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom]
    for group in groups:
        left, top, right, bottom = box_of(group)
        if any(o.right <= left and max(o.width, o.height) >= least and all(o is not m for m in group) for o in atoms):
            continue
        longer, shorter = max(right - left, bottom - top), min(right - left, bottom - top)
        digit = min((b for b in pieces_without(group) if b[0] >= right - _TOUCHING * height), key=lambda b: b[0],
                    default=None)
        if not (_PLUS[0] * height <= longer <= _PLUS[1] * height and longer <= _PLUS_SQUARE * shorter
                and digit is not None and digit[0] - right <= _SIGN_NEAR * height):
            continue
        _, line_top, _, base = _column_ink(digit, atoms)
        # The ends of its bar may touch the digits beside it (a thick pen, a plus written close).
        if bottom - top <= _PLUS_SHORTER * (base - line_top) \
                and _stands_as_minus(group, atoms, (line_top, base), _TOUCHING * height) \
                and _crossed(*_ink_of(group)):
            return group
    return []


def _ink_of(marks: Sequence[Atom]) -> tuple[np.ndarray, float]:
    """The ink of a picture's pieces (their runs) or of a drawing's strokes (drawn at their pen) as a boolean
    image of their box, and the width of the pen, in pixels."""
    left, top, right, bottom = box_of(marks)
    if marks[0].points is None:
        ink = runs_mask([run for m in marks for run in m.parts], (int(top), int(left), int(bottom), int(right)))
        return ink, preprocessing.stroke_width(ink.astype(np.float32))
    image = Image.new("1", (int(np.ceil(right - left)) + 1, int(np.ceil(bottom - top)) + 1))
    draw = ImageDraw.Draw(image)
    for mark in marks:
        points = [(x - left, y - top) for x, y in mark.points.tolist()]
        draw.line(points, fill=1, width=max(1, round(2 * mark.reach)))
        for x, y in (points[0], points[-1]):  # a line's ends are square; a pen's are round
            draw.ellipse((x - mark.reach, y - mark.reach, x + mark.reach, y + mark.reach), fill=1)
    return np.asarray(image, bool), 2 * max(mark.reach for mark in marks)


def _crossed(ink: np.ndarray, pen: float) -> bool:
    """Is this ink a cross: a bar along its fullest row and an upright bar along its fullest column, each with a
    pen either side, reaching across _PLUS_ARMS of it and past the other bar on both sides, crossing within
    _PLUS_CROSSING of each other's length, and little ink (_PLUS_STRAY) off both? A minus a photo blurred into
    a blob two pens tall is all bars with no arm past them ("-58632" photographed read "+58632")."""
    height, width = ink.shape
    row, column = int(ink.sum(axis=1).argmax()), int(ink.sum(axis=0).argmax())
    reach = max(1, round(pen))
    rows, columns = slice(max(0, row - reach), row + reach + 1), slice(max(0, column - reach), column + reach + 1)
    bars = np.zeros_like(ink)
    bars[rows] = bars[:, columns] = True
    across, upright = ink[rows].any(axis=0), ink[:, columns].any(axis=1)  # the columns and rows each bar inks
    arms = upright[: rows.start].any() and upright[rows.stop :].any() \
        and across[: columns.start].any() and across[columns.stop :].any()
    low, high = _PLUS_CROSSING
    return bool(arms and min(across.mean(), upright.mean()) >= _PLUS_ARMS
                and low <= (row + 0.5) / height <= high and low <= (column + 0.5) / width <= high
                and ink[~bars].sum() <= _PLUS_STRAY * ink.sum())


def _ink_within(atom: Atom, left: float, right: float, top: float, bottom: float) -> bool:
    """Does any of this atom's ink (a picture's runs, a stroke's points and pen) lie inside the box?"""
    if atom.right <= left or atom.left >= right or atom.bottom <= top or atom.top >= bottom:
        return False
    if atom.points is None:
        return any(top <= r < bottom and s < right and left < e for r, s, e in atom.parts)
    x, y, reach = atom.points[:, 0], atom.points[:, 1], atom.reach
    return bool(((x + reach > left) & (x - reach < right) & (y + reach > top) & (y - reach < bottom)).any())


def _inked_as_sign(atom: Atom, char: str, level: np.ndarray, strength: float, pen: float) -> bool:
    """Is this piece of a picture's ink written as a point, a comma or a minus (``char``) is, beside digits of
    this ink ``strength`` and ``pen``: filled, dark, and no finer than the pen?"""
    return (ink_area(atom) >= _FILLED[char] * atom.width * atom.height
            and ink_strength(atom, level) >= SIGN_STRENGTH * strength
            and (atom.height if char == "-" else max(atom.width, atom.height)) >= _SIGN_PEN * pen)


def ink_strength(atom: Atom, level: np.ndarray) -> float:
    """How dark a picture atom's ink is: its strongest ink level."""
    return max(float(level[r, s:e].max()) for r, s, e in atom.parts)
