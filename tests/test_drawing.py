"""clients.drawing: stroke files, rendering, and drawings of real MNIST digits recognised end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from clients.drawing import DISPLAY_PEN, Drawing, DrawingError, Stroke
from clients.preprocessing import stroke_width, to_mnist
from tests.strokes import (aligned_correlation, digit_strokes, enlarged, mnist_subset, opened_loops, small_model,
                           trace, traced_drawing, zhang_suen)

N_DRAWINGS = 200


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def digits():
    return mnist_subset(N_DRAWINGS, "test")


# --- editing and files ------------------------------------------------------------------------


def test_editing():
    d = Drawing()
    assert (d.width, d.height, d.strokes, d.is_empty) == (280, 280, [], True)
    d.begin_stroke(10, 20)
    d.extend_stroke(11.5, 21)
    d.extend_stroke(11.5, 21)  # Tk repeats motion events: no duplicate point
    d.begin_stroke(50, 60, width=30, erase=True)
    assert d.strokes == [Stroke([(10.0, 20.0), (11.5, 21.0)]), Stroke([(50.0, 60.0)], 30, True)]
    assert not d.is_empty
    d.clear()
    assert d.is_empty
    d.extend_stroke(3, 4)  # a drag without a press still starts a stroke
    assert d.strokes == [Stroke([(3.0, 4.0)])]
    with pytest.raises(DrawingError, match="within ±1,000,000"):
        d.extend_stroke(float("nan"), 1)
    with pytest.raises(DrawingError, match="stroke width"):
        d.begin_stroke(1, 1, width=0)
    assert Drawing(strokes=[Stroke([(1.0, 1.0)], erase=True)]).is_empty  # an eraser alone leaves no ink


def test_json_round_trip(tmp_path):
    d = Drawing(300, 200, [[(0.1, 2.5), (1e-3, 199.999)], [(150, 100)],
                           Stroke([(10.0, 10.0), (20.0, 20.0)], width=25.0, erase=True), Stroke([(5.0, 5.0)], 7.5)])
    text = d.to_json()
    assert json.loads(text) == {"canvas": [300, 200], "strokes": [
        [[0.1, 2.5], [0.001, 199.999]], [[150.0, 100.0]],  # the default pen: the plain form
        {"points": [[10.0, 10.0], [20.0, 20.0]], "width": 25.0, "erase": True},
        {"points": [[5.0, 5.0]], "width": 7.5}]}
    assert Drawing.from_json(text) == d
    path = tmp_path / "d.json"
    d.save(path)
    loaded = Drawing.load(path)
    assert loaded == d and (loaded.width, loaded.height) == (300, 200)


def test_save_by_extension(tmp_path):
    d = Drawing(200, 100, [[(20.0, 50.0), (180.0, 50.0)]])
    d.save(tmp_path / "line.PNG")
    picture = Image.open(tmp_path / "line.PNG")
    assert (picture.format, picture.mode, picture.size) == ("PNG", "L", (200, 100))
    pixels = np.asarray(picture)
    assert pixels[50, 100] == 0 and pixels[10, 100] == 255  # dark ink on white paper, as on screen
    with pytest.raises(DrawingError, match=r"line.txt: cannot save as .txt; expected .json \(strokes\) or .png"):
        d.save(tmp_path / "line.txt")
    assert not (tmp_path / "line.txt").exists()


@pytest.mark.parametrize("content, message", [
    ('{"canvas": [280, 280], "strokes": [[[1, 2]], [[1, 2]], [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], ["a", 5]]]}',
     "strokes[2][5]: expected [x, y] numbers within ±1,000,000, got ['a', 5]"),
    ('{"canvas": [280, 280], "strokes": [[[1, 2]], [[1, 2]], [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], "a"]]}',
     "strokes[2][5]: expected [x, y] numbers within ±1,000,000, got 'a'"),
    ('{"canvas": [280, 280], "strokes": [[[1, 2, 3]]]}', "strokes[0][0]: expected [x, y] numbers within ±1,000,000, got [1, 2, 3]"),
    ('{"canvas": [280, 280], "strokes": [[[1, NaN]]]}', "strokes[0][0]: expected [x, y] numbers within ±1,000,000, got [1, nan]"),
    ('{"canvas": [280, 280], "strokes": [[[1e308, 1], [-1e308, 3]]]}',  # finite, but their distance is not
     "strokes[0][0]: expected [x, y] numbers within ±1,000,000, got [1e+308, 1]"),
    ('{"canvas": [1e9, 280], "strokes": []}',
     "canvas: expected [width, height] positive numbers up to 1,000,000, got [1000000000.0, 280]"),
    ('{"canvas": [280, 280], "strokes": [[[true, 1]]]}', "strokes[0][0]: expected [x, y] numbers within ±1,000,000, got [True, 1]"),
    ('{"canvas": [280, 280], "strokes": [[]]}', "strokes[0]: expected a non-empty list of [x, y] points, got []"),
    ('{"canvas": [280, 280], "strokes": [{"points": [[1, 2], [3]]}]}',
     "strokes[0].points[1]: expected [x, y] numbers within ±1,000,000, got [3]"),
    ('{"canvas": [280, 280], "strokes": [{"width": 3}]}', "strokes[0]: points: missing"),
    ('{"canvas": [280, 280], "strokes": [{"points": [[1, 2]], "width": -3}]}',
     "strokes[0]: width: expected a positive number up to 1,000,000, got -3"),
    ('{"canvas": [280, 280], "strokes": [{"points": [[1, 2]], "erase": 1}]}',
     "strokes[0]: erase: expected true or false, got 1"),
    ('{"canvas": [280, 280], "strokes": [{"points": [[1, 2]], "colour": "red"}]}',
     "strokes[0]: unknown field 'colour'; expected points, width, erase"),
    ('{"canvas": [280, 280], "strokes": {}}', "strokes: expected a list of strokes, got {}"),
    ('{"canvas": [280, 0], "strokes": []}', "canvas: expected [width, height] positive numbers up to 1,000,000, got [280, 0]"),
    ('{"canvas": [280], "strokes": []}', "canvas: expected [width, height] positive numbers up to 1,000,000, got [280]"),
    ('{"canvas": "280x280", "strokes": []}', "canvas: expected [width, height] positive numbers up to 1,000,000, got '280x280'"),
    ('{"strokes": []}', "canvas: missing"),
    ('{"canvas": [280, 280]}', "strokes: missing"),
    ("[1, 2]", 'expected an object {"canvas": [width, height], "strokes": [...]}, got [1, 2]'),
    ('{"canvas": [280, 280], "strokes": [', "not valid JSON (Expecting value at line 1 column 36)"),
])
def test_validation_errors_name_the_file_and_field(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(DrawingError) as error:
        Drawing.load(path)
    assert str(error.value) == f"{path}: {message}"
    with pytest.raises(DrawingError) as error:
        Drawing.from_json(content)
    assert str(error.value) == f"<string>: {message}"


def test_unreadable_files(tmp_path):
    with pytest.raises(DrawingError, match="cannot read") as error:
        Drawing.load(tmp_path / "missing.json")
    assert str(tmp_path / "missing.json") in str(error.value)
    binary = tmp_path / "picture.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DrawingError, match="not a stroke file"):
        Drawing.load(binary)


def test_bad_canvas_in_constructor():
    with pytest.raises(DrawingError, match="width"):
        Drawing(0, 280)
    with pytest.raises(DrawingError, match="height"):
        Drawing(280, float("inf"))


# --- rendering ---------------------------------------------------------------------------------


def test_single_point_is_a_round_dot():
    pen = 30.0
    image = np.asarray(Drawing(200, 200, [[(100.0, 80.0)]]).render(pen_width=pen), dtype=np.float64) / 255
    assert image.shape == (200, 200)
    area = image.sum()
    assert area == pytest.approx(math.pi * (pen / 2) ** 2, rel=0.03)
    rows, cols = np.nonzero(image > 0.5)
    assert rows.min() == pytest.approx(80 - pen / 2, abs=1) and rows.max() == pytest.approx(80 + pen / 2, abs=1)
    assert cols.min() == pytest.approx(100 - pen / 2, abs=1) and cols.max() == pytest.approx(100 + pen / 2, abs=1)
    # round, not square: the corners of the pen's bounding square stay black
    assert image[int(80 - 0.45 * pen), int(100 - 0.45 * pen)] == 0
    # anti-aliased: the edge has intermediate grey levels
    assert ((image > 0.1) & (image < 0.9)).sum() > pen * 2


def test_lines_have_round_caps_and_joins():
    pen = 20.0
    d = Drawing(200, 200, [[(50.0, 100.0), (150.0, 100.0), (150.0, 40.0)]])
    image = np.asarray(d.render(pen_width=pen), dtype=np.float64) / 255
    # cap: ink reaches pen/2 beyond the end on the line's axis ...
    assert image[100, int(50 - 0.4 * pen)] == 1.0
    assert image[100, int(50 - 0.6 * pen)] == 0.0
    # ... but not at the corners a square cap would fill
    assert image[int(100 - 0.45 * pen), int(50 - 0.45 * pen)] == 0.0
    # join: the outer corner of the right angle is rounded off too
    assert image[int(100 + 0.45 * pen), int(150 + 0.45 * pen)] == 0.0
    assert image[100, int(150 + 0.4 * pen)] == 1.0
    # the line's width is the pen's
    assert (image[:, 100] > 0.5).sum() == pytest.approx(pen, abs=1)


def test_render_size_scale_and_default_pen():
    d = Drawing(280, 200, [[(20.0, 30.0), (200.0, 150.0)]])
    image = d.render()
    assert (image.mode, image.size) == ("L", (280, 200))
    assert d.render(scale=0.5).size == (140, 100)
    assert Drawing().display_pen_width() == DISPLAY_PEN
    assert Drawing(560, 700).display_pen_width() == 2 * DISPLAY_PEN
    # the default pen is the display pen: same ink as asking for it explicitly
    assert np.array_equal(np.asarray(image), np.asarray(d.render(pen_width=d.display_pen_width())))
    # scale shrinks the pen with the canvas: the ink stays the same fraction of the picture
    full = np.asarray(d.render(pen_width=20), dtype=np.float64).mean()
    half = np.asarray(d.render(pen_width=20, scale=0.5), dtype=np.float64).mean()
    assert half == pytest.approx(full, rel=0.05)
    with pytest.raises(ValueError):
        d.render(pen_width=0)
    empty = Drawing().render()
    assert np.asarray(empty).max() == 0


def test_each_stroke_has_its_pen_and_erasers_paint_background():
    thin, thick = Stroke([(20.0, 50.0), (180.0, 50.0)], width=6), Stroke([(20.0, 150.0), (180.0, 150.0)], width=30)
    image = np.asarray(Drawing(200, 200, [thin, thick]).render(), dtype=np.float64) / 255
    assert (image[:100, 100] > 0.5).sum() == pytest.approx(6, abs=1)
    assert (image[100:, 100] > 0.5).sum() == pytest.approx(30, abs=1)
    eraser = Stroke([(100.0, 0.0), (100.0, 200.0)], width=20, erase=True)
    erased = np.asarray(Drawing(200, 200, [thin, thick, eraser]).render(), dtype=np.float64) / 255
    assert erased[:, 92:109].max() == 0 and erased[150, 60] == 1.0  # a gap where the eraser went, ink elsewhere
    # painted in order: ink after the eraser shows again
    redrawn = np.asarray(Drawing(200, 200, [thin, eraser, thick]).render(), dtype=np.float64) / 255
    assert redrawn[150, 100] == 1.0 and redrawn[50, 100] == 0.0


def test_vector_follows_the_pen_and_the_eraser():
    line = [(140.0, 40.0), (140.0, 240.0)]
    plain = Drawing(strokes=[line]).to_vector().reshape(28, 28)
    bold = Drawing(strokes=[Stroke(line, width=1.6 * DISPLAY_PEN)]).to_vector().reshape(28, 28)
    assert (bold > 127).sum() > (plain > 127).sum()  # a wider brush sends a wider stroke
    cut = Drawing(strokes=[line, Stroke([(100.0, 140.0), (180.0, 140.0)], width=30, erase=True)])
    rows = np.nonzero(cut.to_vector().reshape(28, 28).max(axis=1) > 0)[0]
    assert len(rows) < rows.max() - rows.min() + 1  # the 1 arrives in two pieces


def test_fitted_keeps_the_vector(digits):
    d = traced_drawing(digits[0][4], 300, canvas=(500, 500))  # a 4: two strokes
    d.strokes[0].width = 40.0
    fitted = d.fitted(280, 280)
    assert (fitted.width, fitted.height) == (280, 280) and fitted.strokes[0].width == pytest.approx(22.4)
    assert fitted.strokes[1].width is None  # the default pen stays the default
    assert aligned_correlation(fitted.to_vector(), d.to_vector()) > 0.99
    assert d.fitted(500, 500) == d and d.fitted(500, 500) is not d


# --- to_vector ----------------------------------------------------------------------------


def test_empty_drawing_has_no_vector():
    with pytest.raises(DrawingError, match="drawing is empty"):
        Drawing().to_vector()


def test_vector_is_mnist_like(digits):
    vector = traced_drawing(digits[0][0], 150).to_vector()
    assert vector.dtype == np.uint8 and vector.shape == (784,)
    image = vector.reshape(28, 28)
    rows, cols = np.nonzero(image)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 == 20  # MNIST's 20 px box
    mass = image.astype(np.float64)
    centre = np.array([mass.sum(axis=1) @ np.arange(28), mass.sum(axis=0) @ np.arange(28)]) / mass.sum()
    assert np.abs(centre - 14).max() <= 0.5
    assert image.max() == 255
    # MNIST-style output is left alone by the preprocessing it came from
    assert np.array_equal(to_mnist(vector), vector)


def test_vector_strokes_are_as_wide_as_mnist_strokes(digits):
    images = digits[0][:60]
    mnist = np.median([stroke_width(image / 255) for image in images])
    small = np.median([stroke_width(traced_drawing(image, 70).to_vector().reshape(28, 28) / 255) for image in images])
    large = np.median([stroke_width(traced_drawing(image, 250).to_vector().reshape(28, 28) / 255) for image in images])
    print(f"\nmedian stroke width: MNIST {mnist:.2f} px, drawn small {small:.2f} px, drawn large {large:.2f} px")
    assert abs(small - mnist) < 0.5 and abs(large - mnist) < 0.5


@pytest.mark.parametrize("index", range(8))
def test_vector_ignores_where_and_how_big_the_digit_is_drawn(digits, index):
    strokes = digit_strokes(digits[0][index])
    reference = Drawing(28, 28, strokes).to_vector()
    for factor, dx, dy, canvas in [(10, 0, 0, 280), (3, 150, 20, 280), (20, -40, 10, 600), (2.5, 5, 200, 280),
                                   (7.3, 0.37, 0.61, 280)]:
        moved = [[(x * factor + dx, y * factor + dy) for x, y in s] for s in strokes]
        vector = Drawing(canvas, canvas, moved).to_vector()
        # The same up to MNIST's whole-pixel centring (a sub-pixel change can tip it) and rasterisation.
        assert aligned_correlation(vector, reference) > 0.97, (factor, dx, dy)


def test_loaded_drawing_gives_the_same_vector(tmp_path, digits):
    for i, image in enumerate(digits[0][:10]):
        d = traced_drawing(image, 60 + 19 * i, centre=(90 + 10 * i, 170 - 7 * i), slant=0.3 - 0.06 * i)
        path = tmp_path / f"{i}.json"
        d.save(path)
        assert np.array_equal(Drawing.load(path).to_vector(), d.to_vector())


def test_single_dot_and_straight_line():
    dot = Drawing(280, 280, [[(140.0, 140.0)]]).to_vector().reshape(28, 28)
    rows, cols = np.nonzero(dot > 127)
    assert rows.max() - rows.min() == pytest.approx(cols.max() - cols.min(), abs=1)  # round, not a line
    line = Drawing(280, 280, [[(140.0, 40.0), (140.0, 240.0)]]).to_vector().reshape(28, 28)
    rows, cols = np.nonzero(line > 127)
    assert rows.max() - rows.min() + 1 >= 19 and cols.max() - cols.min() + 1 <= 4  # a "1": tall and MNIST-thin


# --- the skeleton tracer in tests/strokes.py ------------------------------------------------


def test_zhang_suen_thins_to_one_pixel_and_keeps_connectivity():
    bar = np.zeros((20, 30), bool)
    bar[8:13, 3:27] = True
    skeleton = zhang_suen(bar)
    assert skeleton.sum() > 15 and np.all(skeleton.sum(axis=0) <= 1)  # one pixel thick
    ring = np.zeros((30, 30), bool)
    yy, xx = np.mgrid[:30, :30]
    ring[(np.hypot(yy - 15, xx - 15) < 11) & (np.hypot(yy - 15, xx - 15) > 6)] = True
    strokes = trace(zhang_suen(ring))
    assert len(strokes) == 1 and strokes[0][0] == strokes[0][-1]  # one closed loop


def test_traced_strokes_cover_the_digit(digits):
    scale = 4
    for image in digits[0][:20]:
        skeleton = zhang_suen(enlarged(image, scale) >= 128)
        points = np.array([p for s in digit_strokes(image, passes=0, scale=scale) for p in s]) * scale - 0.5
        cells = np.rint(points).astype(int)
        assert np.allclose(points, cells) and skeleton[cells[:, 1], cells[:, 0]].all()  # every point on the skeleton
        # ... one point per original pixel of each stroke's length: no skeleton pixel is farther from one.
        pixels = np.argwhere(skeleton)[:, ::-1]
        gaps = np.sqrt(((pixels[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
        assert gaps.max() <= scale


def test_traced_strokes_reach_the_ends_of_thick_strokes():
    """Thinning on the 28x28 grid ate short thick bars whole: the top of this 5 (MNIST test digit 2810)."""
    image = mnist_subset(1, "test", start=2810)[0][0]
    top = np.flatnonzero((image >= 128).any(axis=1))[0] + 0.5
    points = np.array([p for s in digit_strokes(image) for p in s])
    # Half a pen width (about a pixel) and some smoothing below the ink's top; the bar eaten, 3 pixels.
    assert points[:, 1].min() - top <= 2


def _enclosed(vector: np.ndarray) -> int:
    """Pixels of background that the ink of a 28x28 digit encloses: a loop's inside."""
    ink = np.asarray(vector).reshape(28, 28) >= 128
    return int((ndimage.binary_fill_holes(ink) & ~ink).sum())


def test_traced_strokes_open_loops_closed_by_heavy_ink():
    """Heavy ink filled the head of this 9 (MNIST test digit 209); thinned as it was, it traced a 7."""
    image = mnist_subset(1, "test", start=209)[0][0]
    assert _enclosed(image) == 0
    assert _enclosed(traced_drawing(image).to_vector()) >= 10


def test_traced_strokes_keep_heavy_lines_lines():
    """A heavy one has no loop to open: its ink goes to the thinning as it is."""
    images, labels = mnist_subset(1000, "test")
    for image in images[labels == 1]:
        ink = enlarged(image, 4) >= 128
        assert np.array_equal(opened_loops(ink, zhang_suen(ink)), ink)


# --- recognition ---------------------------------------------------------------------------


@pytest.mark.heavy  # accuracy over 200 drawings
def test_drawn_digits_are_recognised(model, digits):
    """MNIST test digits redrawn as mouse strokes: any size, place, slant; through to_vector."""
    images, labels = digits
    rng = np.random.default_rng(7)
    vectors = []
    for image in images:
        size = rng.uniform(60, 250)
        slant = rng.uniform(-0.3, 0.3)
        half_width = size * 0.4 + abs(slant) * size / 2
        centre = (rng.uniform(half_width, 280 - half_width), rng.uniform(size / 2, 280 - size / 2))
        vectors.append(traced_drawing(image, size, centre, slant).to_vector())
    drawn = float((model.predict(np.stack(vectors)) == labels).mean())
    original = float((model.predict(images.reshape(len(images), -1)) == labels).mean())
    print(f"\ndrawn {drawn:.3f} vs original {original:.3f} on {len(images)} digits")
    assert drawn >= 0.9
    assert drawn >= original - 0.04


def test_screenshots_of_the_canvas_are_recognised(model, digits):
    """The canvas as the user saw it (display pen) saved as a picture: the image path agrees."""
    images, labels = digits
    n = 100
    vectors = [to_mnist(traced_drawing(image, 180).render()) for image in images[:n]]
    assert float((model.predict(np.stack(vectors)) == labels[:n]).mean()) >= 0.9
