"""The model artifact format: how the trainer writes models and the server loads them.

A models folder holds, for every model NAME:

- ``NAME-<digest>.joblib``: the fitted estimator, pickled by joblib with
  ``COMPRESSION``; the file name carries the first 12 hex digits of its sha256,
  so a new version never overwrites the file a server may be reading;
- ``NAME.manifest.json``: what the model is (``Manifest``), including the
  artifact's file name, sha256 and size.

Writers write each file under a temporary dot-name and rename it into place,
artifacts first, manifests last: a reader sees either the old manifest or the
new one, never half a file; a ``Publication`` renames a whole training run's
files only once all of them are written. The server loads an artifact only when its bytes
match the manifest's digest and only from the folder itself.

Unpickling runs code: whoever can write the models folder can run code in the
server. Only the trainer (or an operator) may write it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import numpy as np

from digitserve.contract import CLASSES, PIXELS
# The artifact format: the manifest's fields and what the pickled classes of
# digitserve.estimators store and compute. It changes with either, and an
# artifact of another format is refused with "retrain it". 2: ensembles vote
# with scikit-learn's VotingClassifier (the SoftVote class of format 1 is gone).
# 3: the ensemble votes through digitserve.confidence.Calibrated. 4: Calibrated
# also judges shapes (a small learnt network); NearestNeighbours votes alike for every batch size.
# 5: the judge of shapes also sees the features themselves; Calibrated has a quantile per measure.
# 6: Calibrated's judge of shapes is the mean of several networks (``judges``).
# 7: DigitFeatures pools the stroke directions with Gaussians around cell centres, not in square cells.
FORMAT_VERSION = 7
MANIFEST_SUFFIX = ".manifest.json"
ARTIFACT_SUFFIX = ".joblib"
TEMP_PREFIX = ".tmp-"
# lz4: about half the size of an uncompressed pickle for twice its (short)
# load time, and loads three times faster than zlib or gzip at 20% more bytes;
# `make bench` measures them all ("compression" in bench/results.json).
COMPRESSION = ("lz4", 3)
KINDS = ("knn", "svm", "rf", "ensemble")
_REQUIRED = ("name", "kind", "version", "artifact", "sha256", "size_bytes", "created",
             "training_samples", "probabilities")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MANIFEST_MAX_BYTES = 1024 * 1024  # a real manifest is about 1 KiB
# What the final step of each kind of model may be: ours, or scikit-learn's own.
KIND_ESTIMATORS = {"knn": ("NearestNeighbours", "KNeighborsClassifier"), "svm": ("KernelSVM", "SVC"),
                   "rf": ("PackedForest", "RandomForestClassifier"), "ensemble": ("VotingClassifier",)}


class ArtifactError(Exception):
    """An artifact or manifest that cannot be served; the message says why."""

    def __init__(self, path: Path | str, reason: str):
        self.path = printable(str(path))
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def printable(text: str) -> str:
    """A file name as valid UTF-8: bytes that are not are shown as escapes (\\xff)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Manifest:
    """Everything known about one model version, stored as JSON beside it."""

    name: str
    kind: str
    version: str
    artifact: str
    sha256: str
    size_bytes: int
    created: str
    training_samples: int
    probabilities: str
    members: list[str] = field(default_factory=list)
    compression: str = ""
    libraries: dict[str, str] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    @property
    def test_accuracy(self) -> float:
        return float(self.evaluation.get("accuracy", 0.0))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def check_name(name: str) -> str:
    """Model names become file names: letters, digits, ``_ . -``, at most 64."""
    if not _NAME.match(name):
        raise ValueError(f"model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def manifest_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{check_name(name)}{MANIFEST_SUFFIX}"


def library_versions() -> dict[str, str]:
    import joblib
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "joblib": joblib.__version__}


def _write_temp(directory: Path, data: bytes) -> Path:
    """``data`` in a new temporary file in ``directory``, on disk (fsynced) before it is renamed."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


class PublishError(OSError):
    """A file of a publication could not be written; ``published`` names what was renamed into place."""

    def __init__(self, path: Path, cause: OSError, published: list[str]):
        super().__init__(f"cannot write {path}: {cause.strerror or cause}")
        self.errno = cause.errno
        self.path = path
        self.published = published


class Publication:
    """Files written under temporary names, then renamed into place together.

    A training run stages every artifact and manifest and publishes them only
    once all are written, so a full disk or a crash midway leaves the folder's
    set of models as it was. ``publish`` renames the artifacts first, then the
    other files in the order staged (members' manifests before their
    ensemble's). Unpublished temporary files are removed on leaving the block.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._staged: list[tuple[Path, str]] = []  # (temporary file, final name)

    def __enter__(self) -> Publication:
        return self

    def __exit__(self, *exc) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []

    def stage(self, final_name: str, data: bytes) -> None:
        try:
            self._staged.append((_write_temp(self.directory, data), final_name))
        except OSError as exc:
            raise PublishError(self.directory / final_name, exc, []) from exc

    def stage_model(self, name: str, kind: str, estimator: Any, *, training_samples: int, probabilities: str,
                    members: list[str] | None = None, evaluation: dict[str, Any] | None = None) -> Manifest:
        """Stage a model's artifact and manifest; returns the manifest."""
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
        data = serialize(estimator)
        digest = hashlib.sha256(data).hexdigest()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        manifest = Manifest(
            name=name, kind=kind, version=f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}",
            artifact=f"{check_name(name)}-{digest[:12]}{ARTIFACT_SUFFIX}",
            sha256=digest, size_bytes=len(data), created=now.isoformat().replace("+00:00", "Z"),
            training_samples=int(training_samples), probabilities=probabilities,
            members=list(members or []), compression="-".join(map(str, COMPRESSION)),
            libraries=library_versions(), evaluation=evaluation or {},
        )
        self.stage(manifest.artifact, data)
        self.stage(manifest_path(self.directory, name).name, manifest.to_json().encode())
        return manifest

    def publish(self) -> list[str]:
        """Rename everything staged into place; returns the final names, in order."""
        order = sorted(self._staged, key=lambda staged: not staged[1].endswith(ARTIFACT_SUFFIX))
        published: list[str] = []
        for tmp, final in order:
            try:
                os.replace(tmp, self.directory / final)
            except OSError as exc:
                raise PublishError(self.directory / final, exc, published) from exc
            published.append(final)
        self._staged = [(tmp, final) for tmp, final in self._staged if final not in published]
        _fsync_dir(self.directory)
        return published


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def serialize(estimator: Any, compression: tuple[str, int] = COMPRESSION) -> bytes:
    """The estimator as joblib bytes with the given compression."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=compression)
    return buffer.getvalue()


def find_manifests(directory: str | Path) -> list[Path]:
    """The manifests in a models folder, sorted by model name.

    Raises OSError when the folder is missing, unreadable or not a folder, so a
    vanished folder is never mistaken for an empty one.
    """
    directory = Path(directory)
    with os.scandir(directory) as entries:
        names = [e.name for e in entries if e.name.endswith(MANIFEST_SUFFIX) and not e.name.startswith(".")]
    return [directory / name for name in sorted(names)]


def read_folder_file(path: Path, limit: int, expected_size: int | None = None) -> bytes:
    """The bytes of a regular file inside its folder (symbolic links may not lead out of it), at most ``limit``.

    A FIFO, a device or a directory is refused without being read, so nothing
    in the folder can block a reader or feed it without end.
    """
    folder = os.path.realpath(path.parent)
    if os.path.commonpath([folder, os.path.realpath(path)]) != folder:
        raise ArtifactError(path, f"is a link to {os.path.realpath(path)}, outside the models folder {folder}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO must not wait for a writer
    except OSError as exc:
        raise ArtifactError(path, f"cannot open: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(path, "not a regular file")
        if info.st_size > limit:
            raise ArtifactError(path, f"is {info.st_size:,} bytes, over the limit of {limit:,}")
        if expected_size is not None and info.st_size != expected_size:
            raise ArtifactError(path, f"size is {info.st_size} bytes, manifest says {expected_size} "
                                      "(truncated or replaced)")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit)
    finally:
        os.close(fd)


def _wrong_type(name: str, value: Any, hint: Any) -> str | None:
    """Why a manifest field does not have its declared type, or None when it does."""
    kind, args = get_origin(hint) or hint, get_args(hint)
    if type(value) is bool or not isinstance(value, kind):
        return f"field {name!r} is {type(value).__name__}, expected {kind.__name__}"
    if kind is int:
        return None if 0 <= value < 2**63 else f"field {name!r} is {value}, expected a whole number from 0"
    if kind is str:
        texts = [value]
    elif kind is list:
        texts = value
    else:  # a dict: its keys are text, and its values too for dict[str, str]
        texts = list(value) + (list(value.values()) if args[1] is str else [])
    for text in texts:
        if not isinstance(text, str):
            return f"field {name!r} holds {type(text).__name__}, expected str"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"field {name!r} is not valid Unicode text"
    return None


def read_manifest(path: str | Path) -> Manifest:
    """Parse and check a manifest; raises ArtifactError naming the field at fault."""
    path = Path(path)
    expected_name = path.name[: -len(MANIFEST_SUFFIX)]
    if not _NAME.match(expected_name):
        raise ArtifactError(path, "the file name is not a model name: use 1-64 letters, digits, '_', '.' or '-', "
                                  "starting with a letter or digit")
    try:
        raw = json.loads(read_folder_file(path, MANIFEST_MAX_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ArtifactError(path, f"unreadable manifest: {reason}") from exc
    if not isinstance(raw, dict):
        raise ArtifactError(path, "manifest must be a JSON object")
    if raw.get("format") != FORMAT_VERSION:
        raise ArtifactError(path, f"artifact format {raw.get('format')!r}, this digitserve reads format "
                                  f"{FORMAT_VERSION}: retrain it with this version's digits-train")
    missing = [n for n in _REQUIRED if n not in raw]
    if missing:
        raise ArtifactError(path, f"missing field(s) {', '.join(missing)}")
    hints = get_type_hints(Manifest)
    for name, value in raw.items():
        problem = _wrong_type(name, value, hints[name]) if name in hints else None
        if problem:
            raise ArtifactError(path, problem)
    accuracy = raw.get("evaluation", {}).get("accuracy", 0.0)
    if type(accuracy) not in (int, float):
        raise ArtifactError(path, f"field 'evaluation.accuracy' is {accuracy!r}, expected a number")
    manifest = Manifest(**{k: v for k, v in raw.items() if k in hints})
    if manifest.name != expected_name:
        raise ArtifactError(path, f"field 'name' is {manifest.name!r}, expected {expected_name!r} (the file name)")
    if manifest.kind not in KINDS:
        raise ArtifactError(path, f"field 'kind' is {manifest.kind!r}, expected one of {', '.join(KINDS)}")
    artifact = manifest.artifact
    if Path(artifact).name != artifact or artifact.startswith(".") or not artifact.endswith(ARTIFACT_SUFFIX):
        raise ArtifactError(path, f"field 'artifact' is {artifact!r}, expected a *{ARTIFACT_SUFFIX} file "
                                  f"name inside the models folder")
    if not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
        raise ArtifactError(path, "field 'sha256' must be 64 lowercase hex digits")
    return manifest


def load_estimator(directory: str | Path, manifest: Manifest) -> Any:
    """Read, verify and unpickle the artifact a manifest names.

    The bytes are hashed and unpickled from one read, so what was verified is
    what runs. The estimator is then checked to answer 784-pixel images with
    probabilities for the ten digits.
    """
    import joblib

    path = Path(directory) / manifest.artifact
    try:
        data = read_folder_file(path, manifest.size_bytes, expected_size=manifest.size_bytes)
    except ArtifactError as exc:
        raise ArtifactError(path, f"cannot read artifact: {exc.reason}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256:
        raise ArtifactError(path, f"sha256 is {digest}, manifest says {manifest.sha256}")
    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling can fail in any way
        raise ArtifactError(path, f"not a loadable joblib artifact: {type(exc).__name__}: {exc}") from exc
    check_estimator(path, estimator)
    check_kind(path, manifest.kind, estimator)
    return estimator


def check_kind(path: Path | str, kind: str, estimator: Any) -> None:
    """Refuse an artifact whose model is not the kind its manifest says."""
    from digitserve.confidence import Calibrated

    final = estimator
    while hasattr(final, "steps") or isinstance(final, Calibrated):
        # Pipelines may nest (the classifier is the last step of the last one); a calibration wraps it.
        final = final.model if isinstance(final, Calibrated) else final.steps[-1][1]
    if type(final).__name__ not in KIND_ESTIMATORS[kind]:
        raise ArtifactError(path, f"the manifest says kind {kind!r}, but the model is a {type(final).__name__}")


def check_estimator(path: Path | str, estimator: Any) -> None:
    """Refuse anything that is not a classifier of 784-pixel images into the ten digits."""
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ArtifactError(path, f"holds a {type(estimator).__name__}, not a classifier with predict_proba")
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features != PIXELS:
        raise ArtifactError(path, f"model expects {n_features} input values per image, expected {PIXELS}")
    classes = getattr(estimator, "classes_", None)
    if classes is None or list(np.asarray(classes).tolist()) != list(CLASSES):
        raise ArtifactError(path, f"model classes are {classes!r}, expected the digits 0..9")
    try:
        probe = np.asarray(estimator.predict_proba(np.zeros((2, PIXELS), np.uint8)))
    except Exception as exc:
        raise ArtifactError(path, f"model fails on a test image: {type(exc).__name__}: {exc}") from exc
    if probe.shape != (2, len(CLASSES)) or not np.all(np.isfinite(probe)):
        raise ArtifactError(path, f"model answers a test image with shape {probe.shape}, expected (2, {len(CLASSES)}) probabilities")


def remove_leftovers(directory: str | Path) -> list[Path]:
    """Delete temporary files of interrupted writes and artifacts no manifest names."""
    directory = Path(directory)
    referenced = set()
    for path in find_manifests(directory):
        try:
            referenced.add(read_manifest(path).artifact)
        except ArtifactError:
            continue
    removed = []
    for path in directory.iterdir():
        stale_temp = path.name.startswith(TEMP_PREFIX)
        orphan = path.suffix == ARTIFACT_SUFFIX and path.name not in referenced
        if path.is_file() and (stale_temp or orphan):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
