"""Ruled lines under or through the writing (a form's line to write on, a
notebook's rules, an underline, a form's boxes): found in a picture's ink map
and taken out of it before a digit, or a number's digits, are looked for
(without_rules; without_lines takes out a ring drawn round the writing too).

A rule touching a number's digits joins them all into one piece of ink as
wide as the number, which no cut reads back as its digits; one under a
digit becomes part of it. A rule is a straight band of ink, level or turned
a little (a photo's sheet), thin beside its length and longer than the
digits are tall (beside a single digit, reaching beyond it too); where a
digit's stroke crosses it, the ink runs on above or below the band and is
kept. The upright edges of boxes drawn on the rules (one box per digit, or a
comb's ticks between them) would be read as 1s, and go with them; so do
squared paper's upright lines, which cross the rules; and a single digit's
comb, shorter than any rule, once the digit is cropped (without_comb). Print
about as faint as the ink looked for breaks up into pieces: the rules found
say how strong it is, and everything is looked for again among pixels half
as strong. In a wide photo of small digits, their bars at one height line up
into a band like a rule, but broken between the digits and thick beside
their height: it stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from clients.frames import without_frames
from clients.pieces import pieces, runs_mask


_INK = 0.25  # pixels above this ink strength are ink (the faint fringe of a rule is taken out with it)
# Rules printed faint are looked for again among pixels this strong, of theirs (_faint_ink), and no fainter
# than _FAINTEST; the rules found first that say how faint are inked along _SOLID of their length at least
# and at most _PRINT pixels thick. A faint ring is looked for among pixels this strong, of the ink's
# threshold (without_lines).
_FAINT = 0.5
_FAINTEST = 0.1
_SOLID = 0.75
_PRINT = 3
_THIN = 0.02  # a rule is at most this thick, of the map's longer side (a crossing stroke is thicker)
_TURNS = np.tan(np.radians(np.arange(-6.0, 6.01, 0.5)))  # the slopes a rule is looked for at
# and a box's upright edge, then, when it may lean (Ruling.leaning), at these further among the ink left: a
# sheet photographed at an angle leans its upright lines further than it turns its rules (perspective).
_UPRIGHT_TURNS = np.tan(np.radians(np.concatenate([np.arange(-16.0, -6.49, 0.5), np.arange(6.5, 16.01, 0.5)])))
# A rule's fullest row holds at least _FLAT thin pixels, the rule is at least as many times as long as it is
# thick unless the caller says otherwise (Ruling.flat),
_FLAT = 25.0
_BARE = 0.5  # and bare (no digit on it) along this much of its length at least,
_BEYOND = 2  # and, beside a single digit, reaches this many pixels beyond it on both sides
_MOST_RULES = 120  # rules looked for in one picture (a page of squared paper shows a hundred)
_RING_INK = 0.5  # a ring the rules took pieces of is looked for again among pixels this strong (without_lines)
# A band within the writing's height, thicker than this of it and inked along less than _SOLID of its length,
# is the digits' strokes lined up (_lined_up).
_LINED_UP = 0.1


Writing = tuple[float, float, float, float, float]  # the digits' left and right ends, height, top and foot


@dataclass(frozen=True)
class Ruling:
    """What a rule is beside a caller's writing (without_rules).

    A digit's own bar, however thin its pen, is shorter than two digits are
    tall; a single digit's can be as long as it is tall, but ends at its
    other strokes (a 7's at the top of its stem): a number's rules are
    ``longer`` than two line heights, a single digit's reach ``beyond`` it.
    """

    longer: float  # a rule is at least this many times as long as the writing is tall,
    beyond: bool = False  # reaches beyond the writing on both sides (by _BEYOND pixels),
    flat: float = _FLAT  # is at least this many times as long as it is thick,
    ink: float = _INK  # and is looked for among the pixels of at least this ink strength;
    touching: bool = False  # a ring the writing touches may be one piece with it (a single digit's).
    # A box's upright edges may lean and be short where they meet its rules (_UPRIGHT_TURNS, _EDGE_REACH):
    # a number's form photographed at an angle. Not beside a single digit: its fine strokes would be taken
    # for edges, standing on its own bar taken for a rule.
    leaning: bool = False
    # With no rule found, they are looked for among pixels half as strong (_FAINT): a number's form printed so
    # thin that, photographed, it breaks up into pieces shorter than any rule. Not beside a single digit: its
    # ink is looked for fainter already, and at half of that a phone photo's grain lines up into thin bands.
    faint: bool = False


def without_lines(level: np.ndarray, writing: Callable[[np.ndarray], Writing | None], ruling: Ruling) -> np.ndarray:
    """The ink map without a ring drawn round the writing (frames.without_frames) and its ruled lines
    (without_rules). The ring goes first: its flat top and bottom would be taken for rules, and its ends
    read as digits. A thin ring photographed is blurred about as faint as the ink looked for and breaks
    up into arcs: it is looked for among pixels half as strong (_FAINT) too. A ring drawn across rules
    is one piece of ink with them, as wide as the page: it is looked for again once the rules running
    from side to side of the map are out (a ring's top never does), and once more after all rules (one
    crossing a line that ends inside the picture).

    Rules crossing a wide ring where it runs nearly level take pieces of it with them, and what is left
    is no ring. Drawn with a pen, the ring is darker than the print: among pixels of _RING_INK strength
    the rules are gone and the ring is whole, so it is looked for there too."""
    framed = without_frames(level, ruling.ink, ruling.touching)
    if framed is level:
        framed = without_frames(level, _FAINT * ruling.ink, ruling.touching)
    if framed is not level:
        cleaned = without_rules(framed, writing, ruling)
    else:
        paged, cleaned = _without_rules(level, writing, ruling, pages=(True, False))
        ringless = level if paged is level else without_frames(paged, ruling.ink, ruling.touching)
        if ringless is paged and paged is not level:
            dark = without_frames(level, _RING_INK, ruling.touching)
            ringless = paged if dark is level else dark
        if ringless is not paged:
            framed = ringless
            cleaned = without_rules(framed, writing, ruling)
    # Not a ring a digit touches, this late: what the rules leave of a round digit standing on them looks like one.
    return cleaned if cleaned is framed else without_frames(cleaned, ruling.ink)


def without_rules(level: np.ndarray, writing: Callable[[np.ndarray], Writing | None], ruling: Ruling) -> np.ndarray:
    """The ink map (0..1) with its ruled lines taken out: ``level`` itself when it has none, else a copy with
    the rules' ink and its fringe at 0.

    ``writing`` finds the digits in a mask of ink (None without any), once
    every straight band is out of it; ``ruling`` says which bands are rules
    beside them.
    """
    return _without_rules(level, writing, ruling, pages=(False,))[0]


def _without_rules(level: np.ndarray, writing: Callable[[np.ndarray], Writing | None], ruling: Ruling,
                   pages: tuple[bool, ...]) -> list[np.ndarray]:
    """without_rules, once for each of ``pages``: with its rules as ``ruling`` says (False), or only those
    running from one side of the map to the other (True). The bands are found once for all."""
    ink = ruling.ink
    mask, runs, found = _bands(level, ink, ruling.flat)
    if not found and ruling.faint:
        # Among pixels half as strong, a table's grain lines up into bands too, thicker than print.
        ink = _FAINT * ruling.ink
        mask, runs, found = _bands(level, ink, ruling.flat)
        if not any(_thin(rule, runs) for rule in found):
            found = []
    elif found and (faint := _faint_ink(level, mask, runs, found)) < ink:
        ink = faint
        mask, runs, found = _bands(level, ink, ruling.flat)
    if not found:
        return [level] * len(pages)
    return _taken_out(level, mask, runs, found, ink, writing, ruling, pages)


def _bands(level: np.ndarray, ink: float, flat: float) -> tuple[np.ndarray, np.ndarray, list[Rule]]:
    """The pixels of the ink map stronger than ``ink``, their _vertical_runs, and the rules among them."""
    mask = level > ink
    runs = _vertical_runs(mask)
    return mask, runs, _rules(mask, runs, flat)


def _taken_out(level: np.ndarray, mask: np.ndarray, runs: np.ndarray, found: list[Rule], ink: float,
               writing: Callable[[np.ndarray], Writing | None], ruling: Ruling,
               pages: tuple[bool, ...]) -> list[np.ndarray]:
    """_without_rules once the bands are ``found`` in ``mask`` (pixels stronger than ``ink``; ``runs``:
    _vertical_runs(mask)). The digits are measured with every band out; bands that turn out to be their
    own strokes lined up (_lined_up) are no rules, and everything is worked out again without them (the
    upright strokes between such a band and a rule were a grid's lines)."""
    cleaned = _erased(level, runs, found)
    # A form's boxes: their upright edges stand on their sides and would be read as 1s. They are taller
    # than the digits, so the edges running from side to side (or from a corner) are out before the digits
    # are measured; a comb's ticks, shorter than the digits, once they are. Edges are looked for only near
    # where a long upright run meets a rule: a photo's table grain beside a rule cost more than the rules.
    near = _near_edges(runs, found, level.shape[1], ruling.leaning)
    bars, across = [], None
    if near.any():
        upright = (cleaned > ink).T
        across = _vertical_runs(upright)  # the runs of ink along each row, in the turned map
        looked = upright & near[:, None]
        bars = _rules(looked, across, _EDGE_FLAT, _EDGE_FEWEST, joined=False, bare=_UPRIGHT_BARE)
        if ruling.leaning:  # then leaning further, among the ink left: upright ones keep theirs (a comb's tick)
            looked &= ~_inside(looked.shape, bars)
            bars += _rules(looked, across, _EDGE_FLAT, _EDGE_FEWEST, joined=False, bare=_UPRIGHT_BARE,
                           turns=_UPRIGHT_TURNS)
        # Printed with the rules, not a pen's stroke (a 1, the side of a digit's loop between two rules): as
        # thin as the rules it stands on, or, on none, as the thickest (a photo's sheet edge is a band too,
        # thicker than any print, and beside it digits' strokes standing on an underline passed for print).
        thick = [_across(rule, runs) for rule in found]

        def printed(bar: Rule) -> bool:
            on = [k for k, _ in filter(None, (_under(bar, end, found) for end in (0, -1)))]
            return _across(bar, across) <= max(thick[k] for k in on or range(len(found))) + 1

        bars = [bar for bar in bars if printed(bar)]
    edges, sides, _ = _edges(bars, found, mask)
    # Squared paper's upright lines cross the rules and run on above and below the digits. Until the digits
    # are measured, the lines hide them (every digit crosses one): all are out, then those ending where the
    # writing does come back (1s as thin as the print).
    lines = _grid([bar for bar in bars if all(bar is not edge for edge in edges)], found)
    boxed = _erased_upright(cleaned, across, edges + [bar for line in lines for bar in line])
    digits = writing(boxed > _INK)
    h = level.shape[0]
    if digits is None and lines:
        if all(line[0][0] <= _CORNER and line[-1][1] >= h - _CORNER for line in lines):
            return [boxed] * len(pages)  # squared paper with nothing written on it
        # The digits are among the lines (1s as thin as they are): measured with them.
        boxed = _erased_upright(cleaned, across, edges)
        digits = writing(boxed > _INK)
    if digits is None:  # nothing but rules
        return [boxed] * len(pages)
    left, right, height, top, foot = digits
    rules = [rule for rule in found if not _lined_up(rule, mask, top, foot, height)]
    if len(rules) < len(found):
        return _taken_out(level, mask, runs, rules, ink, writing, ruling, pages) if rules else [level] * len(pages)
    beyond = max(_BEYOND, _GRID_BEYOND * height)
    lines = [line for line in lines if line[0][0] <= max(top - beyond, _CORNER)
             and line[-1][1] >= min(foot + beyond, h - _CORNER)]

    def taken_out(page: bool) -> np.ndarray:
        if page:
            kept = [rule for rule in found if rule[0] <= _CORNER and rule[1] >= level.shape[1] - _CORNER]
        else:  # a box's side is no digit's bar, however short: edges stand on it
            kept = [rule for k, rule in enumerate(found) if k in sides or (
                    rule[1] - rule[0] >= ruling.longer * height
                    and (not ruling.beyond or rule[0] <= left - _BEYOND and rule[1] >= right + _BEYOND))]
        if not kept:
            return level
        edges, _, missing = _edges(bars, kept, mask, height)
        erased = _erased(level, runs, kept + missing) if len(kept) < len(found) or missing else cleaned
        return _erased_upright(erased, across, edges + [bar for line in lines for bar in line])

    return [taken_out(page) for page in pages]


_EDGE_FLAT = 5.0  # a box's upright edge is at least this many times as tall as it is thick
_EDGE_FEWEST = 12  # and holds at least this many thin pixels
# and where it meets the rule, its ink runs on from the rule's band as far (down or up one column), or
# when it may lean (Ruling.leaning), this far: photographed, it is blurred there and leans.
_EDGE_REACH = 4
# Bars standing on one rule at least this many, their other ends in line, are a box's edges: its other
# side is too faint or too broken up to be found as a rule (a form's thin print, photographed).
_IN_LINE = 3
_CORNER = 3  # an edge ends this close to its side (where a turned edge meets it, the side's erasing took a few rows)
_TICK = 0.6  # a comb's tick is at most this tall, of the digits' height
_CROWDED = 0.6  # a bar nearer both its neighbours than this, of the edges' median spacing,
_PEN = 1.25  # and this many times as thick as the edges, is a 1 in a box
_SIDE_INKED = 0.8  # a box's side not found as a rule is ink along this much of it at least
# An upright bar is bare along this much of it at least: a grid's line running along a 1 or through a
# digit's loops is hidden by it over more of its length than a rule may be.
_UPRIGHT_BARE = 0.3
_GRID_BEYOND = 0.15  # a line of squared paper reaches this much beyond the digits' height above and below them


def _near_edges(runs: np.ndarray, rules: list[Rule], width: int, leaning: bool) -> np.ndarray:
    """The columns an upright edge standing on one of the rules can lie in: where a run of ink down a
    column (``runs``, _vertical_runs) at least _EDGE_FEWEST long reaches the rule's band, and as far to
    either side as the longest such run leans when turned as far as a rule may be (_TURNS). An edge that
    may be ``leaning`` (Ruling.leaning) needs a run of _EDGE_REACH only (a long edge leaning further than
    the spread leaves these columns part of the way, and is found as far as it is near)."""
    h = runs.shape[0]
    reach = _EDGE_REACH if leaning else _EDGE_FEWEST
    near = np.zeros(width, bool)
    longest = 0
    for left, right, tops, bottoms in rules:
        columns = np.arange(left, right)
        window = tops[None, :] - _CORNER + np.arange(int(bottoms[0] - tops[0]) + 2 * _CORNER)[:, None]
        reaching = np.where((window >= 0) & (window < h), runs[np.clip(window, 0, h - 1), columns], 0).max(axis=0)
        near[columns[reaching >= reach]] = True
        longest = max(longest, int(reaching.max()))
    spread = _CORNER + int(np.ceil(abs(_TURNS[0]) * longest))
    # "full", then the middle: "same" would give the kernel's length when it is longer than the map is wide.
    return np.convolve(near, np.ones(2 * spread + 1))[spread : spread + width] > 0


def _edges(bars: list[Rule], rules: list[Rule], mask: np.ndarray,
           height: float | None = None) -> tuple[list[Rule], set[int], list[Rule]]:
    """Of the upright bars, the edges of boxes drawn on the rules, the rules they stand on (their places
    in ``rules``), and the boxes' sides that were not found among the rules. An edge runs from one rule to
    another, or from a corner of one: the box's other side, where a digit lies along it, was no rule, and
    runs between the edges' other ends (and is ink in ``mask``: a comb's two end ticks have none between
    their tips). With the digits' ``height``, a comb's tick, shorter than the digits, stands on one rule.
    Edges come at least two to a box (a digit's upright stroke ending on two notebook rules is one alone).
    Bars standing on one rule whose other ends are in line, _IN_LINE of them at least, are a box's edges
    too, its other side through those ends.
    """
    families: dict[tuple[int, ...], list[Rule]] = {}
    standing: dict[tuple[int, ...], list[tuple[Rule, int]]] = {}  # on one rule, not at a corner: (bar, other end)
    far: dict[int, int] = {}  # of a bar standing on one rule at a corner or in line (by id), its other end
    for bar in bars:
        on = [_under(bar, end, rules) for end in (0, -1)]
        ends = tuple(k for k, _ in filter(None, on))
        corner = [end for end, found in zip((-1, 0), on) if found and found[1]]
        if len(ends) == 2 or ends and (corner or height is not None and bar[1] - bar[0] <= _TICK * height):
            families.setdefault(ends, []).append(bar)
            if len(ends) == 1 and corner:
                far[id(bar)] = corner[0]
        elif ends:
            standing.setdefault(ends, []).append((bar, 0 if on[-1] else -1))
    for ends, group in standing.items():
        if len(group) >= _IN_LINE and _in_line([_end(bar, end) for bar, end in group]):
            families.setdefault(ends, []).extend(bar for bar, _ in group)
            far.update((id(bar), end) for bar, end in group)
    families = {ends: _spaced(family) for ends, family in families.items() if len(family) >= 2}
    missing = [_side(rules[ends[0]], family, [far[id(bar)] for bar in family]) for ends, family in families.items()
               if all(id(bar) in far for bar in family)]
    missing = [side for side in (_within(side, mask.shape[1]) for side in missing)
               if side is not None and _inked(mask, side) >= _SIDE_INKED]
    return [bar for family in families.values() for bar in family], {k for ends in families for k in ends}, missing


def _inside(shape: tuple[int, int], bands: list[Rule]) -> np.ndarray:
    """Where these bands lie, in a map of this shape."""
    inside = np.zeros(shape, bool)
    for left, right, tops, bottoms in bands:
        for column, top, bottom in zip(range(left, right), tops, bottoms):
            inside[max(top, 0) : max(bottom, 0), column] = True
    return inside


def _end(bar: Rule, end: int) -> tuple[float, int]:
    """Where an upright bar's first (0) or last (-1) row is: its middle column there, and the row."""
    return (int(bar[2][end]) + int(bar[3][end])) / 2, bar[0] if end == 0 else bar[1] - 1


def _in_line(points: list[tuple[float, int]]) -> bool:
    """Do these points (column, row) lie within _CORNER rows of one straight line?"""
    columns, rows = np.array(points, float).T
    return bool(np.abs(np.polyval(np.polyfit(columns, rows, 1), columns) - rows).max() <= _CORNER)


def _within(band: Rule, width: int) -> Rule | None:
    """The part of a band within a map this many columns wide (a box's side drawn between leaning edges
    can run past it); None if none is."""
    left, right, tops, bottoms = band
    first, last = max(left, 0), min(right, width)
    if last <= first:
        return None
    return first, last, tops[first - left : last - left], bottoms[first - left : last - left]


def _grid(bars: list[Rule], rules: list[Rule]) -> list[list[Rule]]:
    """Of the upright bars, the lines of squared paper, each as its bars in line one below the other (a
    digit's stroke crossing a line can break it up): lying across two of the rules at least (a box's edge
    ends on them); none unless there are two such lines."""
    lines: list[list[Rule]] = []
    for bar in sorted(bars, key=lambda bar: bar[0]):
        below = [line for line in lines if line[-1][1] - _CORNER <= bar[0]
                 and abs(int(line[-1][2][-1]) - int(bar[2][0])) <= _CORNER]
        if below:
            below[0].append(bar)
        else:
            lines.append([bar])
    crossing = [line for line in lines if sum(any(_lies_across(bar, rule) for bar in line) for rule in rules) >= 2]
    return crossing if len(crossing) >= 2 else []


def _lies_across(bar: Rule, rule: Rule) -> bool:
    """Does the upright bar run from above the rule (or from it) to below it (or to it), where it meets it."""
    middle = int(bar[2][len(bar[2]) // 2] + bar[3][len(bar[3]) // 2]) // 2
    return rule[0] <= middle < rule[1] and bar[0] - _CORNER <= rule[2][middle - rule[0]] \
        and rule[3][middle - rule[0]] <= bar[1] + _CORNER


def _faint_ink(level: np.ndarray, mask: np.ndarray, runs: np.ndarray, rules: list[Rule]) -> float:
    """The ink strength to look for the rules again at: half as strong as the printed rules found among
    ``mask``'s pixels (``runs``: _vertical_runs(mask)); 1.0 (not again) when none is printed.

    Rules printed faint (squared paper; a form's thin print, photographed)
    are about as strong as the threshold, and break up where they are a
    little fainter: a grid's lines are found in part, a box's upright edges
    not at all. A photo's grain lines up into bands too, but with gaps, and
    thicker than print; below the threshold it makes more of them.
    """
    h = level.shape[0]
    strengths = []
    for rule in rules:
        if not _thin(rule, runs) or _inked(mask, rule) < _SOLID:
            continue
        left, right, tops, bottoms = rule
        rows = tops[None, :] + np.arange(int(bottoms[0] - tops[0]))[:, None]
        inside = (rows >= 0) & (rows < h)
        strongest = np.where(inside, level[np.clip(rows, 0, h - 1), np.arange(left, right)], 0).max(axis=0)
        strengths.append(float(np.median(strongest)))
    return max(_FAINTEST, _FAINT * float(np.median(strengths))) if strengths else 1.0


def _thin(rule: Rule, runs: np.ndarray) -> bool:
    """Is the rule as thin as print, at most _PRINT pixels (``runs``: _vertical_runs of its map)?"""
    return max(int(rule[3][0] - rule[2][0]), _across(rule, runs)) <= _PRINT


def _across(band: Rule, runs: np.ndarray) -> float:
    """How thick the band's ink is across it: the lower quartile of the lengths of the runs of ink (``runs``,
    _vertical_runs of the map the band was found in) through its middle, where there is ink. A line's
    lengths where it runs through digits are theirs, and it is bare along a third of its length at least."""
    left, right, tops, bottoms = band
    rows, columns = (tops + bottoms - 1) // 2, np.arange(left, right)
    inside = (rows >= 0) & (rows < runs.shape[0])  # a turned band can leave the map at its ends
    lengths = runs[rows[inside], columns[inside]]
    return float(np.percentile(lengths[lengths > 0], 25)) if (lengths > 0).any() else 0.0


def _spaced(edges: list[Rule]) -> list[Rule]:
    """The edges without the 1s standing inside a box from side to side: nearer both neighbours than
    _CROWDED of the edges' typical spacing, and written with a pen thicker than the printed edges."""
    if len(edges) < 3:
        return edges
    edges = sorted(edges, key=lambda bar: float(bar[2].mean()))
    gaps = np.diff([float(bar[2].mean()) for bar in edges])
    thick = np.array([int(bar[3][0] - bar[2][0]) for bar in edges])
    crowded = _CROWDED * float(np.median(gaps))
    inside = np.zeros(len(edges), bool)
    inside[1:-1] = (gaps[:-1] < crowded) & (gaps[1:] < crowded) & (thick[1:-1] > _PEN * np.median(thick))
    return [bar for bar, within in zip(edges, inside) if not within]


def _lined_up(band: Rule, mask: np.ndarray, top: float, foot: float, height: float) -> bool:
    """Is the band the digits' own strokes lined up, not a rule: their bars and the bottoms of their loops,
    at one height along a number of small digits in a wide photo, where a rule may be as thick as a good
    part of their height (_THIN of the map's side)? Such a band lies within the writing's height, is
    thicker than _LINED_UP of it, and has gaps between the digits (inked along less than _SOLID of its
    length). A rule through the writing is thin print (a notebook's), one as thick runs under it."""
    return (int(band[2].min()) >= top and int(band[3].max()) <= foot
            and int(band[3][0] - band[2][0]) > _LINED_UP * height and _inked(mask, band) < _SOLID)


def _inked(mask: np.ndarray, band: Rule) -> float:
    """The share of the band's columns with ink in it (or a row either side)."""
    left, right, tops, bottoms = band
    h = mask.shape[0]
    rows = tops[None, :] - 1 + np.arange(int(bottoms[0] - tops[0]) + 2)[:, None]
    inside = (rows >= 0) & (rows < h)
    return float((mask[np.clip(rows, 0, h - 1), np.arange(left, right)] & inside).any(axis=0).mean())


def _side(side: Rule, edges: list[Rule], ends: list[int]) -> Rule:
    """The box's side across from ``side``, a line as thick between the edges' far ends (0: first row)."""
    points = sorted((int(edge[2][end] + edge[3][end]) // 2, edge[0] if end == 0 else edge[1] - 1)
                    for edge, end in zip(edges, ends))
    (left, top), (right, bottom) = points[0], points[-1]
    thick = int(side[3][0] - side[2][0])
    columns = np.arange(left, right + 1)
    rows = np.rint(top + (bottom - top) * (columns - left) / max(1, right - left)).astype(np.int64) - thick // 2
    return left, right + 1, rows, rows + thick


def _erased_upright(level: np.ndarray, across: np.ndarray | None, bars: list[Rule]) -> np.ndarray:
    """``level`` without these upright bars (_erased in the turned map; ``across``: its rows' runs of ink)."""
    return _erased(level.T, across, bars).T if bars else level


def _under(bar: Rule, end: int, rules: list[Rule]) -> tuple[int, bool] | None:
    """The rule the upright bar's first (0) or last (-1) row lies on, within _CORNER rows (its place in
    ``rules``), and whether the bar stands at one of its ends (a corner, which may be a little beyond the
    end); None for none."""
    row = bar[0] if end == 0 else bar[1] - 1
    first, last = int(bar[2][end]), int(bar[3][end]) - 1  # the bar's columns there
    middle, reach = (first + last) // 2, last - first + 2
    for k, (left, right, tops, bottoms) in enumerate(rules):
        column = min(max(middle, left), right - 1)
        if abs(column - middle) <= reach and tops[column - left] - _CORNER <= row < bottoms[column - left] + _CORNER:
            return k, min(abs(middle - left), abs(middle - right + 1)) <= reach
    return None


Rule = tuple[int, int, np.ndarray, np.ndarray]  # first and last column + 1, and per column its rows (top, bottom)


def _rules(mask: np.ndarray, runs: np.ndarray, flat: float, fewest: float = _FLAT, joined: bool = True,
           bare: float = _BARE, turns: np.ndarray = _TURNS) -> list[Rule]:
    """The straight thin bands of ink long enough to be rules, at least ``flat`` times as long as thick (the
    fullest band of any slope first): their columns, and the rows they cover at each column. ``runs`` is
    _vertical_runs(mask); a band's fullest row holds at least ``fewest`` thin pixels, and it is thin along
    ``bare`` of its length at least (digits on it are not). ``joined``: a band's long stretches are one rule
    (digits standing on it break it up), else only its fullest stretch is looked at (a box's edge in line
    with the next box's). ``turns``: the slopes looked at."""
    h, w = mask.shape
    thin_most = max(3, round(_THIN * max(h, w)))
    ys, xs = np.nonzero(mask & (runs <= thin_most))
    rules: list[Rule] = []
    # Sheared by each slope, a rule's thin pixels pile up in one row: the fullest row of any slope.
    stride = h + 2 * w + 1
    rows = ys[None, :] - np.rint(np.outer(turns, xs)).astype(np.int64) + w
    cells = rows + stride * np.arange(len(turns))[:, None]
    counts = np.bincount(cells.ravel(), minlength=stride * len(turns))
    left_in = np.ones(len(xs), bool)
    while len(rules) < _MOST_RULES:
        turn, row = divmod(int(np.argmax(counts)), stride)
        if counts[turn * stride + row] < fewest:
            break
        # The band: the rows next to the fullest that are at least half as full, no thicker than thin_most.
        line = counts[turn * stride : (turn + 1) * stride]
        top = bottom = row
        while top - 1 >= 0 and bottom - top + 1 < thin_most and line[top - 1] * 2 >= line[row]:
            top -= 1
        while bottom + 1 < len(line) and bottom - top + 1 < thin_most and line[bottom + 1] * 2 >= line[row]:
            bottom += 1
        inside = left_in & (rows[turn] >= top - 1) & (rows[turn] <= bottom + 1)
        thick = bottom - top + 1
        shift = np.rint(turns[turn] * np.arange(w)).astype(np.int64) - w
        # A row either side: the slopes are looked at in steps, and a thin rule drifts off its band by a row
        # towards the ends of a long one.
        band = np.arange(top - 1, bottom + 2)[:, None] + shift[None, :]
        # Digits standing on the rule or crossing it hide it: any ink in the band continues it. Inside a
        # digit's loop the paper looks darker, and a faint rule can fade there: its long stretches are one.
        inked = (mask[np.clip(band, 0, h - 1), np.arange(w)] & (band >= 0) & (band < h)).any(axis=0)
        stretches = _stretches(np.flatnonzero(inked), bridge=thin_most)
        long = [(a, b) for a, b in stretches if b - a >= flat * thick]
        if not joined:  # the fullest stretch alone: the band's line runs on past others (a box's next edge)
            held = [int(((xs[inside] >= a) & (xs[inside] < b)).sum()) for a, b in stretches]
            fullest = stretches[int(np.argmax(held))] if any(held) else (0, w)
            long = [fullest] if fullest in long else []
        if long:
            thin = np.zeros(w, bool)
            thin[xs[inside]] = True
            span = _bare_span(long, thin, bare)
            if span is not None:
                left, right = span
                rules.append((left, right, top + shift[left:right], bottom + 1 + shift[left:right]))
        if not joined:  # the stretch's pixels are looked at once (or all the band's, when it has none)
            spanned = inside & (xs >= fullest[0]) & (xs < fullest[1])
            inside = spanned if spanned.any() else inside
        # The band's pixels are looked at once, as a rule or as none.
        left_in &= ~inside
        counts -= np.bincount(cells[:, inside].ravel(), minlength=len(counts))
    return rules


def _erased(level: np.ndarray, runs: np.ndarray, rules: list[Rule]) -> np.ndarray:
    """A copy of ``level`` without the rules: in each rule's columns, the thin runs of ink down the column
    (``runs``, _vertical_runs of its ink) that reach its band (a row either side, for a band a row off the
    rule) and the faint fringe next to them go to 0, unless a thicker run reaches it there (a stroke crossing
    the rule or standing on it)."""
    cleaned = level.copy()
    h = level.shape[0]
    for left, right, tops, bottoms in rules:
        columns = np.arange(left, right)
        most = int(bottoms[0] - tops[0]) + 2
        # The window: the band and a row either side; the erased rows: the inked ones and a row either side.
        window = tops[None, :] - 1 + np.arange(most)[:, None]
        reach = np.where((window >= 0) & (window < h), runs[np.clip(window, 0, h - 1), columns], 0)
        inked = reach > 0
        bare = inked.any(axis=0) & (reach.max(axis=0) <= most)  # no stroke crosses the rule or stands on it
        first = np.argmax(inked, axis=0)
        last = most - 1 - np.argmax(inked[::-1], axis=0)
        rows = tops[None, :] - 2 + np.arange(most + 2)[:, None]
        offset = np.arange(most + 2)[:, None] - 1  # a row's place in the window
        erase = bare & (offset >= first - 1) & (offset <= last + 1) & (rows >= 0) & (rows < h)
        cleaned[rows[erase], np.broadcast_to(columns, rows.shape)[erase]] = 0.0
    return cleaned


def _bare_span(long: list[tuple[int, int]], thin: np.ndarray, bare: float) -> tuple[int, int] | None:
    """Where a band's rule runs, of its ``long`` stretches (left to right): all of them when it is ``thin``
    along ``bare`` of that length at least; else the stretch with the most thin columns, joined to its
    neighbours one by one while that holds; None when even that stretch is not.

    A photo's table grain lines up into stretches of the band far beside
    a form's rules, with the table between: taken with them, the rule was
    bare along too little of its length and was no rule, and the boxes'
    edges were read as 1s.
    """
    def holds(left: int, right: int) -> bool:
        return bool(thin[left:right].mean() >= bare)

    if holds(long[0][0], long[-1][1]):
        return long[0][0], long[-1][1]
    first = last = int(np.argmax([thin[a:b].sum() for a, b in long]))
    if not holds(*long[first]):
        return None
    while True:
        if first > 0 and holds(long[first - 1][0], long[last][1]):
            first -= 1
        elif last < len(long) - 1 and holds(long[first][0], long[last + 1][1]):
            last += 1
        else:
            return long[first][0], long[last][1]


def _stretches(columns: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """The runs of these sorted columns, gaps of at most ``bridge`` columns bridged: (first, last + 1), left
    to right."""
    if len(columns) == 0:
        return []
    breaks = np.flatnonzero(np.diff(columns) > bridge + 1)
    starts = columns[np.concatenate(([0], breaks + 1))]
    ends = columns[np.concatenate((breaks, [len(columns) - 1]))] + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _vertical_runs(mask: np.ndarray) -> np.ndarray:
    """For every pixel, how long the run of ink down its column through it is (0 off the ink)."""
    h, w = mask.shape
    padded = np.zeros((w, h + 1), np.int8)
    padded[:, 1:] = mask.T
    steps = np.diff(padded, axis=1, append=0).ravel()  # +1 where a run starts, -1 one past its end
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    lengths = np.zeros(len(steps) + 1, np.int64)
    lengths[starts + 1] = ends - starts  # runs start and end at different places
    lengths[ends + 1] = starts - ends
    return np.cumsum(lengths)[:-1].reshape(w, h + 1)[:, 1:].T


_COMB_TURN = np.tan(np.radians(16))  # a comb under a single digit turns, and its ticks lean, this much at most
_COMB_ENDS = 0.1  # of the comb's length at each end, left out where its line is measured (the ticks' corners)
_COMB_STRAIGHT = 0.9  # its line's lower edge lies along a straight line for this share of the rest at least,
_COMB_NEAR = 2.0  # within this many pixels (a digit's round foot strays further)
_TICK_LOW = 2.0  # a tick rises at least this many times the line's thickness,
_TICK_STRAIGHT = 4.0  # and this many times as far as it may stray sideways (a small round digit's side),
_TICK_HIGH = 0.5  # and at most this share of the crop's height (the digit stands taller above it)


def without_comb(digit: np.ndarray) -> np.ndarray:
    """A single digit's crop (ink 0..1) without a comb under it: ``digit`` itself when it has none, else a copy.

    A comb is a straight line as wide as the crop, turned a little, with a short tick rising at each end (a
    form's box for one digit without its top). Beside a single digit it is shorter than any rule and its
    ticks than any box's edge, so without_rules leaves it, and the digit and the comb, touching or not,
    were read as one (mostly a 2, the ticks and line a foot). No digit's foot has a tick at each end.
    The line's band goes, and the ticks, as thick as the line.
    """
    mask = digit > 0
    h, w = mask.shape
    ends = int(_COMB_ENDS * w)
    middle = np.arange(ends, w - ends)
    if len(middle) < 2 or not mask.any(axis=0).all():
        return digit
    lowest = h - 1 - mask[::-1].argmax(axis=0)
    # Its thickness: the ink running up from each column's lowest, in most columns (a digit stands on some).
    thick = float(np.percentile(_vertical_runs(mask)[lowest[middle], middle], 10))
    slope, offset = np.polyfit(middle, lowest[middle], 1)
    if (abs(slope) > _COMB_TURN or thick > h / 6
            or np.mean(np.abs(slope * middle + offset - lowest[middle]) <= _COMB_NEAR) < _COMB_STRAIGHT):
        return digit
    line = slope * np.arange(w) + offset - thick  # the line's top, column by column
    width = int(np.ceil(thick)) + 1  # the ticks are printed as thick as the line (a digit may touch them)
    across = _vertical_runs(mask.T).T  # the runs of ink along each row, through each pixel
    ticks = []
    for flip in (False, True):
        side, along = (mask[:, ::-1], across[:, ::-1]) if flip else (mask, across)
        top = int(np.floor(line[-1 if flip else 0]))
        if top < 1:
            return digit
        # The first ink of each row, from the line's top up: a tick's rows begin at the crop's edge.
        first = np.where(side.any(axis=1), side.argmax(axis=1), w)[top::-1]
        # Leaning, it strays from the crop's edge a little more with each row, never by a step.
        steps = np.abs(np.diff(first, prepend=first[0]))
        rising = (first <= _COMB_NEAR + _COMB_TURN * np.arange(len(first))) & (steps <= 1)
        height = int(np.argmin(rising)) if not rising.all() else len(first)
        if not max(_TICK_LOW * thick, _TICK_STRAIGHT * _COMB_NEAR) <= height <= _TICK_HIGH * h:
            return digit
        # Printed with the line, a tick is as thin as it, where the digit does not touch it: a bold digit's
        # upright side is thicker all along.
        starts = first[:height]  # (w in a row without ink, where the run is none)
        thinnest = np.where(starts < w, along[top - np.arange(height), np.minimum(starts, w - 1)], 0).min()
        if thinnest > thick + _COMB_NEAR:
            return digit
        ticks.append((slice(max(top - height, 0), top + 1), slice(w - width, w) if flip else slice(0, width)))
    # The digit stands between the ticks apart from them somewhere: the paper just above the line opens to
    # the paper round the crop. Inside a loop with a flat bottom and upright sides (a 0, a 6, an 8 whose
    # foot a rule took) it is closed.
    paper = np.pad(~mask, 1, constant_values=True)
    runs, piece = pieces(paper)
    outside = runs_mask(runs[piece == piece[0]], (0, 0) + paper.shape)[1:-1, 1:-1]
    above, columns = np.floor(line).astype(int) - 2, np.arange(width, w - width)
    if not outside[np.clip(above[columns], 0, h - 1), columns].any():
        return digit
    out = digit.copy()
    out[np.arange(h)[:, None] >= np.floor(line)[None, :] - 1] = 0.0
    for rows, columns in ticks:
        out[rows, columns] = 0.0
    return out

