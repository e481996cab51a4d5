"""The MNIST data set: found in a folder or downloaded, always verified.

The four canonical IDX files are checked by the sha256 of their uncompressed
content (a mirror may gzip them differently), by their IDX header, and by the
shape and label range MNIST must have.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitserve.contract import CLASSES, IMAGE_SIDE, PIXELS
from digitserve.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, parse_idx
from digitserve.settings import Setting


@dataclass(frozen=True)
class MnistFile:
    name: str
    sha256: str
    shape: tuple[int, ...]


FILES = {
    "train_images": MnistFile("train-images-idx3-ubyte.gz",
                              "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", (60000, IMAGE_SIDE, IMAGE_SIDE)),
    "train_labels": MnistFile("train-labels-idx1-ubyte.gz",
                              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", (60000,)),
    "test_images": MnistFile("t10k-images-idx3-ubyte.gz",
                             "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", (10000, IMAGE_SIDE, IMAGE_SIDE)),
    "test_labels": MnistFile("t10k-labels-idx1-ubyte.gz",
                             "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", (10000,)),
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
# Variables without a flag (the trainer's flags are in trainer/main.py).
CACHE_DIR = Setting("", "DIGITS_CACHE_DIR", None, "download cache", type=Path, shown="~/.cache/digitserve")
MIRROR_LIST = Setting("", "DIGITS_MNIST_MIRRORS", "", "comma-separated download mirrors, tried in order")


class MnistError(Exception):
    """MNIST could not be found, read or downloaded; the message says which file and why."""


@dataclass(frozen=True)
class Mnist:
    train_images: np.ndarray  # (60000, 784) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 784) uint8
    test_labels: np.ndarray  # (10000,) uint8
    source: str


def mirrors() -> list[str]:
    """Download locations, in order; ``DIGITS_MNIST_MIRRORS`` (comma-separated) replaces them."""
    chosen = [m.strip() for m in MIRROR_LIST.read().split(",") if m.strip()] or list(MIRRORS)
    return [m if m.endswith("/") else m + "/" for m in chosen]


def cache_dir() -> Path:
    base = CACHE_DIR.read() or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digitserve"
    return Path(base) / "mnist"


def read_verified(path: Path, spec: MnistFile) -> np.ndarray:
    """Read one MNIST file and check its content digest, header and shape."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise MnistError(f"{path}: missing") from exc
    except (OSError, EOFError) as exc:
        raise MnistError(f"{path}: not a readable gzip file ({exc})") from exc
    expected_magic = LABELS_MAGIC if len(spec.shape) == 1 else IMAGES_MAGIC
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise MnistError(f"{path}: magic number {magic}, expected {expected_magic} "
                         f"({'labels' if len(spec.shape) == 1 else 'images'}) for {spec.name}")
    try:
        array = parse_idx(data, path)
    except IdxError as exc:
        raise MnistError(str(exc)) from exc
    if array.shape != spec.shape:
        raise MnistError(f"{path}: shape is {array.shape}, expected {spec.shape} for {spec.name}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise MnistError(f"{path}: content sha256 is {digest}, expected {spec.sha256} (damaged or a different file)")
    if array.ndim == 1 and array.max(initial=0) > max(CLASSES):
        raise MnistError(f"{path}: holds label {int(array.max())}, expected digits 0..{max(CLASSES)}")
    return array


def download(spec: MnistFile, folder: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch one file from the first mirror that serves it intact into ``folder``."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.name
    failures = []
    for mirror in mirrors():
        url = mirror + spec.name
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {spec.name}",
                          disable=not progress, leave=False) as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
            read_verified(Path(tmp), spec)
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, MnistError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url}: {reason}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise MnistError(f"could not download {spec.name}; tried:\n  " + "\n  ".join(failures) +
                     "\nOffline? Put the four MNIST files in a folder and pass --mnist-dir (or set MNIST_DIR).")


def load_mnist(mnist_dir: str | Path | None = None, progress: bool = True) -> Mnist:
    """The verified MNIST data: from ``mnist_dir`` if given, else the cache, downloading what is missing."""
    if mnist_dir is not None:
        folder, fetch = Path(mnist_dir), False
        if not folder.is_dir():
            raise MnistError(f"{folder}: MNIST folder does not exist")
    else:
        folder, fetch = cache_dir(), True
    arrays = {}
    for key, spec in FILES.items():
        path = folder / spec.name
        if fetch and not path.exists():
            path = download(spec, folder, progress)
        arrays[key] = read_verified(path, spec)
    return Mnist(
        train_images=arrays["train_images"].reshape(-1, PIXELS),
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"].reshape(-1, PIXELS),
        test_labels=arrays["test_labels"],
        source=str(folder),
    )

