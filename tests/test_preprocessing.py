"""clients.preprocessing on real MNIST digits, disguised the way real pictures differ from MNIST."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from clients import preprocessing
from clients.preprocessing import PreprocessingError, load_image, prepare, to_mnist
from tests.strokes import aligned_correlation, mnist_subset, small_model, traced_drawing

ROOT = Path(__file__).resolve().parent.parent

N_ACCURACY = 300


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_subset(N_ACCURACY, "test")
    return images, labels


def centre_of_mass(vector: np.ndarray) -> np.ndarray:
    image = vector.reshape(28, 28).astype(np.float64)
    coords = np.arange(28)
    return np.array([image.sum(axis=1) @ coords, image.sum(axis=0) @ coords]) / image.sum()


def on_paper(image: np.ndarray, paper: float = 180, ink: float = 40) -> np.ndarray:
    """MNIST's white-on-black as dark ink on grey paper."""
    return np.rint(paper - (paper - ink) * image.astype(np.float64) / 255).astype(np.uint8)


def upscale(image: np.ndarray, factor: float) -> np.ndarray:
    size = round(28 * factor)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


def pad(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width), np.uint8)
    out[top : top + image.shape[0], left : left + image.shape[1]] = image
    return out


def jpeg_file(image: np.ndarray, path, quality: int = 75):
    Image.fromarray(image).save(path, "JPEG", quality=quality)
    return path


def disguise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scaled 2-6x, placed off centre in a larger picture, dark ink on grey paper."""
    big = upscale(image, rng.uniform(2, 6))
    height = big.shape[0] + int(rng.integers(20, 200))
    width = big.shape[1] + int(rng.integers(20, 200))
    top = int(rng.integers(0, height - big.shape[0]))
    left = int(rng.integers(0, width - big.shape[1]))
    return on_paper(pad(big, top, left, height, width))


# --- MNIST itself ----------------------------------------------------------------------------


def test_mnist_digits_pass_through_byte_identical():
    images, _ = mnist_subset(2000, "test")
    train, _ = mnist_subset(1000, "train", start=30000)
    for i, image in enumerate(np.concatenate([images, train])):
        # Every digit as an array; the other forms, which become that array first, for one in ten.
        sources = (image, Image.fromarray(image), image.reshape(-1)) if i % 10 == 0 else (image,)
        for source in sources:
            out = to_mnist(source)
            assert out.dtype == np.uint8 and out.shape == (784,)
            assert out.tobytes() == image.tobytes()
        if i % 10 == 0:
            assert to_mnist(image, ink="light").tobytes() == image.tobytes()


def test_mnist_png_file_passes_through(tmp_path, digits):
    images, _ = digits
    for i, image in enumerate(images[:20]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(image).convert("RGB").save(path)  # colour PNG of a grey digit
        assert prepare(path).tobytes() == image.tobytes()


def test_output_is_idempotent(digits):
    """A vector this module made is MNIST-style: it comes back unchanged."""
    images, _ = digits
    for image in images[:100]:
        once = to_mnist(upscale(image, 3.3))
        assert to_mnist(once).tobytes() == once.tobytes()


# --- disguised MNIST -------------------------------------------------------------------------


def assert_close(vectors: list[np.ndarray], originals: np.ndarray, median: float, worst: float) -> None:
    correlations = np.array([aligned_correlation(v, o) for v, o in zip(vectors, originals)])
    offsets = np.array([np.abs(centre_of_mass(v) - 14.0).max() for v in vectors])
    assert offsets.max() <= 1.0, f"centre of mass {offsets.max():.2f} px from (14, 14)"
    assert np.median(correlations) > median, np.median(correlations)
    assert correlations.min() > worst, (correlations.min(), int(correlations.argmin()))


def test_dark_ink_is_detected_and_inverted(digits):
    images, _ = digits
    inverted = [255 - image for image in images[:100]]
    auto = [to_mnist(image) for image in inverted]
    assert all(np.array_equal(a, to_mnist(image, ink="dark")) for a, image in zip(auto, inverted))
    assert_close(auto, images[:100], median=0.99, worst=0.95)


def test_a_lamp_lit_band_across_a_sheet_on_a_dark_table_is_no_light_ink(digits):
    """A sheet on a dark table, a band across its top lit 1.3 times brighter than the rest: too narrow for
    the light's estimate to follow, so the band stood out as marks lighter than the paper, outweighing the
    digit's dark ink. The sheet was read as light ink and the digit lost (9 of these 10). A piece of marks
    only a little brighter than the paper's estimate is lit paper, not light ink."""
    images, _ = digits
    for image in images[:10]:
        paper = np.zeros((300, 280))
        paper[30:260, 40:240] = 150.0
        paper[30:90] *= 1.3
        ink = np.zeros_like(paper)
        ink[40:180, 70:210] = upscale(image, 5) / 255
        photo = Image.fromarray(np.rint(np.where(paper > 0, paper, 50.0) * (1 - 0.65 * ink)).astype(np.uint8))
        vector = to_mnist(photo.filter(ImageFilter.GaussianBlur(1.2)))
        assert aligned_correlation(vector, image.reshape(-1)) > 0.85


def test_claiming_the_wrong_ink_finds_no_digit(digits):
    image = 255 - digits[0][0]  # dark on white, claimed to be light ink: the white paper is "ink" everywhere
    with pytest.raises(PreprocessingError, match="no ink found"):
        to_mnist(image, ink="light")


def test_scaled_up_digits(digits):
    images, _ = digits
    assert_close([to_mnist(upscale(image, 4)) for image in images[:100]], images[:100], median=0.95, worst=0.6)


def test_off_centre_digits_in_a_larger_picture(digits):
    images, _ = digits
    vectors = [to_mnist(pad(image, 5 + 3 * (i % 30), 100 - 2 * (i % 40), 150, 200))
               for i, image in enumerate(images[:100])]
    assert_close(vectors, images[:100], median=0.99, worst=0.95)


def test_grey_paper_jpeg_files(digits, tmp_path):
    images, _ = digits
    vectors = [prepare(jpeg_file(on_paper(pad(upscale(image, 3), 40, 10, 160, 140)), tmp_path / f"{i}.jpg"))
               for i, image in enumerate(images[:100])]
    assert_close(vectors, images[:100], median=0.93, worst=0.6)


def test_colour_and_transparent_images(digits):
    image = digits[0][1]
    big = upscale(image, 4)
    expected = to_mnist(big)
    rgb = np.stack([255 - big, 255 - big // 2, np.full_like(big, 255)], axis=2)  # blue ink on white
    assert aligned_correlation(to_mnist(Image.fromarray(rgb)), expected) > 0.97
    # Strokes on a transparent background: dark or light, the ink is found.
    for colour in (0, 255):
        rgba = np.zeros(big.shape + (4,), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = big
        assert aligned_correlation(to_mnist(Image.fromarray(rgba, "RGBA")), expected) > 0.97
        assert aligned_correlation(to_mnist(rgba), expected) > 0.97


def test_a_huge_picture_is_averaged_down_first_and_reads_the_same(digits):
    """A picture over 4,096 pixels on a side is averaged down by a whole factor before anything else: a
    9000x9000 page took 1.3 GB of float copies for one digit. Its digit comes out as at a usual size."""
    image = digits[0][1]
    huge = on_paper(pad(upscale(image, 150), 100, 200, 4300, 4400))  # 4,200 pixels of digit
    assert aligned_correlation(to_mnist(huge), to_mnist(on_paper(upscale(image, 8)))) > 0.97
    level, factor = preprocessing.ink_level(huge)
    assert factor == 2 and level.shape == (2150, 2200)


def test_float_and_bool_arrays(digits):
    image = digits[0][2]
    assert to_mnist(image / 255.0).tobytes() == image.tobytes()
    assert to_mnist(image.astype(np.float64)).tobytes() == image.tobytes()
    binary = upscale(image, 4) > 127
    assert aligned_correlation(to_mnist(binary), image) > 0.9


def test_image_file_formats(digits, tmp_path):
    image = on_paper(pad(upscale(digits[0][3], 3), 20, 30, 140, 150))
    expected = to_mnist(image)
    for suffix in ("png", "bmp", "gif", "tif", "webp"):
        path = tmp_path / f"digit.{suffix}"
        Image.fromarray(image).save(path)
        assert aligned_correlation(prepare(path), expected) > 0.97, suffix
    # Animated GIF: the first frame is the digit.
    frames = [Image.fromarray(image), Image.fromarray(np.full_like(image, 180))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif").size == (150, 140)
    assert aligned_correlation(prepare(tmp_path / "anim.gif"), expected) > 0.97


def test_exif_rotation_is_applied(digits, tmp_path):
    """Phones save photos sideways and note the rotation in EXIF: the digit must come out upright."""
    upright = on_paper(pad(upscale(digits[0][4], 3), 20, 20, 130, 130))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: display rotated 90 degrees clockwise
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(path, quality=95, exif=exif)
    assert aligned_correlation(prepare(path), to_mnist(upright)) > 0.95
    assert aligned_correlation(to_mnist(np.rot90(upright)), to_mnist(upright)) < 0.6  # sideways is different


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, N_ACCURACY - 1), factor=st.floats(1.5, 8), top=st.integers(0, 80),
       left=st.integers(0, 80), paper=st.integers(120, 255), contrast=st.integers(60, 255),
       dark=st.booleans())
def test_any_disguise_keeps_the_digit(digits, index, factor, top, left, paper, contrast, dark):
    image = digits[0][index]
    big = pad(upscale(image, factor), top, left, round(28 * factor) + 90, round(28 * factor) + 90)
    if dark:
        picture = on_paper(big, paper=paper, ink=paper - min(contrast, paper))
    else:
        background = 255 - paper
        picture = np.rint(background + min(contrast, 255 - background) * (big / 255.0)).astype(np.uint8)
    vector = to_mnist(picture)
    assert vector.dtype == np.uint8 and vector.shape == (784,)
    assert np.abs(centre_of_mass(vector) - 14.0).max() <= 1.0
    assert aligned_correlation(vector, image) > 0.6
    assert vector.max() >= 250  # the strongest ink is full white, as in MNIST


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 30), width=st.integers(1, 30), down=st.integers(0, 8), across=st.integers(0, 8),
       seed=st.integers(0, 2**32 - 1))
def test_the_paper_lights_median_is_each_windows_median(height, width, down, across, seed):
    """The separable median the paper's light is estimated with takes each window's middle value once
    partitioned: np.median's own answer, rows first, the picture's edge pixels repeated."""
    grey = (np.random.default_rng(seed).random((height, width)) * 255).astype(np.float32)
    windows = (2 * down + 1, 2 * across + 1)
    expected = grey
    for axis in (1, 0):
        padding = [(0, 0), (0, 0)]
        padding[axis] = (windows[axis] // 2,) * 2
        padded = np.pad(expected, padding, mode="edge")
        expected = np.median(np.lib.stride_tricks.sliding_window_view(padded, windows[axis], axis=axis), axis=-1)
    assert np.array_equal(preprocessing._median_filter(grey, windows), expected)


# --- recognition ------------------------------------------------------------------------------


def accuracy(model, vectors, labels) -> float:
    return float((model.predict(np.stack(vectors)) == labels).mean())


@pytest.mark.heavy
def test_disguised_digits_are_recognised_nearly_as_well(model, digits, tmp_path):
    images, labels = digits
    rng = np.random.default_rng(0)
    vectors = [prepare(jpeg_file(disguise(image, rng), tmp_path / f"{i}.jpg")) for i, image in enumerate(images)]
    original = accuracy(model, list(images.reshape(len(images), -1)), labels)
    disguised = accuracy(model, vectors, labels)
    print(f"\noriginal {original:.3f}, inverted+scaled+offset+grey paper+JPEG {disguised:.3f}")
    assert disguised >= original - 0.03


@pytest.mark.heavy
@pytest.mark.parametrize("canvas, size, pen, gain", [(500, 400, 1.5, 0.15), (280, 200, 10, 0.04), (280, 100, 40, 0.1)],
                         ids=["hairline", "thin", "marker"])
def test_stroke_width_correction_helps(model, digits, canvas, size, pen, gain):
    """Pen lines far from MNIST's width: hairlines fade when shrunk, marker loops clog."""
    images, labels = digits
    n = 150
    pictures = [traced_drawing(image, size, canvas=(canvas, canvas)).render(pen_width=pen) for image in images[:n]]
    corrected = accuracy(model, [to_mnist(p) for p in pictures], labels[:n])
    plain = accuracy(model, [preprocessing.to_mnist(p, correct_strokes=False) for p in pictures], labels[:n])
    print(f"\npen {pen} on a {size} px digit: {corrected:.3f} with stroke correction, {plain:.3f} without")
    assert corrected >= 0.85
    assert corrected >= plain + gain


@pytest.mark.parametrize("rule", ["under", "notebook", "underline", "blurred", "pale", "box", "grid", "faint", "ring"])
def test_a_digit_written_on_ruled_lines_is_read_as_without_them(model, digits, rule):
    """A digit written on a form's line took the line for part of it, and notebook rules ran through it: a
    line under its foot, or rules every quarter of its height, once cost nine digits in ten. Both are taken
    out; where a stroke crosses a rule or stands on it, the stroke keeps its ink. An underline a little
    below the digit and no wider than it cost one in six: it is left out. Blurred as a small photo blurs
    it, the line under a digit at the top of a tall note is thicker than a 25th of its length (the
    note's width), and is a rule all the same; so is a pale grey line (a printed form's), blurred, whose
    faint edges once broke it up. A form's box around the digit is no part of it either, nor are squared
    paper's lines, which cost more than half the digits, nor a grid too faint to be looked for as rules,
    which joined the digit into a piece as wide as the page, nor a ring drawn round it, once read as a 0."""
    images, labels = digits
    n = 100
    plain, ruled = [], []
    for image in images[:n]:
        blurred = rule in ("blurred", "pale")
        page = on_paper(pad(upscale(image, 2), 10, 20, 300 if blurred else 76, 96), paper=235, ink=20)
        foot = int(np.flatnonzero((page < 128).any(axis=1))[-1])
        lined = page.copy()
        if rule in ("under", "blurred", "pale"):
            lined[foot + 1 : foot + 3, :] = 130 if rule == "pale" else 20
        elif rule == "underline":
            columns = np.flatnonzero((page < 128).any(axis=0))
            lined[foot + 5 : foot + 7, columns[0] - 4 : columns[-1] + 5] = 20
        elif rule == "box":
            columns, head = np.flatnonzero((page < 128).any(axis=0)), int(np.flatnonzero((page < 128).any(axis=1))[0])
            half = max(columns[-1] - columns[0] + 12, 0.8 * (foot - head + 7)) // 2  # at least 0.8 as wide as tall
            left, right = int((columns[0] + columns[-1]) // 2 - half), int((columns[0] + columns[-1]) // 2 + half)
            lined[[head - 4, head - 3, foot + 1, foot + 2], left : right + 2] = 20
            lined[head - 4 : foot + 3, [left, left + 1, right, right + 1]] = 20
        elif rule == "ring":
            rows, columns = np.flatnonzero((page < 128).any(axis=1)), np.flatnonzero((page < 128).any(axis=0))
            x, y = (columns[0] + columns[-1]) / 2, (rows[0] + rows[-1]) / 2
            radius = 0.75 * max(columns[-1] - columns[0], rows[-1] - rows[0]) + 3
            sheet = Image.fromarray(lined)
            ImageDraw.Draw(sheet).ellipse((x - radius, y - radius, x + radius, y + radius), outline=20, width=3)
            lined = np.asarray(sheet)
        else:
            shade = 215 if rule == "faint" else 150
            rows = (np.arange(len(lined)) - foot) % 14 == 0
            lined[rows] = np.minimum(lined[rows], shade)
            if rule in ("grid", "faint"):
                columns = np.arange(lined.shape[1]) % 14 == 5
                lined[:, columns] = np.minimum(lined[:, columns], shade)
        if blurred:
            page, lined = (np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(1.2))) for p in (page, lined))
        plain.append(to_mnist(page))
        ruled.append(to_mnist(lined))
    assert accuracy(model, ruled, labels[:n]) >= accuracy(model, plain, labels[:n]) - 0.05


def test_a_straight_bar_under_a_digit_is_left_out_and_a_curve_broken_off_below_is_kept():
    """An underline apart from the digit is no stroke of it: the digit reads byte for byte as without it.
    A wide 0 drawn with a fine pen can break into two flat arcs, the lower wholly below the upper: curved,
    it stays part of the digit."""
    canvas = Image.new("L", (160, 120), 255)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((30, 50, 130, 90), outline=0, width=3)
    draw.rectangle((20, 68, 140, 72), fill=255)  # broken at its sides; the upper arc is nearer the middle
    zero = np.asarray(canvas)
    top_only = zero.copy()
    top_only[73:] = 255
    assert not np.array_equal(to_mnist(zero), to_mnist(top_only))
    underlined = zero.copy()
    underlined[98:101, 32:129] = 0
    assert np.array_equal(to_mnist(underlined), to_mnist(zero))


def test_a_fine_pens_bars_and_flat_curves_are_no_rules(digits):
    """A digit written with a fine pen has strokes as thin beside their length as a rule: a 7's long bar
    once lost to the rules' step, and the flat bottom of a wide 0 did when rules turned further were looked
    for. A digit's stroke ends at its other strokes, where a rule reaches beyond them."""
    from clients.rules import without_rules

    images, labels = digits
    for pen, size, canvas in ((1.5, 400, 500), (1.0, 300, 320)):
        for image in [*images[labels == 7][:12], *images[:90]]:
            page = 255 - np.asarray(traced_drawing(image, size, canvas=(canvas, canvas)).render(pen_width=pen))
            level, _ = preprocessing.ink_level(page)
            assert without_rules(level, preprocessing._digit_beside_rules, preprocessing._RULES) is level


def test_mnist_like_strokes_are_left_alone(digits):
    """A digit drawn with an MNIST-like pen is not thickened or thinned."""
    image = traced_drawing(digits[0][5], 200).render(pen_width=26)
    assert np.array_equal(to_mnist(image), preprocessing.to_mnist(image, correct_strokes=False))


def test_dust_inside_a_digits_box_is_not_taken_for_its_strokes():
    """A digit on a scan with 1% black specks: specks inside its box used to join it, and the stroke
    correction took them for thin strokes and thickened them into a grey block (correlation about 0.5)."""
    images, _ = mnist_subset(5, "test")
    rng = np.random.default_rng(0)
    correlations = []
    for image in images:
        page = np.zeros((1000, 1500), np.float32)
        page[200:800, 450:1050] = np.asarray(Image.fromarray(image).resize((600, 600), Image.BICUBIC))
        page[rng.random(page.shape) < 0.01] = 255
        scan = Image.fromarray((255 - page).clip(0, 255).astype(np.uint8))
        correlations.append(aligned_correlation(to_mnist(scan), image))
    assert np.mean(correlations) > 0.65, correlations


def test_a_point_inside_a_digits_box_does_not_make_the_digit_a_frame(digits):
    """A point in a digit's box, clear of its strokes (under a 7's bar, beside a 5's or 9's stem), and
    faint grain about: the digit counted as a frame round the point (the outline of a sheet round its
    digit), so the point was taken for the digit, and with its lower peak the grain joined it (5 of these
    7 read with a correlation of 0.54 to 0.84). A frame has ink on all four sides of what it holds."""
    images, _ = digits
    read = 0
    for image in images[:40]:
        ink = np.asarray(Image.fromarray(image).resize((112, 112), Image.Resampling.BICUBIC)) / 255
        rows, columns = np.nonzero(ink > 0.25)
        y, x = rows.max() - 6, columns.max() - 6  # the box's lower right corner
        if ink[y - 12 : y + 12, x - 12 : x + 12].max() > 0:
            continue
        ink[y - 4 : y + 5, x - 4 : x + 5] = 0.6
        ink = np.pad(ink, 40)
        top, left = rows.min() + 40, columns.min() + 40
        for dy, dx in ((-14, 0), (-14, 30), (20, -16), (50, -16), (-14, 60)):  # dashes of grain, 0.4 as dark
            ink[top + dy : top + dy + 3, left + dx : left + dx + 12] = 0.4
        assert aligned_correlation(to_mnist(np.rint(235 - 215 * ink).astype(np.uint8)), image) > 0.9
        read += 1
    assert read >= 5


def _form_page(image: np.ndarray) -> tuple[Image.Image, float, tuple[float, float, float, float]]:
    """A test digit 2.5 times MNIST's size on a white page, and how well it reads photographed (blurred) alone;
    with its ink's box on the page (top, bottom, middle column, half the width of a form's box round it)."""
    ink = np.asarray(Image.fromarray(image).resize((70, 70), Image.Resampling.BICUBIC))
    rows, columns = np.nonzero(ink > 64)
    page = Image.fromarray(np.pad(255 - ink, 40, constant_values=255))
    half = max(0.45 * (rows.max() - rows.min()), (columns.max() - columns.min()) / 2 + 6)
    alone = aligned_correlation(to_mnist(page.filter(ImageFilter.GaussianBlur(1.5))), image)
    return page, alone, (rows.min() + 40, rows.max() + 40, (columns.min() + columns.max()) / 2 + 40, half)


def test_a_digit_touching_its_forms_box_is_taken_out_of_it(digits):
    """A single digit written in a form's box, touching its top side, photographed (blurred): one piece of
    ink with the box. The box was kept round it, and the digit read as a 0, since its ink outweighed the
    box's band and ran across most of the box's height like the edge between two boxes (a correlation of
    0.43 to 0.91 with the digit; 39 of these 40 more than 0.05 below the same digit without the box).
    A box's four straight sides say what it is."""
    images, _ = digits
    for image in images[:40]:
        page, alone, (top, bottom, middle, half) = _form_page(image)
        ImageDraw.Draw(page).rectangle((middle - half, top - 1, middle + half, bottom + 6), outline=0, width=2)
        boxed = aligned_correlation(to_mnist(page.filter(ImageFilter.GaussianBlur(1.5))), image)
        assert boxed > alone - 0.05, (boxed, alone)


def test_a_comb_under_a_single_digit_is_taken_out_and_a_digits_own_foot_is_no_comb(digits):
    """A form's comb for one digit (a line under it with a tick up at each end), photographed: the digit
    stands on the line, one piece of ink with it. It was shorter than any rule, so it stayed, and the
    digit was read with a foot (38 of these 40 more than 0.05 below the same digit without the comb).
    A digit lying along the line over most of its width still keeps it. A digit's own round or flat
    bottom has no tick at each end: plain digits, large and small, sharp and blurred, are left alone."""
    from clients.rules import without_comb

    images, _ = digits
    kept = 0
    for image in images[:40]:
        page, alone, (_, bottom, middle, half) = _form_page(image)
        draw = ImageDraw.Draw(page)
        draw.line((middle - half, bottom + 1, middle + half, bottom + 1), fill=0, width=2)
        for x in (middle - half, middle + half):  # the ticks, 16 px tall
            draw.line((x, bottom - 15, x, bottom + 1), fill=0, width=2)
        kept += aligned_correlation(to_mnist(page.filter(ImageFilter.GaussianBlur(1.5))), image) > alone - 0.05
    assert kept >= 34
    for image in images[:200]:
        for scale, blur in ((1, 0), (3, 0), (3, 1.5)):
            glyph = np.asarray(Image.fromarray(image).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC))
            page = Image.fromarray(np.pad(255 - glyph, 10 * scale, constant_values=255))
            level, _ = preprocessing.ink_level(page.filter(ImageFilter.GaussianBlur(blur)), "dark")
            digit = preprocessing._digit(level)
            assert without_comb(digit) is digit


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_taking_a_comb_out_only_ever_zeroes_ink(seed):
    """Whatever a crop holds (specks, solid ink, combs of any size, a stroke among them), taking a comb out of
    it leaves each pixel as it was or at 0, or the crop itself."""
    from clients.rules import without_comb

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
    digit = ((rng.random((h, w)) < rng.uniform(0, 0.3)) * rng.uniform(0.1, 1.0, (h, w))).astype(np.float32)
    if rng.random() < 0.7:  # a comb: a line along the foot, a tick at each end, and a stroke between them
        thick, tick = int(rng.integers(1, 6)), int(rng.integers(1, h + 1))
        digit[h - thick :] = 1.0
        digit[h - tick :, :thick] = digit[h - tick :, w - thick :] = 1.0
        digit[: int(rng.integers(1, h + 1)), w // 3 : w // 3 + thick] = 1.0
    out = without_comb(digit)
    assert out is digit or (out.shape == digit.shape and ((out == digit) | (out == 0)).all())


# --- errors ---------------------------------------------------------------------------------


def test_a_dusty_blank_scan_is_read_in_bounded_memory(tmp_path):
    """A 12-megapixel scan of a blank page with 1% black specks: 120,000 pieces of ink, none larger.

    Comparing every pair of pieces that are not specks beside the largest (frames
    and what they hold), and every pair of pieces for the line height, took 170 s
    and 11.6 GB; here a 3 GiB address space is the limit. A digit on the page
    makes the specks small beside it, which hid this.
    """
    rng = np.random.default_rng(0)
    scan = np.full((3000, 4000), 255, np.uint8)
    scan[rng.random(scan.shape) < 0.01] = 0
    Image.fromarray(scan).save(tmp_path / "dusty.png")
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from clients import numbers, preprocessing\n"
        f"image = preprocessing.load_image({str(tmp_path / 'dusty.png')!r})\n"
        "print(preprocessing.to_mnist(image).shape[0], numbers.count_separate(image))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    pixels, separate = map(int, done.stdout.split())
    assert pixels == 784 and separate >= 1


@pytest.mark.parametrize("picture, looked_for", [
    (np.zeros((100, 80), np.uint8), "light ink at least 24 of 255 lighter than the background"),
    (np.full((100, 80), 255, np.uint8), "dark ink at least 24 of 255 darker than the paper"),
    (np.full((28, 28), 128, np.uint8), "dark ink"),
    (np.clip(np.random.default_rng(1).normal(200, 4, (300, 300)), 0, 255).astype(np.uint8), "dark ink"),
], ids=["black", "white", "grey", "noisy-paper"])
def test_blank_images_have_no_ink(picture, looked_for):
    """A blank page is no digit, and the error speaks of the ink one writes on such a page."""
    with pytest.raises(PreprocessingError, match=f"no ink found: looked for {looked_for}"):
        to_mnist(picture)


def test_ground_too_grainy_for_any_ink_says_so():
    """Stripes of 20 and 128: no mark can stand out by eight times that grain, and the error says it
    rather than asking for ink more than 255 levels lighter than the ground."""
    stripes = np.full((200, 200), 128, np.uint8)
    stripes[::2] = 20
    with pytest.raises(PreprocessingError, match=r"no ink found: the \w+ is too grainy") as error:
        to_mnist(stripes)
    assert all(int(n) <= 255 for n in re.findall(r"\d+", str(error.value)))


def test_blank_image_file_error_names_the_path(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (64, 64), 230).save(path)
    with pytest.raises(PreprocessingError, match="no ink found") as error:
        prepare(path)
    assert str(error.value).startswith(f"{path}: ")


def test_non_image_file_names_the_path(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    for call in (load_image, prepare):
        with pytest.raises(PreprocessingError) as error:
            call(path)
        assert str(error.value).startswith(f"{path}: not an image file (")


def test_damaged_and_missing_files_name_the_path(tmp_path, digits):
    good = tmp_path / "good.png"
    Image.fromarray(upscale(digits[0][0], 4)).save(good)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    for path in (damaged, tmp_path / "missing.png", tmp_path):
        with pytest.raises(PreprocessingError) as error:
            load_image(path)
        assert str(error.value).startswith(f"{path}: ")


def test_bad_arguments():
    with pytest.raises(ValueError, match="ink must be one of"):
        to_mnist(np.zeros((28, 28), np.uint8), ink="white")
    with pytest.raises(PreprocessingError, match="shape"):
        to_mnist(np.zeros((4, 5, 6, 7)))
    with pytest.raises(PreprocessingError, match="NaN"):
        to_mnist(np.full((30, 30), np.nan))
