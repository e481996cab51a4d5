"""What ``digits predict`` reads: image files, stroke files, folders, IDX files and .npy arrays.

Everything becomes a lazy stream of ``Item``s, one per digit, in input order,
so a folder of 100,000 images is read while earlier ones are being predicted.
Image and stroke files go through the shared preprocessing; IDX and .npy files
already hold MNIST-style 28x28 digits and are sent as they are. An image or a
stroke file piped into standard input is read too (:func:`piped_file`).
:func:`save_inputs` keeps a copy of what is sent, so a user can see what the model saw.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from clients import numbers
from clients.drawing import Drawing, DrawingError
from clients.preprocessing import PreprocessingError, load_image, to_mnist
from digitserve.contract import IMAGE_SIDE, PIXELS
from digitserve.idx import IdxError, idx_shape, read_idx

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
STROKES_SUFFIX = ".json"
ARRAY_SUFFIX = ".npy"


@dataclass(frozen=True)
class Item:
    source: str
    index: int | None = None  # position inside a file that holds many digits
    pixels: np.ndarray | None = None  # (784,) uint8, white ink on black
    label: int | None = None
    error: str | None = None
    digits_seen: int | None = None  # separate digits found in a picture or drawing of what should be one
    whole: Image.Image | np.ndarray | Drawing | None = None  # the input itself, to be read as a number


def is_idx(path: Path) -> bool:
    name = path.name.lower()
    return "ubyte" in name or name.endswith((".idx", ".idx.gz"))


def _as_pixels(array: np.ndarray, source: Path) -> np.ndarray:
    """MNIST-style arrays as (n, 784) uint8; floats in 0..1 are scaled to 0..255."""
    if array.ndim == 3 and array.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE):
        array = array.reshape(len(array), PIXELS)
    if array.ndim != 2 or array.shape[1] != PIXELS:
        raise ValueError(f"{source}: array of shape {array.shape}, expected (N, {IMAGE_SIDE}, {IMAGE_SIDE}) or (N, {PIXELS})")
    if array.dtype == np.uint8:
        return array
    values = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise ValueError(f"{source}: values must lie in 0..255 (or 0..1 for floats)")
    if np.issubdtype(array.dtype, np.floating) and values.max(initial=0) <= 1.0:
        values = values * 255
    return np.rint(values).astype(np.uint8)


_NPY_MAGIC = b"\x93NUMPY"


def _load_array(path: Path) -> np.ndarray:
    """A .npy file's array, memory-mapped; never unpickled. Raises ValueError saying what the file is not."""
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise ValueError(f"{path}: not a .npy array (it does not start with NumPy's header)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "object" in str(exc).lower():  # numpy's own words point to allow_pickle, which is not ours to offer
            raise ValueError(f"{path}: holds Python objects, not an array of numbers") from None
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None


def _array_items(path: Path, array: np.ndarray, labels: np.ndarray | None, whole: bool) -> Iterator[Item]:
    pixels = _as_pixels(array, path)
    if labels is not None and len(labels) != len(pixels):
        raise ValueError(f"{path}: {len(pixels)} images but {len(labels)} labels")
    for i, row in enumerate(pixels):
        label = None if labels is None else int(labels[i])
        yield Item(str(path), i, label=label, whole=row.reshape(IMAGE_SIDE, IMAGE_SIDE)) if whole else Item(str(path), i, row, label)


def _folder_label(path: Path) -> int | None:
    """Folders laid out as DIGIT/image.png carry their label in the folder name."""
    name = path.parent.name
    return int(name) if len(name) == 1 and name.isdigit() else None


def _single(path: Path, ink: str, whole: bool) -> Item:
    try:
        content = Drawing.load(path) if path.suffix.lower() == STROKES_SUFFIX else load_image(path)
        return _read(str(path), content, ink, whole, _folder_label(path))
    except (PreprocessingError, DrawingError, OSError) as exc:
        reason = str(exc)
        return Item(str(path), error=reason if str(path) in reason else f"{path}: {reason}")


def _read(source: str, content: Image.Image | Drawing, ink: str, whole: bool, label: int | None = None) -> Item:
    """The item of one picture or drawing: its 784 pixels and the separate digits seen, or itself if ``whole``."""
    if whole:
        return Item(source, whole=content)
    if isinstance(content, Drawing):
        pixels, seen = content.to_vector(), numbers.count_drawn(content)
    else:
        pixels, seen = to_mnist(content, ink, source=source), numbers.count_separate(content, ink)
    return Item(source, pixels=pixels, label=label, digits_seen=seen)


@dataclass(frozen=True)
class Piped:
    """An image or stroke file piped into standard input, in place of the paths ``-`` usually reads there."""

    data: bytes
    name: str = "<stdin>"

    def item(self, ink: str, whole: bool) -> Item:
        try:
            if _strokes(self.data):
                content = Drawing.from_json(self.data.decode("utf-8", errors="replace"), source=self.name)
            else:
                content = load_image(io.BytesIO(self.data), name=self.name)
            return _read(self.name, content, ink, whole)
        except (PreprocessingError, DrawingError) as exc:
            return Item(self.name, error=str(exc))


_PEEK = 4096


def _strokes(data: bytes) -> bool:
    """Do these bytes begin a stroke file (a JSON object)? No path one a line starts with ``{``."""
    return data.lstrip()[:1] == b"{"


def piped_file(stream: BinaryIO) -> Piped | None:
    """What ``stream`` holds if it is a file rather than paths one a line: a stroke file (JSON, which
    starts with ``{``) or anything that is not text (images: NUL bytes or bytes that are not UTF-8).

    Only the first bytes are looked at, without taking them, so that a list of paths is still read
    line by line as it comes.
    """
    peek = getattr(stream, "peek", None)
    head = (peek(_PEEK) if peek else b"")[:_PEEK]
    if not head:
        return None
    if not _strokes(head) and b"\0" not in head:
        try:
            head.decode("utf-8")
            return None
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut off where the look ended: still text
                return None
    return Piped(stream.read())


READABLE = "images, stroke files (.json), MNIST IDX files or .npy arrays"


def _readable(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES | {STROKES_SUFFIX, ARRAY_SUFFIX} or is_idx(path)


def _walk(folder: Path, warn: Callable[[str], None]) -> Iterator[Path]:
    """Readable files below a folder in sorted order, one directory listing in memory at a time.

    Files of other types are named in a warning, one per folder.
    """
    skipped = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            yield from _walk(path, warn)
        elif path.is_file() and _readable(path):
            yield path
        else:
            skipped.append(path.name)
    if skipped:
        names = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warn(f"{folder}: skipped {len(skipped)} file(s) that are not {READABLE}: {names}")


def _files(given: Path, warn: Callable[[str], None]) -> Iterator[Path]:
    if not given.is_dir():
        yield given
        return
    found = False
    for path in _walk(given, warn):
        found = True
        yield path
    if not found:
        warn(f"{given}: no {READABLE} in this folder")


def read_labels(path: str | Path) -> np.ndarray:
    """An MNIST IDX labels file, checked: one dimension of digits 0..9. Raises IdxError."""
    labels = read_idx(path)
    if labels.ndim != 1 or (labels.size and labels.max() > 9):
        raise IdxError(f"{path}: not a labels file: expected one digit 0..9 per image, "
                       f"found shape {labels.shape}")
    return labels


def count_digits(paths: Iterable[str | Path]) -> int | None:
    """How many digits ``read_items`` will yield, from file names and headers only; None if unknown."""
    total = 0
    for given in map(Path, paths):
        if str(given) == "-":
            return None
        files = _walk(given, lambda _: None) if given.is_dir() else [given]
        for path in files:
            try:
                if is_idx(path):
                    total += idx_shape(path)[0]
                elif path.suffix.lower() == ARRAY_SUFFIX:
                    total += len(_load_array(path))
                else:
                    total += 1
            except (IdxError, ValueError, OSError, IndexError, TypeError):
                total += 1  # an unreadable file is one failed item
    return total


def read_items(paths: Iterable[str | Path | Piped], ink: str = "auto", labels: np.ndarray | None = None,
               warn: Callable[[str], None] = lambda _: None, whole: bool = False) -> Iterator[Item]:
    """Every digit in the given paths, in order; unreadable inputs become items with an ``error``.

    ``whole``: items carry each picture or drawing itself (``Item.whole``), to be read as a number.
    """
    for given in paths:
        if isinstance(given, Piped):
            yield given.item(ink, whole)
            continue
        given = Path(given)
        if not given.exists():
            yield Item(str(given), error=f"{given}: no such file or folder")
            continue
        for path in _files(given, warn):
            try:
                if is_idx(path):
                    yield from _array_items(path, read_idx(path), labels, whole)
                elif path.suffix.lower() == ARRAY_SUFFIX:
                    yield from _array_items(path, _load_array(path), labels, whole)
                else:
                    yield _single(path, ink, whole)
            except (IdxError, ValueError, OSError) as exc:
                reason = str(exc)
                yield Item(str(path), error=reason if str(path) in reason else f"{path}: {reason}")


def saved_name(position: int, item: Item) -> str:
    """NNNNN-NAME.png, or NNNNN-NAME-INDEX.png for files of many digits: in input order, never clashing."""
    index = "" if item.index is None else f"-{item.index}"
    return f"{position:05d}-{Path(item.source).stem.strip('<>')}{index}.png"  # <stdin>: 00000-stdin.png


def save_inputs(items: Iterator[Item], folder: Path) -> Iterator[Item]:
    """Pass the items on, writing each digit's 28x28 image (as sent to the server) into ``folder``.

    The folder is made now, so that a folder that cannot be made is reported before anything is sent.
    """
    folder.mkdir(parents=True, exist_ok=True)

    def saving() -> Iterator[Item]:
        for position, item in enumerate(items):
            if item.pixels is not None:
                image = Image.fromarray(np.asarray(item.pixels, np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE), "L")
                image.save(folder / saved_name(position, item))
            yield item

    return saving()
