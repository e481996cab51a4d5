"""Which models are being served: loading, reloading and the default model.

The registry holds one immutable ``Snapshot`` of the loaded models. A request
takes the current snapshot once and keeps using it, so a reload, which builds
a new snapshot beside the old one and swaps it in with a single assignment,
never changes a model under a running request. A model whose new version fails
to load keeps serving its previous version.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol

from digitserve.artifacts import (MANIFEST_SUFFIX, ArtifactError, Manifest, find_manifests, load_estimator, printable,
                                  read_manifest)
from server.batching import MicroBatcher
from server.errors import ModelNotFound, NoModelLoaded, clip

log = logging.getLogger("digitserve.registry")

PREFERRED_DEFAULT = "ensemble"


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    estimator: Any
    load_seconds: float
    on_batch: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)
    batcher: MicroBatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batcher", MicroBatcher(self.estimator, self.on_batch))

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


@dataclass(frozen=True)
class Failure:
    name: str
    path: str
    reason: str


@dataclass(frozen=True)
class Snapshot:
    models: Mapping[str, LoadedModel]
    default: str | None
    # The last load failure of each model name, cleared by a successful load.
    failures: Mapping[str, Failure]


@dataclass
class ReloadReport:
    added: list[LoadedModel] = field(default_factory=list)
    updated: list[tuple[LoadedModel, str]] = field(default_factory=list)
    removed: list[LoadedModel] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    default: str | None = None
    seconds: float = 0.0


class RegistryObserver(Protocol):
    """What the server's metrics hear from the registry."""

    def reloaded(self, report: ReloadReport, snapshot: Snapshot) -> None: ...

    def batched(self, model: str, requests: int, images: int) -> None: ...


def _name_of(manifest_file: Path) -> str:
    """The model name a manifest file stands for, as valid UTF-8 even when the file name is not."""
    return printable(manifest_file.name[: -len(MANIFEST_SUFFIX)])


class ModelRegistry:
    """Loads the models of one folder and hands out consistent snapshots of them."""

    def __init__(self, directory: str | Path, default_model: str = "",
                 on_change: Callable[[Snapshot], None] | None = None, observer: RegistryObserver | None = None):
        self.directory = Path(directory)
        self.default_model = default_model
        self._on_change = on_change
        self._observer = observer
        self._reload_lock = threading.Lock()
        self._scanned: tuple = ()  # the folder as the last reload found it
        self._snapshot = Snapshot(MappingProxyType({}), None, MappingProxyType({}))

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def resolve(self, name: str) -> LoadedModel:
        """The model a request asks for by name; the default one for ``""``."""
        snap = self._snapshot
        if not snap.models:
            raise NoModelLoaded(f"no model is loaded yet from {self.directory}; "
                                "run digits-train and then Reload (digits reload)")
        wanted = name or snap.default
        model = snap.models.get(wanted)
        if model is None:
            raise ModelNotFound(f"model {clip(wanted)} not found; available: {', '.join(sorted(snap.models))}")
        return model

    def _choose_default(self, names: Mapping[str, LoadedModel]) -> str | None:
        for candidate in (self.default_model, PREFERRED_DEFAULT):
            if candidate and candidate in names:
                return candidate
        if self.default_model:
            log.warning("configured default model is not loaded", extra={"model": self.default_model})
        return min(names) if names else None

    def reload(self) -> ReloadReport:
        """Rescan the folder, load what is new or changed, drop what was removed."""
        with self._reload_lock:
            started = time.perf_counter()
            # Taken before the scan: a change while it runs differs from it, so the watcher reloads again.
            self._scanned = self.folder_signature()
            old = self._snapshot
            report = ReloadReport()
            models: dict[str, LoadedModel] = {}
            failures: dict[str, Failure] = {}
            try:
                manifest_files = find_manifests(self.directory)
            except OSError as exc:
                # A folder that vanished is not an empty one: keep serving everything.
                failure = Failure("", printable(str(self.directory)), f"cannot list the models folder: {exc.strerror}")
                log.error("models folder unreadable; still serving what was loaded",
                          extra={"models_dir": failure.path, "reason": failure.reason})
                report.failed.append(failure)
                report.unchanged, report.default = sorted(old.models), old.default
                report.seconds = time.perf_counter() - started
                return report
            present = {_name_of(p) for p in manifest_files}
            for path in manifest_files:
                name = _name_of(path)
                current = old.models.get(name)
                try:
                    manifest = read_manifest(path)
                    if current is not None and current.manifest.sha256 == manifest.sha256:
                        models[name] = current
                        report.unchanged.append(name)
                        continue
                    model = self._load(manifest)
                except Exception as exc:  # one bad model must never stop the others from loading
                    if isinstance(exc, ArtifactError):
                        failure = Failure(name, exc.path, exc.reason)
                    else:
                        log.exception("unexpected error loading a model", extra={"model": name})
                        failure = Failure(name, printable(str(path)), f"unexpected {type(exc).__name__}: {exc}")
                    report.failed.append(failure)
                    failures[name] = failure
                    log.error("model failed to load", extra={"model": name, "path": failure.path,
                                                             "reason": failure.reason})
                    if current is not None:
                        models[name] = current
                    continue
                models[name] = model
                if current is None:
                    report.added.append(model)
                else:
                    report.updated.append((model, current.version))
            report.removed = [m for n, m in old.models.items() if n not in present]
            for model in report.removed:
                log.info("model removed", extra={"model": model.name, "version": model.version})
            default = self._choose_default(models)
            self._snapshot = Snapshot(MappingProxyType(models), default, MappingProxyType(failures))
            report.default = default
            report.seconds = time.perf_counter() - started
            log.info("reload finished", extra={
                "added": len(report.added), "updated": len(report.updated), "removed": len(report.removed),
                "failed": len(report.failed), "unchanged": len(report.unchanged), "default": default,
                "seconds": round(report.seconds, 3)})
        if self._on_change is not None:
            self._on_change(self._snapshot)
        if self._observer is not None:
            self._observer.reloaded(report, self._snapshot)
        return report

    def folder_signature(self) -> tuple:
        """What changes when a manifest is written, replaced or removed, or the folder itself goes or comes."""
        try:
            paths = find_manifests(self.directory)
        except OSError as exc:
            return (("unlistable", exc.errno),)
        signature = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            signature.append((path.name, stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def watch(self, interval: float, stop: threading.Event) -> None:
        """Reload whenever the manifests differ from what the last reload scanned, checking every
        ``interval`` seconds until ``stop``.

        Nothing ends the watch but ``stop``: an error is logged and the next change is still picked up.
        """
        while not stop.wait(interval):
            try:
                if self.folder_signature() != self._scanned:
                    log.info("models folder changed", extra={"models_dir": str(self.directory)})
                    self.reload()
            except Exception:
                log.exception("watching the models folder failed; still watching",
                              extra={"models_dir": str(self.directory)})

    def _load(self, manifest: Manifest) -> LoadedModel:
        started = time.perf_counter()
        estimator = load_estimator(self.directory, manifest)
        seconds = time.perf_counter() - started
        # The installed version, read without importing scikit-learn at start-up: a server that
        # cannot start (a taken port, a bad certificate) says so before the models' libraries load.
        trained_with, running = manifest.libraries.get("scikit-learn"), version("scikit-learn")
        if trained_with and trained_with != running:
            log.warning("model trained with another scikit-learn", extra={
                "model": manifest.name, "trained_with": trained_with, "running": running})
        log.info("model loaded", extra={"model": manifest.name, "version": manifest.version,
                                        "kind": manifest.kind, "bytes": manifest.size_bytes,
                                        "seconds": round(seconds, 3)})
        on_batch = functools.partial(self._observer.batched, manifest.name) if self._observer else None
        return LoadedModel(manifest, estimator, seconds, on_batch)
