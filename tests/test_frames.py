"""A ring drawn round the writing is taken out of the ink map (clients/frames.py); digits' own loops are not."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageDraw

from clients.frames import without_frames


_INK = 0.25


def _ellipse(shape: tuple[int, int], box: tuple[int, int, int, int], width: int, gap: float = 0.0) -> np.ndarray:
    """An ellipse's outline drawn in the box, 1.0 on 0.0, anti-aliased edges left out; open by ``gap``
    degrees."""
    sheet = Image.new("L", shape[::-1], 0)
    ImageDraw.Draw(sheet).arc(box, gap, 360, fill=255, width=width)
    return np.asarray(sheet, np.float32) / 255


def _strokes(shape: tuple[int, int]) -> np.ndarray:
    """Three digit-like marks side by side: a 1, a 0 (a loop of its own) and a 7."""
    level = np.zeros(shape, np.float32)
    level[30:70, 60:66] = 1.0  # a 1
    level = np.maximum(level, _ellipse(shape, (90, 30, 120, 70), 5))  # a 0
    level[30:35, 140:170] = 1.0  # a 7's bar
    for row in range(35, 70):  # and its stem, leaning
        level[row, 163 - (row - 35) // 5 : 169 - (row - 35) // 5] = 1.0
    return level


def test_a_ring_round_a_number_is_taken_out_and_every_stroke_kept():
    shape = (100, 230)
    strokes = _strokes(shape)
    ring = _ellipse(shape, (20, 8, 210, 92), 4)
    faint = (_ellipse(shape, (19, 7, 211, 93), 6) > 0) & (ring == 0)  # the pen's fainter edge
    level = np.maximum(strokes, np.maximum(ring, 0.1 * faint))
    assert np.array_equal(without_frames(level, _INK), strokes)
    # Left open where the pen started, as a hand leaves it, the ring still goes.
    level = np.maximum(strokes, _ellipse(shape, (20, 8, 210, 92), 4, gap=20))
    assert np.array_equal(without_frames(level, _INK), strokes)


def test_a_box_with_round_corners_round_a_number_goes_and_a_row_of_a_forms_boxes_stays():
    """A box drawn round an answer, or a price tag's, has round corners or round ends: its straight sides were
    taken out as rules and its ends read as 1s or 6s. It goes as a ring does. A form's row of boxes, one per
    digit, has edges between the digits running from its top to its bottom: the rules take it out."""
    shape = (100, 230)
    strokes = _strokes(shape)
    for radius in (20, 42):
        sheet = Image.new("L", shape[::-1], 0)
        ImageDraw.Draw(sheet).rounded_rectangle((30, 14, 200, 86), radius=radius, outline=255, width=4)
        box = np.asarray(sheet, np.float32) / 255
        cleaned = without_frames(np.maximum(strokes, box), _INK)
        assert np.array_equal(cleaned[strokes > 0], strokes[strokes > 0])  # every stroke whole
        # The box gone, but for a speck or two where its straight sides turn (measured across an ellipse).
        assert ((cleaned > 0) & (strokes == 0)).sum() <= 0.01 * (box > 0).sum(), radius
    row = np.maximum(strokes, 0)
    row[[14, 15, 16, 84, 85, 86], 40:190] = 1.0
    for x in (40, 80, 130, 187):
        row[14:87, x : x + 3] = 1.0
    assert without_frames(row, _INK) is row


def test_a_row_of_a_forms_boxes_turned_a_little_stays_for_the_rules():
    """Photographed, a form's row of boxes is turned a few degrees. Its top then runs on above its sides'
    first rows, by its slope times its width, so the sides did not look straight; and the band measured
    across an ellipse cut its edges short of the top and bottom. The row went as a ring round the digits,
    and the edges were left to be read as 1s. Against the straight top and bottom, the sides are measured
    further from the corners, and the edges against the box's height between its bands."""
    for turn in (2.5, 3.0):
        for height in (50, 60):
            sheet = Image.new("L", (420, 60 + height), 0)
            draw = ImageDraw.Draw(sheet)
            draw.rectangle((30, 30, 390, 30 + height), outline=255, width=3)
            for x in (120, 210, 300):
                draw.line((x, 30, x, 30 + height), fill=255, width=3)
            draw.ellipse((124, 42, 170, 22 + height), outline=255, width=6)  # a 0 touching an edge
            draw.line((255, 42, 255, 22 + height), fill=255, width=6)  # and a 1 apart
            row = np.asarray(sheet.rotate(turn, resample=Image.Resampling.BILINEAR), np.float32) / 255
            assert without_frames(row, _INK) is row, (turn, height)


def test_a_ring_touching_a_digit_takes_only_the_rings_band():
    """Drawn tight, the ring touches the digits at the ends; they keep all their ink but where they meet it."""
    shape = (100, 230)
    strokes = _strokes(shape)
    strokes[27:74, 30:36] = 1.0  # a tall 1 at the left end, its ends on the ring
    ring = _ellipse(shape, (14, 8, 214, 92), 4)
    cleaned = without_frames(np.maximum(strokes, ring), _INK)
    assert not (cleaned * (strokes == 0)).any()  # the ring is gone
    kept = (cleaned > 0) & (strokes > 0)
    assert kept.sum() >= 0.92 * (strokes > 0).sum()
    assert kept[38:64, 30:36].all()  # the 1, but for the ring's band (1.5 strokes deep) where it meets it


def test_digits_loops_and_specks_in_them_are_no_ring():
    """A 0, a 6 or an 8 is a loop round nothing, or round a speck: it comes back as it is."""
    shape = (60, 60)
    zero = _ellipse(shape, (10, 5, 50, 55), 5)
    speck = zero.copy()
    speck[28:31, 28:31] = 1.0
    eight = np.maximum(_ellipse(shape, (15, 5, 45, 30), 5), _ellipse(shape, (12, 28, 48, 56), 5))
    six = _ellipse(shape, (12, 28, 48, 56), 5)
    six[5:40, 12:17] = 1.0
    for level in (zero, speck, eight, six, _strokes((100, 230))):
        assert without_frames(level, _INK) is level
    # Nor is a line under a number, joined to the digits standing on it: with their tops it runs round
    # much of its box, but it is straight, and most of its ink lies deep inside that.
    lined = np.zeros((100, 230), np.float32)
    lined[70:72, :] = 1.0
    for k, x in enumerate(range(5, 230, 28)):  # 1s standing on it, and two a little above it
        lined[30 : 66 if k in (3, 5) else 70, x : x + 5] = 1.0
    assert without_frames(lined, _INK) is lined
    # Nor is a ring round a digit's box that does not hold it inside its outline.
    corner = _ellipse((100, 100), (0, 0, 100, 100), 4)
    corner[2:14, 2:14] = 1.0  # a mark in the box's corner, outside the ring
    assert without_frames(corner, _INK) is corner


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_taking_rings_out_only_ever_zeroes_ink(seed):
    """Whatever rings and boxes, open or closed, nested, crossing or cut off at the border, and specks and bars
    a picture holds, taking its rings out leaves each pixel as it was or at 0, round a number or a digit."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(8, 200)), int(rng.integers(8, 300))
    level = ((rng.random((h, w)) < rng.uniform(0, 0.05)) * rng.uniform(0.2, 1.0)).astype(np.float32)
    for _ in range(int(rng.integers(0, 6))):
        if rng.random() < 0.6:  # inside the picture
            left, top = int(rng.integers(0, max(1, w // 2))), int(rng.integers(0, max(1, h // 2)))
            box = (left, top, int(rng.integers(left, w)), int(rng.integers(top, h)))
        else:
            left, top = int(rng.integers(-20, w)), int(rng.integers(-20, h))
            box = (left, top, left + int(rng.integers(1, w + 20)), top + int(rng.integers(1, h + 20)))
        if rng.random() < 0.7:
            ring = _ellipse((h, w), box, int(rng.integers(1, 8)), gap=float(rng.uniform(0, 30)))
        else:  # a form's box
            sheet = Image.new("L", (w, h), 0)
            ImageDraw.Draw(sheet).rectangle(box, outline=255, width=int(rng.integers(1, 6)))
            ring = np.asarray(sheet, np.float32) / 255
        level = np.maximum(level, ring * np.float32(rng.uniform(0.2, 1.0)))
        if rng.random() < 0.5:  # a bar somewhere, or in the ring's middle
            row, column = int(rng.integers(0, h)), int(rng.integers(0, w))
            if rng.random() < 0.7:
                row, column = (box[1] + box[3]) // 2 - int(rng.integers(0, 8)), (box[0] + box[2]) // 2 - int(rng.integers(0, 8))
            tall, wide = (int(rng.integers(1, max(2, n // 2))) for n in (box[3] - box[1], box[2] - box[0]))
            level[max(0, row) : max(0, row + tall), max(0, column) : max(0, column + wide)] = 1.0
    for touching in (False, True):
        out = without_frames(level, _INK, touching)
        assert out.shape == level.shape and out.dtype == level.dtype
        assert ((out == level) | (out == 0)).all()


def test_a_line_under_a_number_joined_to_its_digits_is_no_ring():
    """A form's line under a number, level or turned, joined to the digits standing on it, runs round much of
    its box with their tops, and holds the digits that do not touch it: but it is straight, with corners,
    and most of its ink lies deep inside its box. 300 numbers as bench.ruled draws them keep every pixel."""
    from bench.numbers import compose
    from bench.ruled import ruled
    from clients import preprocessing
    from clients.numbers import pictures
    from tests.strokes import mnist_subset

    images, _ = mnist_subset(2000, "test")
    rng = np.random.default_rng(5)
    for k in range(300):
        pick = rng.choice(len(images), int(rng.integers(2, 7)), replace=False)
        picture, _, boxes = compose(rng, images[pick].reshape(-1, 784), len(pick), "clear")
        level, _ = pictures._reduced(*preprocessing.ink_level(ruled(picture, boxes, ("under", "turned")[k % 2], rng)))
        assert without_frames(level, pictures._RULES.ink) is level, k


def test_a_ring_drawn_across_ruled_lines_goes_once_they_are_out():
    """A ring drawn across a notebook's rules is one piece of ink with them, as wide as the page, and no ring:
    it stayed, to be read as digits. Once the rules are out it is looked for again."""
    from clients.numbers import pictures
    from clients.rules import without_lines

    shape = (100, 230)
    strokes = _strokes(shape)
    ring = _ellipse(shape, (35, 4, 195, 96), 4)
    rules = np.zeros(shape, np.float32)
    rules[[20, 50, 80], :] = 0.5  # faint rules, 1 px thick, across the page
    level = np.maximum(np.maximum(strokes, ring), rules)
    assert np.array_equal(without_frames(level, _INK), level)  # alone, the ring is not found
    cleaned = without_lines(level, pictures._digits_beside_rules, pictures._RULES)
    assert np.array_equal(cleaned[strokes > 0], strokes[strokes > 0])  # every stroke whole
    # The ring and the rules gone, but for a pixel or two where the rules cross the ring or a stroke.
    assert ((cleaned > 0) & (strokes == 0)).sum() <= 0.01 * ((ring > 0) | (rules > 0)).sum()


def test_a_ring_whose_top_and_bottom_run_along_the_rules_is_taken_out_whole():
    """Where a wide ring runs nearly level along a rule, taking the rule out took that stretch of the ring too,
    and what was left was no ring: its arcs were read as digits (a 5 or a 6 before the number, a 7 after).
    Drawn with a pen, the ring is darker than the print: among the darker pixels it is whole."""
    from clients.numbers import pictures
    from clients.rules import without_lines

    shape = (100, 230)
    strokes = _strokes(shape)
    rules = np.zeros(shape, np.float32)
    rules[[10, 50, 90], :] = 0.33  # printed grey, 170 of 255 as bench.ruled's notebook
    for width in (2, 3):
        ring = _ellipse(shape, (35, 10, 195, 90), width)  # its top and bottom along the outer rules
        level = np.maximum(np.maximum(strokes, ring), rules)
        cleaned = without_lines(level, pictures._digits_beside_rules, pictures._RULES)
        assert np.array_equal(cleaned[strokes > 0], strokes[strokes > 0]), width  # every stroke whole
        assert ((cleaned > 0) & (strokes == 0)).sum() <= 0.01 * ((ring > 0) | (rules > 0)).sum(), width


def test_a_faint_ring_broken_up_among_the_inks_pixels_is_found_among_fainter_ones():
    """A thin ring photographed is blurred about as faint as the ink looked for, and a little fainter in
    places: among the ink's pixels it is arcs, no ring, and they were read as digits."""
    from clients.numbers import pictures
    from clients.rules import without_lines

    shape = (100, 230)
    strokes = _strokes(shape)
    ring = _ellipse(shape, (20, 8, 210, 92), 3)
    ys, xs = np.nonzero(ring)
    every_15_degrees = (np.degrees(np.arctan2(ys - 50, xs - 115)) // 15) % 2 == 0
    ring[ys, xs] = np.where(every_15_degrees, 0.35, 0.2)
    level = np.maximum(strokes, ring)
    assert np.array_equal(without_frames(level, _INK), level)  # among the ink's pixels: no ring
    cleaned = without_lines(level, pictures._digits_beside_rules, pictures._RULES)
    assert np.array_equal(cleaned[strokes > 0], strokes[strokes > 0])  # every stroke whole
    assert ((cleaned > 0) & (strokes == 0)).sum() <= 0.01 * (ring > 0).sum()


def test_a_single_digit_touching_its_ring_is_taken_out_of_it_and_a_round_six_is_no_ring():
    """A single digit touching the ring drawn round it is one piece of ink with it, with nothing else inside:
    the ring stayed, and the two were read as a 0 or worse. Its own ink deeper than the ring's band is
    what it holds; a round 6, whose curl lies inside its loop the same way, is written thicker."""
    shape = (80, 100)
    ring = _ellipse(shape, (10, 5, 90, 75), 2)
    seven = np.zeros(shape, np.float32)
    seven[15:20, 20:66] = 1.0  # its bar reaches the ring on the left
    for row in range(20, 56):
        seven[row, 60 - (row - 20) // 2 : 65 - (row - 20) // 2] = 1.0
    level = np.maximum(ring, seven)
    assert without_frames(level, _INK) is level  # a number's round digits alone would look like one
    cleaned = without_frames(level, _INK, touching=True)
    assert cleaned is not level
    assert ((cleaned > 0) & (seven == 0)).sum() <= 0.01 * (ring > 0).sum()  # the ring gone
    assert (cleaned[seven > 0] > 0).mean() >= 0.9  # the 7 kept, but near where it meets the ring
    six = _ellipse(shape, (10, 5, 90, 75), 8)  # the loop, and a curl inside it joined to it
    six = np.maximum(six, _ellipse(shape, (40, 30, 80, 72), 8))  # (a ring, with a pen of a 10th of its height)
    assert without_frames(six, _INK, touching=True) is six
