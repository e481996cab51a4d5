"""Any picture of one digit -> the 784 pixels the models were trained on.

The models only ever saw MNIST: 28x28 greyscale, white ink (255) on black
(0), the digit scaled so that its longer side is 20 pixels and shifted so that
its centre of mass sits on pixel (14, 14). Everything here reproduces that
recipe for images that are not MNIST yet: photos and scans (dark ink on grey
or noisy paper, under uneven light, on a table), screenshots of the drawing
canvas, tiny or huge digits. The CLI client and the Tk drawing client both go
through :func:`to_mnist`, so the server sees the same kind of input from either.

Photos are evened out first: the paper's brightness is estimated at a scale
much larger than a stroke (a median over two fifths of the picture, which
keeps the edges of shadows and of the sheet sharp) and divided out, so a lamp's
falloff, vignetting or a shadow leave flat paper behind. The ink is then
thresholded above the paper's noise, and only the digit's own marks are kept:
the most central, digit-sized piece of ink and the pieces next to it, not
specks, a margin line or the edge of a table at the border of the picture.

Only numpy and Pillow are used: the clients do not install scipy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from clients.pieces import piece_boxes, pieces, runs_mask
from clients.rules import Ruling, without_comb, without_lines
from digitserve.contract import IMAGE_SIDE

# MNIST's recipe: an IMAGE_SIDE x IMAGE_SIDE image ...
BOX = 20  # ... with the digit scaled so its longer side is BOX pixels
CENTRE = 14.0  # ... and its centre of mass on this row and column (0-based)
INKS = ("auto", "dark", "light")

# A 28x28 image whose border median is at most this is taken as already
# MNIST-style (black background) when its ink also has MNIST's size and place.
_BLACK = 8.0
# The ink must stand out from the background by this much (of 255) and by
# this many noise deviations, or the image counts as blank.
_MIN_CONTRAST = 24.0
_MIN_CONTRAST_NOISE = 8.0
# Pixels below background + max(this many noise deviations, this fraction of
# the contrast) are paper, not ink: this removes JPEG ringing and paper grain.
_NOISE_SIGMAS = 4.0
_NOISE_FRACTION = 0.08
# The paper's brightness is estimated on a copy shrunk to about this many
# pixels (longer side), with a median over windows of _LIGHT_WINDOW of that.
_LIGHT_WORK = 64
_LIGHT_WINDOW = 0.4
# Back at full size a pixel is background if it lies within the range of the
# estimate this many shrunken pixels around it (edges of a tilted sheet move a little); the darkest
# background around it, of an estimate on a copy this many times larger (_paper_light).
_AROUND = 2
_FINER = 2
# Light that varies by less than this (of 255) along the border, with no large
# brighter part, counts as even: such images are read as before, against the
# paper at their border.
_EVEN_LIGHT = 12.0
# A brighter part covering this fraction of the picture is a sheet of paper on a darker table.
_SHEET = 0.3
# Lighter marks in a blob this thick, of the picture's shorter side, are paper, not light ink (_ink_is_darker).
_BLOB = 0.3
# A piece of lighter marks is light ink when it is on average at least this many times as bright as the
# paper's estimate under it. In phone photos of training digits, paper lit more than the estimate followed
# (a lamp-lit band along a sheet's edge, the lit side of a shadow) was mostly 1.2-1.45 times as bright;
# bold light digits scaled up, whose estimate takes some of their ink, 1.5-6 times.
_LIGHT_INK = 1.45
# Paper this many times darker than the best-lit paper is taken as that dark, not darker.
_DARKEST_PAPER = 4.0
# Paper at least this fraction as bright as the best-lit paper shows the paper's own grain.
_WELL_LIT = 0.75
# Pieces of ink smaller than this fraction of the digit's main piece are specks
# unless they lie inside the digit's box; pieces within _NEAR of the digit's
# longer side belong to it.
_SPECK = 0.02
# ... and pieces inside its box smaller than this are dust, not a broken stroke: a dusty scan's
# specks inside the box would otherwise join the digit and be thickened with it into a grey block.
_DUST = 0.005
_FRAMES = 64  # the largest pieces looked at as frames and what frames hold (a dusty scan has thousands of pieces)
_NEAR = 0.25
# ... and pieces whose strongest ink is below this fraction of the digit's are
# texture (a table's grain, a shadow's rim), not strokes.
_FAINT = 0.5
_FRINGE = 2  # pixels of fainter ink kept around a digit's stronger ink when a faint line is taken out
# A piece touching the picture's edge is less likely the digit (a digit cut by a
# tight crop still wins by its size), and far less when it runs along _SPAN of
# the picture: a table's or a shadow's edge, a margin line.
_EDGE_PIECE = 0.3
_EDGE_LINE = 0.02
_SPAN = 0.9
# A ruled line under or through the digit (a form's, a notebook's) is at least 1.25 times as long as the
# digit is tall and reaches beyond it (rules.without_rules), the digit being its pieces at least _RULE_PIECE
# as tall as the tallest. A single digit's picture is small, and a photo's blur makes its short rule thicker
# than the 25th of its length a number's rule keeps to, and fades its edges: here a rule may be 16 times as
# long as thick, and is looked for among fainter ink. A ring the digit touches is one piece with it, and may
# be a ring all the same (frames.without_frames).
_RULES = Ruling(longer=1.25, beyond=True, flat=16.0, ink=0.15, touching=True)
_RULE_PIECE = 0.25
# A straight piece wholly below the digit, at least _UNDERLINE times as wide as it is tall and spanning at
# least _UNDER_SPAN of the digit's width, is an underline, not a stroke of the digit (too short to be a
# rule: it spans the digit, not the page). Straight and spanning tell it from a stroke of the digit's own
# broken off below it: a wide 0's bottom drawn by a fine pen is curved, a 5's bowl ends short of its bar.
_UNDERLINE = 3
_UNDER_SPAN = 0.8
# Images larger than this (longer side) are max-pooled first: it keeps the
# work to a few milliseconds and, unlike averaging, keeps thin strokes bright.
_MAX_WORK = 1024
# A picture longer than this (on its longer side) is first averaged down by a whole factor to at most
# this: each float copy of a 100-megapixel photo takes 400 MB, and a pen a few pixels wide there still
# marks the averaged pixel it falls in.
_LARGEST = 4096
# Stroke width: MNIST strokes are ~0.10 of the digit's longer side (median
# 1.96 px of 20; 5-95% range 0.064-0.15). In digits longer than
# _THICKEN_ABOVE pixels (only those are shrunk enough to fade or clog),
# strokes thinner than _THIN or thicker than _THICK times the longer side are
# brought to _STROKE times it, working at a longer side of ~_THICKEN_WORK.
_THICKEN_ABOVE = 2 * BOX
_THIN = 0.06
_THICK = 0.16
_STROKE = 0.12
_THICKEN_WORK = 96


class PreprocessingError(ValueError):
    """An image that cannot become a digit; the message names the source and the reason."""


def load_image(path: str | Path | BinaryIO, name: str | None = None) -> Image.Image:
    """Open and fully decode an image file, or an open binary stream called ``name`` in errors
    (first frame of animations, EXIF rotation applied).

    Decoding happens here, not lazily later, so that a damaged file is
    reported with its path instead of failing somewhere in the pipeline.
    """
    opened = path if hasattr(path, "read") else Path(path)
    shown = name or str(path)
    try:
        with Image.open(opened) as image:
            image.seek(0)
            image.load()
            # Phones store photos sideways with an EXIF note; the digit must be upright.
            loaded = ImageOps.exif_transpose(image)
            return loaded.copy() if loaded is image else loaded
    except FileNotFoundError:
        raise PreprocessingError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise PreprocessingError(f"{shown}: is a directory, not an image file") from None
    except PermissionError:
        raise PreprocessingError(f"{shown}: cannot read (permission denied)") from None
    except UnidentifiedImageError:
        raise PreprocessingError(f"{shown}: not an image file (Pillow does not recognise its format)") from None
    except Image.DecompressionBombError as exc:
        raise PreprocessingError(f"{shown}: image too large to open safely ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on damaged data
        raise PreprocessingError(f"{shown}: not an image file (damaged or truncated: {exc})") from None


def prepare(source: str | Path | Image.Image | np.ndarray, ink: str = "auto") -> np.ndarray:
    """The 784-pixel vector of a path, PIL image or array (paths go through :func:`load_image`)."""
    if isinstance(source, (str, Path)):
        return to_mnist(load_image(source), ink, source=str(source))
    return to_mnist(source, ink)


def to_mnist(image: Image.Image | np.ndarray, ink: str = "auto", *, source: str | None = None,
             correct_strokes: bool = True) -> np.ndarray:
    """Turn an image of one digit into an MNIST-style uint8 vector of shape (784,).

    ``ink`` says which way round the picture is: "dark" ink on light paper,
    "light" ink on a dark background, or "auto" to decide from the border.
    28x28 images that are already MNIST-style come back byte for byte.
    ``source`` (a path, say) prefixes error messages. ``correct_strokes=False``
    skips the stroke-width correction, to see what it does.
    """
    if ink not in INKS:
        raise ValueError(f"ink must be one of {', '.join(INKS)}, not {ink!r}")
    try:
        grey, _ = _finite_greyscale(image)
        background = float(np.median(_border(grey)))
        dark_ink = _is_dark_ink(grey, background, ink)
        if not dark_ink and grey.shape == (IMAGE_SIDE, IMAGE_SIDE) and background <= _BLACK:
            pixels = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
            if _is_mnist_style(pixels):
                return pixels.reshape(-1)
        bright, light, dark_ink = _ink_bright(grey, ink, dark_ink)
        if max(bright.shape) > _MAX_WORK:
            factor = -(-max(bright.shape) // _MAX_WORK)
            bright = max_pool(bright, factor)
            light = None if light is None else light[::factor, ::factor]
        ink_level = _remove_background(bright, light, "dark" if dark_ink else "light")
        if dark_ink:  # on paper: a ring round the digit, a form's line or a notebook's rules are no part of it
            ink_level = without_lines(ink_level, _digit_beside_rules, _RULES)
        # Clutter (specks, a margin line, a table) is a thing of paper; a drawing's pieces are all its own.
        digit = _digit(ink_level) if dark_ink else _crop(ink_level)
        if dark_ink and (combless := without_comb(digit)) is not digit:
            digit = _digit(combless)  # what the comb joined to the digit, or held beside it, may be apart now
        if correct_strokes:
            digit = _stroke_to_mnist(digit)
        return _place(_scale(digit))
    except PreprocessingError as exc:
        if source is None:
            raise
        raise PreprocessingError(f"{source}: {exc}") from None


def ink_level(image: Image.Image | np.ndarray, ink: str = "auto") -> tuple[np.ndarray, int]:
    """Ink strength 0..1 over the whole picture, background removed: what :func:`to_mnist` crops a digit
    from; and how many of the picture's pixels across one of its pixels spans (a huge picture's is averaged
    down, _LARGEST).

    For callers that find several digits in one picture (clients/numbers/).
    """
    if ink not in INKS:
        raise ValueError(f"ink must be one of {', '.join(INKS)}, not {ink!r}")
    grey, factor = _finite_greyscale(image)
    bright, light, dark_ink = _ink_bright(grey, ink, _is_dark_ink(grey, float(np.median(_border(grey))), ink))
    return _remove_background(bright, light, "dark" if dark_ink else "light"), factor


def _finite_greyscale(image: Image.Image | np.ndarray) -> tuple[np.ndarray, int]:
    """The picture's luminance (_greyscale), averaged down by the returned whole factor if longer than
    _LARGEST."""
    grey = _greyscale(image)
    if not np.isfinite(grey).all():
        raise PreprocessingError("image holds NaN or infinite values")
    factor = -(-max(grey.shape) // _LARGEST)
    if factor == 1:
        return grey, 1
    # Rows first, then columns, so no full-size copy is made; the last few rows and columns that make no
    # whole block are dropped (the picture's own edge, under a pixel of the result).
    rows, columns = grey.shape[0] // factor, grey.shape[1] // factor
    grey = grey[: rows * factor].reshape(rows, factor, -1).mean(axis=1, dtype=np.float32)
    return grey[:, : columns * factor].reshape(rows, columns, factor).mean(axis=2, dtype=np.float32), factor


def _ink_bright(grey: np.ndarray, ink: str, dark_ink: bool) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The picture with its ink bright, the background's brightness under it (None: even), and whether the
    ink is dark (``dark_ink`` as the border says; under uneven light the marks decide in "auto")."""
    # Uneven light is evened out for dark ink on paper (photos, scans). Light ink on a dark ground
    # (screens, the drawing canvas) is taken as evenly lit, against the ground at its border.
    light = _paper_light(grey) if ink != "light" else None
    dark_ink = dark_ink or (ink == "auto" and light is not None and _ink_is_darker(grey, light))
    bright = 255.0 - grey if dark_ink else grey
    return bright, (255.0 - light if dark_ink and light is not None else None), dark_ink


def _is_dark_ink(grey: np.ndarray, background: float, ink: str) -> bool:
    """Dark ink on light paper: as told, or when the paper is nearer the brightest pixel than the darkest.

    Light paper with no mark of ink's contrast either way (a blank page,
    its grain alone) is taken as written on in dark ink: the error then
    speaks of the page a person sees, not of light ink on white.
    """
    if ink != "auto":
        return ink == "dark"
    low, high = float(grey.min()), float(grey.max())
    blank = max(high - background, background - low) < _MIN_CONTRAST
    return background > (low + high) / 2 or (blank and background > 127.5)


def _greyscale(image: Image.Image | np.ndarray) -> np.ndarray:
    """Luminance as float32 0..255, transparency composited onto a background that contrasts with the ink."""
    if isinstance(image, np.ndarray):
        return _array_greyscale(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or numpy array, not {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise PreprocessingError(f"image is empty ({image.width}x{image.height})")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _array_greyscale(np.asarray(image))
    if image.mode == "LAB":  # Pillow cannot convert it; its first band is the lightness
        return np.asarray(image.getchannel(0), dtype=np.float32)
    try:
        if "A" in image.mode or "a" in image.mode or "transparency" in image.info:
            rgba = image.convert("RGBA")
            grey = np.asarray(rgba.convert("L"), dtype=np.float32)
            alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
            return _composite(grey, alpha) if alpha.min() < 1.0 else grey
        return np.asarray(image.convert("L"), dtype=np.float32)
    except ValueError as exc:  # a mode Pillow cannot convert
        raise PreprocessingError(f"cannot read {image.mode} images ({exc})") from None


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten a transparent image: light ink goes onto black, dark ink onto white.

    A drawing on a transparent background has no paper colour of its own;
    the paper must contrast with whatever colour the opaque strokes have.
    """
    weight = float(alpha.sum())
    ink_is_light = weight > 0 and float((grey * alpha).sum()) / weight > 127.5
    paper = 0.0 if ink_is_light else 255.0
    return grey * alpha + paper * (1.0 - alpha)


def _array_greyscale(array: np.ndarray) -> np.ndarray:
    """Arrays: (H, W) grey, (H, W, 1|3|4) colour, or a flat 784 vector.

    Integers are 0..255 (16-bit ranges are scaled down), floats are 0..1 when
    nothing exceeds 1 and 0..255 otherwise, booleans are ink/no ink.
    """
    a = np.asarray(array)
    if a.ndim == 1 and a.size == IMAGE_SIDE * IMAGE_SIDE:
        a = a.reshape(IMAGE_SIDE, IMAGE_SIDE)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise PreprocessingError(f"expected a (height, width) or (height, width, 3|4) array, got shape {a.shape}")
    if a.size == 0:
        raise PreprocessingError(f"image is empty (shape {a.shape})")
    if a.dtype == bool:
        a = a.astype(np.float32) * 255.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        finite = a[np.isfinite(a)]
        if finite.size and finite.max() <= 1.0:
            a = a * 255.0
    elif np.issubdtype(a.dtype, np.integer):
        top = int(a.max())
        a = a.astype(np.float32)
        if top > 255:
            a *= 255.0 / (65535.0 if top <= 65535 else top)
    else:
        raise PreprocessingError(f"cannot read pixels of dtype {a.dtype}")
    if a.ndim == 2:
        return a
    grey = a[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if a.shape[2] == 4:
        return _composite(grey, np.clip(a[:, :, 3] / 255.0, 0.0, 1.0))
    return grey


def _border(grey: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (2% of the shorter side, at least 1 pixel): the paper."""
    h, w = grey.shape
    r = max(1, min(h, w) // 50)
    if 2 * r >= min(h, w):
        return grey.reshape(-1)
    return np.concatenate([grey[:r].ravel(), grey[-r:].ravel(),
                           grey[r:-r, :r].ravel(), grey[r:-r, -r:].ravel()])


def _is_mnist_style(pixels: np.ndarray) -> bool:
    """Does a 28x28 light-on-black image already have MNIST's digit size and centring?

    Every MNIST digit has an ink bounding box whose longer side is 19 or 20
    pixels and a centre of mass within half a pixel of (14, 14).
    """
    ink = pixels > 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return False
    longer = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if not BOX - 1 <= longer <= BOX:
        return False
    mass = pixels.astype(np.float64)
    total = mass.sum()
    coords = np.arange(IMAGE_SIDE)
    centre_row = mass.sum(axis=1) @ coords / total
    centre_col = mass.sum(axis=0) @ coords / total
    return abs(centre_row - CENTRE) <= 0.6 and abs(centre_col - CENTRE) <= 0.6


def max_pool(a: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by an integer factor keeping each block's brightest pixel (thin bright strokes survive)."""
    h, w = a.shape
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)), mode="edge")
    out = a[::factor, ::factor].copy()
    for i in range(factor):  # f*f strided maxima: one pass, unlike a 4-d reduction (10x slower)
        for j in range(factor):
            if i or j:
                np.maximum(out, a[i::factor, j::factor], out=out)
    return out


def _paper_light(grey: np.ndarray) -> np.ndarray | None:
    """The background's brightness at every pixel, or None when the light is even.

    A median over windows of two fifths of the picture's height (down) and
    width (across) ignores strokes (they
    cover less than half of any such window) but follows a lamp's falloff and
    keeps the edges of shadows and of a sheet on a table where they are: a
    median does not move a straight edge, unlike blurs or morphological
    closing. It is computed on a shrunken copy; back at full size each pixel
    takes its own value clipped to the range of the background around it, so
    the pixels along a sharp edge (a shadow, the sheet's) are background on
    whichever side they lie, and only marks darker or lighter than all the
    background nearby stand out as ink.

    Where the range's dark end lies more than ink's least contrast below a
    second estimate's, that one's is taken: made on a copy _FINER times
    larger, it finds a table's edge that much closer. Around the coarse
    cells, a dark table reached marks written up to a twentieth of the
    picture's longer side inside the sheet, and took as background as much
    of their ink as was no darker than the table (a number on a strip of
    paper was read faint, a form's line near the sheet's edge lost its end).
    Where the light changes slowly, the two differ by less than that, and
    the coarse range stays: taken everywhere, the finer one made faint print
    (a form's grid, a notebook's rules) stand out more beside single digits.
    Its windows are as wide: narrower ones let a bold digit darken the
    coarse estimate alone, and a grid beside it stood out.
    """
    factor = _light_factor(grey.shape)
    light = _median_light(grey, factor)
    low, middle, high = np.percentile(_border(light), [10, 50, 90])
    # Uneven: the light changes along most of the border (a lamp, vignetting, a shadow), or a large part
    # of the picture is brighter than its border (paper on a table). A bold digit's ink, which a median
    # cannot quite ignore, is darker than the paper and reaches a short stretch of the border at most;
    # a big light blob on black (a dot on the drawing canvas) covers less than _SHEET.
    if high - low < _EVEN_LIGHT and float(np.mean(light > middle + _EVEN_LIGHT)) < _SHEET:
        return None
    fine = -(-factor // _FINER)
    darkest = _around(light, np.minimum)
    # A picture no longer than the coarse grid (factor 1) has no finer copy: the same estimate, not made twice.
    finer = darkest if fine == factor else _around(_median_light(grey, fine), np.minimum)
    # Worked out on the grid of the runs of pixels that fall in one cell of each estimate, then spread out.
    (rows, down), (columns, across) = (_common_runs(n, factor, fine) for n in grey.shape)
    # The bright end stays the coarse estimate's: where the table fills most of the windows over a sheet,
    # the median is the table's, and the paper is background only as the brightest estimate around it.
    coarse = np.ix_(rows // factor, columns // factor)
    high, low = _around(light, np.maximum)[coarse], darkest[coarse]
    finer = finer[np.ix_(rows // fine, columns // fine)]
    low = np.where(finer - low > _MIN_CONTRAST, np.minimum(finer, high), low)
    low, high = (np.repeat(np.repeat(a, down, axis=0), across, axis=1) for a in (low, high))
    return np.clip(grey, low, high)


def _median_light(grey: np.ndarray, factor: int) -> np.ndarray:
    """The median brightness over windows of _LIGHT_WINDOW of a copy of the picture ``factor`` times smaller."""
    small = np.asarray(Image.fromarray(grey.astype(np.float32), "F").reduce(factor)) if factor > 1 else grey
    # Each way its own window: across a long strip (a number) a window of the longer side would reach
    # past the sheet's edges above and below and take the table for the paper.
    return _median_filter(small, tuple(max(3, int(_LIGHT_WINDOW * n) | 1) for n in small.shape))


def _around(light: np.ndarray, extreme: np.ufunc) -> np.ndarray:
    """The ``extreme`` (np.minimum, np.maximum) of a shrunken estimate within _AROUND of each of its cells."""
    spread = 2 * _AROUND + 1
    out = np.pad(light, _AROUND, mode="edge")
    for axis in (0, 1):  # a square's extreme: along the rows, of the extremes along the columns
        n = out.shape[axis] - spread + 1
        ends = out.take(range(n), axis=axis)
        for shift in range(1, spread):
            extreme(ends, out.take(range(shift, shift + n), axis=axis), out=ends)
        out = ends
    return out


def _common_runs(length: int, *factors: int) -> tuple[np.ndarray, np.ndarray]:
    """Along a side of ``length`` pixels, where each run of pixels in one cell of every grid of these
    ``factors`` starts, and how long it is."""
    starts = np.unique(np.concatenate([np.arange(0, length, factor) for factor in factors]))
    return starts, np.diff(starts, append=length)


def _light_factor(shape: tuple[int, int]) -> int:
    """The factor a picture of this ``shape`` is shrunk by to estimate the paper's light on (_LIGHT_WORK
    pixels along its longer side at most)."""
    return max(1, -(-max(shape) // _LIGHT_WORK))


def _median_filter(a: np.ndarray, windows: tuple[int, int]) -> np.ndarray:
    """Separable median (rows, then columns) over ``windows`` pixels (down, across; odd), edge pixels
    repeated."""
    a = np.asarray(a, np.float32)
    for axis in (1, 0):
        half = windows[axis] // 2
        along = a if axis == 1 else a.T
        padded = np.pad(along, [(0, 0), (half, half)], mode="edge")  # a ramp stays a ramp (mirroring would fold it)
        # The middle of each window once partitioned: np.median's answer for an odd window, four times faster
        # (it checks for NaN and averages the middle pair).
        windowed = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=1)
        middle = np.partition(windowed, half, axis=-1)[..., half]
        a = middle if axis == 1 else middle.T
    return np.ascontiguousarray(a)


def _ink_is_darker(grey: np.ndarray, light: np.ndarray) -> bool:
    """Under uneven light: is the ink darker than the paper around it (more dark marks than light ones)?

    Lighter marks are paper the light's estimate missed, not ink, when they
    are a blob as thick as _BLOB of the picture's shorter side (on a long
    strip the estimate can take the table's brightness at the sheet's dim
    end), or when a piece of them is only a little brighter than the estimate
    (_LIGHT_INK: a lamp-lit band along the sheet's edge, the lit side of a
    shadow's edge).
    """
    residual = grey - light  # zero wherever a pixel lies within the range of the background around it
    # Only marks of ink-like contrast count: a table's grain or texture is fainter.
    dark = np.clip(-residual - _MIN_CONTRAST, 0, None).sum()
    lighter = np.clip(residual - _MIN_CONTRAST, 0, None)
    if dark >= lighter.sum():  # no marks at all: paper; what follows only takes lighter marks away
        return True
    lighter *= ~_blobs(lighter > 0)
    return bool(dark >= _light_ink(lighter, grey, light))


def _light_ink(lighter: np.ndarray, grey: np.ndarray, light: np.ndarray) -> float:
    """The weight of the ``lighter`` marks in pieces (8-connected) on average at least _LIGHT_INK times as
    bright as the paper's estimate ``light`` under them (a geometric mean, weighted as the marks are).

    Averaged over a whole piece, not taken pixel by pixel: grain lifts single pixels of a lit band above
    any threshold, and a bold light digit's estimate takes some of its ink, lowering it at places.
    """
    marked = lighter > 0
    runs, piece = pieces(marked)
    if not len(runs):
        return 0.0
    # The marked pixels in row-major order are the runs' pixels in order, run after run.
    owner = np.repeat(piece, runs[:, 2] - runs[:, 1])
    weights = lighter[marked]
    weight = np.bincount(owner, weights)
    log_ratio = np.bincount(owner, weights * np.log(grey[marked] / np.maximum(light[marked], 1.0)))
    return float(weight[log_ratio >= math.log(_LIGHT_INK) * weight].sum())


def _blobs(mask: np.ndarray) -> np.ndarray:
    """Where the mask is part of a blob as thick as _BLOB of the shorter side: what is left of it, on a
    copy shrunk as _paper_light shrinks the picture, once opened by a square that thick."""
    h, w = mask.shape
    factor = _light_factor(mask.shape)
    small = Image.fromarray(mask.astype(np.uint8) * 255).reduce(factor).point(lambda v: 255 if v >= 128 else 0)
    side = max(3, round(_BLOB * min(small.size)) | 1)
    opened = small.filter(ImageFilter.MinFilter(side)).filter(ImageFilter.MaxFilter(side))
    return np.repeat(np.repeat(np.asarray(opened) > 0, factor, axis=0), factor, axis=1)[:h, :w] & mask


def _remove_background(bright: np.ndarray, light: np.ndarray | None = None, ink: str = "light") -> np.ndarray:
    """Ink strength 0..1: background level and paper noise estimated on the border, then removed.

    Under uneven ``light`` (the background's brightness, ink bright) each
    pixel is first divided by its paper's brightness, so ink reads the same
    in the shadow as under the lamp. Subtracting the background handles grey
    paper and dim photos; the noise margin above it zeroes JPEG ringing and
    paper grain that would otherwise widen the bounding box; the stretch
    makes the strongest ink 1.
    """
    if light is None:
        border = _border(bright)
        background = float(np.median(border))
        noise = 1.4826 * float(np.median(np.abs(border - background)))
    else:
        # Divided by the paper's brightness, but not by a dark table's (whose grain it would magnify).
        paper = 255.0 - light
        bright = 255.0 * (bright - light) / np.maximum(paper, float(paper.max()) / _DARKEST_PAPER)
        background = 0.0  # the background is what was divided out
        # The paper's grain from neighbour differences, wherever the paper is well lit (not on a
        # table, not in deep shadow): what is left of the light's slow changes does not count.
        lit = paper >= _WELL_LIT * float(paper.max())
        steps = np.diff(bright, axis=1)[lit[:, 1:] & lit[:, :-1]]
        noise = 1.4826 / math.sqrt(2) * float(np.median(np.abs(steps))) if steps.size else 0.0
    peak = float(bright.max())
    contrast = peak - background
    needed = max(_MIN_CONTRAST, _MIN_CONTRAST_NOISE * noise)
    if contrast < needed:
        paper = "paper" if ink == "dark" else "background"
        if needed > 255:  # no mark could stand out: say so rather than ask for more than 255 levels
            raise PreprocessingError(
                f"no ink found: the {paper} is too grainy to tell ink from it (its own grain is {noise:.0f} of 255, "
                f"and ink must stand out by {_MIN_CONTRAST_NOISE:g} times the grain)")
        grain = f" (the {paper}'s own grain is {noise:.0f})" if needed > _MIN_CONTRAST else ""
        raise PreprocessingError(
            f"no ink found: looked for {ink} ink at least {needed:.0f} of 255 {ink}er than the {paper}{grain}, "
            f"but the strongest mark differs from the {paper} by only {contrast:.0f}")
    floor = background + max(_NOISE_SIGMAS * noise, _NOISE_FRACTION * contrast)
    level = (bright - floor) * (1.0 / (peak - floor))
    np.clip(level, 0.0, 1.0, out=level)
    return level


def _digit_beside_rules(ink: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """Where the digit in a mask of ink begins and ends, its height, top and foot (rules.without_rules): its
    pieces at least _RULE_PIECE as tall as the tallest (a 7 whose thin bar is taken out falls apart), of
    those clear of the picture's edge when there are any (a table or a shadow beside a sheet can be
    taller); None without ink."""
    runs, piece = pieces(ink)
    if len(runs) == 0:
        return None
    box = piece_boxes(runs, piece, ink.shape)
    inside = (box[:, :2] > 0).all(axis=1) & (box[:, 2] < ink.shape[0]) & (box[:, 3] < ink.shape[1])
    box = box[inside] if inside.any() else box
    heights = box[:, 2] - box[:, 0]
    digit = box[heights >= _RULE_PIECE * heights.max()]
    top, foot = float(digit[:, 0].min()), float(digit[:, 2].max())
    return float(digit[:, 1].min()), float(digit[:, 3].max()), foot - top, top, foot


def _digit(level: np.ndarray, trimmed: bool = False) -> np.ndarray:
    """The digit's own ink, cropped: its main piece and the pieces beside it; clutter is zeroed.

    The main piece is the one with the most ink times its strongest, discounted by its distance from
    the middle, when it touches the picture's edge (see _EDGE_PIECE) and when it frames another.
    Pieces within reach of the digit join it, except specks outside its box, an underline below it
    (_UNDERLINE) and, unless the digit itself touches the edge, pieces at the edge, and faint pieces.
    A rule or grid line too faint to have been taken out with the rules, crossing the digit, is
    taken out first (``trimmed`` once it is).
    """
    runs, piece = pieces(level > 0)
    if len(runs) == 0:
        raise PreprocessingError("no ink found")
    h, w = level.shape
    count = int(piece.max()) + 1
    # Each run's ink (sum and strongest pixel), gathered per piece: faint texture weighs little.
    flat = np.append(level.ravel(), 0.0)
    bounds = np.stack([runs[:, 0] * w + runs[:, 1], runs[:, 0] * w + runs[:, 2]], axis=1).ravel()
    area = np.bincount(piece, weights=np.add.reduceat(flat, bounds)[::2], minlength=count)
    peak = np.zeros(count)
    np.maximum.at(peak, piece, np.maximum.reduceat(flat, bounds)[::2])
    box = piece_boxes(runs, piece, (h, w))
    at_edge = (box[:, 0] == 0) | (box[:, 1] == 0) | (box[:, 2] == h) | (box[:, 3] == w)
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2 / h, (box[:, 1] + box[:, 3]) / 2 / w], axis=1) - 0.5
    spans = (box[:, 2] - box[:, 0] >= _SPAN * h) | (box[:, 3] - box[:, 1] >= _SPAN * w)
    biggest = int(np.argmax(area))
    if at_edge[biggest] and spans[biggest] and not trimmed:
        # A faint rule or grid line (fainter than a rule is looked for among) crossing the digit joins it
        # into a piece as wide as the page: when the piece's stronger ink spans no such width, it goes.
        core = runs_mask(runs[piece == biggest], (0, 0, h, w)) & (level > _RULES.ink)
        rows, columns = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
        if len(rows) and rows[-1] + 1 - rows[0] < _SPAN * h and columns[-1] + 1 - columns[0] < _SPAN * w:
            return _digit(np.where(_morph(level > _RULES.ink, _FRINGE), level, 0.0), trimmed=True)
    edge_weight = np.where(at_edge & spans, _EDGE_LINE, np.where(at_edge, _EDGE_PIECE, 1.0))
    # The outline of a sheet on a table surrounds the digit: a piece whose box holds a sizeable piece less
    # than half its size, with its ink on all four sides of it, is a frame, not a digit. (A point under a
    # 7's bar or a speck beside a 6's stem lies in the digit's box too, but open to one side.)
    big = np.flatnonzero(area >= _SPECK * area.max())
    big = big[np.argsort(-area[big], kind="stable")[:_FRAMES]]  # pairs of them are compared
    size = box[big, 2:] - box[big, :2]
    holds = ((box[big, None, :2] < box[None, big, :2]).all(axis=2) & (box[big, None, 2:] > box[None, big, 2:]).all(axis=2)
             & (2 * size[None, :, :] < size[:, None, :]).all(axis=2) & (area[None, big] >= _SPECK * area[big, None]))
    for frame in np.flatnonzero(holds.any(axis=1)):
        own = runs[piece == big[frame]]
        if any(_encloses(own, box[big[held]]) for held in np.flatnonzero(holds[frame])):
            edge_weight[big[frame]] = _EDGE_LINE
    # Weighed by its strongest ink too: a long stripe of a table's grain can hold as much faint ink as a
    # small digit.
    score = area * peak * (1 - np.hypot(*centre.T)) * edge_weight
    main = int(np.argmax(score))
    wide = box[:, 3] - box[:, 1] >= _UNDERLINE * (box[:, 2] - box[:, 0])
    straight: dict[int, bool] = {}  # of the wide pieces that would join from below, as they come
    chosen = np.zeros(count, bool)
    chosen[main] = True
    group = box[main].copy()
    grew = True
    while grew:
        grew = False
        reach = _NEAR * max(group[2] - group[0], group[3] - group[1])
        inside = (box[:, 0] >= group[0]) & (box[:, 1] >= group[1]) & (box[:, 2] <= group[2]) & (box[:, 3] <= group[3])
        near = ((box[:, 0] < group[2] + reach) & (box[:, 2] > group[0] - reach)
                & (box[:, 1] < group[3] + reach) & (box[:, 3] > group[1] - reach))
        joins = (~chosen & near & ((inside & (area >= _DUST * area[main])) | (area >= _SPECK * area[main]))
                 & (~at_edge | at_edge[main])
                 & (peak >= _FAINT * peak[main]))
        spanned = np.minimum(box[:, 3], group[3]) - np.maximum(box[:, 1], group[1])
        below = joins & wide & (box[:, 0] >= group[2]) & (spanned >= _UNDER_SPAN * (group[3] - group[1]))
        for p in np.flatnonzero(below):  # an underline stays out
            if p not in straight:
                straight[p] = _straight(runs[piece == p], box[p])
            joins[p] = not straight[p]
        if joins.any():
            chosen |= joins
            group = np.concatenate([box[chosen, :2].min(axis=0), box[chosen, 2:].max(axis=0)])
            grew = True
    keep = runs_mask(runs[chosen[piece]], (0, 0, h, w))
    digit = np.where(keep, level, 0.0)[group[0] : group[2], group[1] : group[3]]
    return digit * (1.0 / float(digit.max()))


def _encloses(runs: np.ndarray, box: np.ndarray) -> bool:
    """Whether a piece's runs (pieces) have ink on all four sides of ``box`` (top, left, bottom, right;
    exclusive): left and right of it in its rows, above and below it in its columns."""
    top, left, bottom, right = box
    rows, starts, ends = runs.T
    level = (rows >= top) & (rows < bottom)
    across = (starts < right) & (ends > left)
    return bool((level & (ends <= left)).any() and (level & (starts >= right)).any()
                and ((rows < top) & across).any() and ((rows >= bottom) & across).any())


def _straight(runs: np.ndarray, box: np.ndarray) -> bool:
    """Whether a piece's runs (pieces) within its box make a straight band: column by column, the middle of
    its ink stays within the band's thickness (at least a pixel) of the line between its two ends."""
    mask = runs_mask(runs, tuple(box))
    thickness = mask.sum(axis=0)
    middle = (mask * np.arange(len(mask))[:, None]).sum(axis=0) / np.maximum(thickness, 1)
    line = np.linspace(middle[0], middle[-1], len(middle))
    inked = thickness > 0
    return bool(np.abs(middle - line)[inked].max() <= max(1.0, float(np.median(thickness[inked]))))


def _crop(level: np.ndarray) -> np.ndarray:
    """The ink's bounding box."""
    ink = level > 0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise PreprocessingError("no ink found")
    return level[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(level: np.ndarray) -> float:
    """Approximate stroke width in pixels: ink area over half the ink's perimeter.

    A stroke of length L and width w has area L*w and perimeter about 2L, so
    this is w for long strokes, without having to compute a skeleton.
    """
    ink = level > 0.5
    area = int(ink.sum())
    if area == 0:
        return 0.0
    padded = np.pad(ink, 1)
    perimeter = int((padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())
    return 2.0 * area / perimeter


def _stroke_to_mnist(digit: np.ndarray) -> np.ndarray:
    """Bring strokes far from MNIST's width back to it before the digit is shrunk to 20 pixels.

    Thin: a pen line of 1-2 pixels in a 500 pixel image is 0.05 pixels wide
    once scaled to 20 and fades to grey dust. Thick: a marker digit becomes a
    blob whose loops close. Only digits longer than _THICKEN_ABOVE pixels are
    touched (shorter ones are barely shrunk). The digit is reduced to about
    _THICKEN_WORK pixels (max-pooled when thin, so strokes stay bright) and
    dilated or eroded with an octagon, close to a round pen, until its
    strokes are _STROKE of its longer side.
    """
    longer = max(digit.shape)
    if longer <= _THICKEN_ABOVE:
        return digit
    width = stroke_width(digit)
    thin = width < _THIN * longer
    if not thin and width <= _THICK * longer:
        return digit
    factor = max(1, longer // _THICKEN_WORK)
    if factor > 1:
        digit = max_pool(digit, factor) if thin else _box_shrink(digit, factor)
        longer, width = max(digit.shape), stroke_width(digit)
    # Dilating by r widens strokes and the box by 2r: (w + 2r) = s (L + 2r); eroding likewise.
    radius = int(round(abs(_STROKE * longer - width) / (2 * (1 - _STROKE))))
    if radius < 1:
        return digit
    if thin:
        return _morph(np.pad(digit, radius), radius, np.maximum)
    eroded = _morph(np.pad(digit, 1), radius, np.minimum)
    return _crop(eroded) if eroded.max() > 0 else digit


def _box_shrink(a: np.ndarray, factor: int) -> np.ndarray:
    """Shrink by an integer factor averaging blocks (thick strokes need no care)."""
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").reduce(factor))


def _morph(a: np.ndarray, radius: int, op=np.maximum) -> np.ndarray:
    """Grey dilation (np.maximum) or erosion (np.minimum) by an octagon of the given radius.

    Alternating 3x3 squares and plus signs approximate a disc, so diagonal
    strokes change as much as straight ones.
    """
    out = a.copy()
    for step in range(radius):
        grown = out.copy()
        op(grown[1:], out[:-1], out=grown[1:])
        op(grown[:-1], out[1:], out=grown[:-1])
        if step % 2 == 0:  # square: the row result spread sideways too
            out = grown.copy()
            op(out[:, 1:], grown[:, :-1], out=out[:, 1:])
            op(out[:, :-1], grown[:, 1:], out=out[:, :-1])
        else:  # plus sign: rows and columns each from the same start
            op(grown[:, 1:], out[:, :-1], out=grown[:, 1:])
            op(grown[:, :-1], out[:, 1:], out=grown[:, :-1])
            out = grown
    return out


def _scale(digit: np.ndarray) -> np.ndarray:
    """Longer side to BOX pixels, aspect ratio kept exactly, anti-aliased; strongest ink back to 1.

    Both directions use the same factor: the shorter side ends in a partly
    covered pixel instead of being rounded to whole pixels, which would make
    a narrow digit (a "1") jump in width with tiny changes of the drawing.
    """
    h, w = digit.shape
    factor = BOX / max(h, w)
    if factor == 1.0:
        small = digit.astype(np.float32)
    else:
        size = (max(1, math.ceil(w * factor - 1e-6)), max(1, math.ceil(h * factor - 1e-6)))
        extra = math.ceil(1 / factor) + 1  # the box reaches up to one output pixel past the ink
        padded = np.pad(digit.astype(np.float32), ((0, extra), (0, extra)))
        box = (0.0, 0.0, size[0] / factor, size[1] / factor)
        small = np.asarray(Image.fromarray(padded, "F").resize(size, Image.Resampling.LANCZOS, box=box))
        small = np.clip(small, 0.0, None)  # Lanczos undershoots next to strokes
    top = float(small.max())
    if top <= 0:
        raise PreprocessingError("no ink found (the ink vanished when scaled down)")
    if top < 1.0:  # MNIST's strongest pixel is always 254-255: faint thin strokes are brought up to it
        small = small * (1.0 / top)
    else:  # Lanczos overshoots on strong strokes; dividing by the peak would dim every stroke
        small = np.minimum(small, 1.0)
    return small


def _place(small: np.ndarray) -> np.ndarray:
    """Paste into the 28x28 field with the centre of mass on (14, 14), as MNIST did (whole-pixel shift).

    The shift is limited so that the digit stays whole inside the field:
    losing ink costs more than being a pixel off centre (the models
    re-centre). MNIST itself did not limit it; 1.4% of its digits touch the edge.
    """
    h, w = small.shape
    total = float(small.sum())
    centre_row = float(small.sum(axis=1) @ np.arange(h)) / total
    centre_col = float(small.sum(axis=0) @ np.arange(w)) / total
    top = min(max(int(round(CENTRE - centre_row)), 0), IMAGE_SIDE - h)
    left = min(max(int(round(CENTRE - centre_col)), 0), IMAGE_SIDE - w)
    field = np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.float32)
    field[top : top + h, left : left + w] = small
    return np.clip(np.rint(field * 255.0), 0, 255).astype(np.uint8).reshape(-1)
