"""The IDX file format of the MNIST database, plain or gzip-compressed.

An IDX file is a big-endian header (two zero bytes, a type code, the number of
dimensions, then each dimension as uint32) followed by the values, row-major.
MNIST uses unsigned bytes: magic 2049 for labels (one dimension) and 2051 for
images (three: count, rows, columns).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

UBYTE = 0x08
LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051


class IdxError(ValueError):
    """A file that is not the IDX data it should be; the message names it."""


def _open(path: Path):
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read a whole unsigned-byte IDX file (``.gz`` or not) into an array."""
    path = Path(path)
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path}: cannot read: {exc}") from exc
    return parse_idx(data, path)


def idx_shape(path: str | Path) -> tuple[int, ...]:
    """The shape an IDX file's header announces, reading only the header."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 else 0
            dims = f.read(4 * ndim)
    except (OSError, EOFError) as exc:
        raise IdxError(f"{path}: cannot read: {exc}") from exc
    if len(head) < 4 or len(dims) < 4 * ndim or ndim == 0:
        raise IdxError(f"{path}: not an IDX file (the header is incomplete)")
    return struct.unpack(f">{ndim}I", dims)


def parse_idx(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Decode IDX bytes, checking the header against the length of the data."""
    if len(data) < 4:
        raise IdxError(f"{path}: {len(data)} bytes is too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != UBYTE or ndim == 0:
        magic = struct.unpack(">I", data[:4])[0]
        raise IdxError(f"{path}: magic number {magic} is not an unsigned-byte IDX file "
                       f"(expected {LABELS_MAGIC} for labels or {IMAGES_MAGIC} for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{path}: header announces {ndim} dimensions but the file ends after {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise IdxError(f"{path}: header announces shape {shape} ({expected} bytes) "
                       f"but the file holds {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def magic_of(array: np.ndarray) -> int:
    """The magic number an unsigned-byte IDX file of this array carries."""
    return (UBYTE << 8) | array.ndim


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write an unsigned-byte array as IDX; gzip when the name ends in ``.gz``."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic_of(array)) + struct.pack(f">{array.ndim}I", *array.shape)
    if compress is None:
        compress = path.suffix == ".gz"
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
