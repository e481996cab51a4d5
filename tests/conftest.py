"""Shared fixtures: MNIST from MNIST_DIR, models trained on a subset, real servers on loopback.

Tiers: ``make test`` runs everything; ``make test-fast`` (the inner loop, over
two processes) leaves out tests marked ``slow`` (the full training) or ``heavy`` (a
whole-system run of several seconds: containers, killed processes, memory
over thousands of requests). Mark a new test ``heavy`` when it takes seconds
by design; the markers are declared in pyproject.toml.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import grpc
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from bench.process import free_port  # noqa: F401  (the tests import it from here)
from digitserve.idx import read_idx
from digitserve.v1 import digits_pb2_grpc
from server.main import RunningServer, start
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TRAIN_LIMIT = 2500
# The flags of a training run that only needs some new model version: one core, no styled or
# pen-redrawn copies, one network judging shapes, no report pictures.
QUICK_TRAINING = ["--styles", "0", "--pens", "0", "--judges", "1", "--jobs", "1", "--no-report"]


# Each test's seconds (setup, call and teardown) in the latest run that ran it, in pytest's cache.
TEST_SECONDS = "digitserve/test-seconds"
_seconds: dict[str, float] = {}
_past_seconds = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    """Read the past seconds once, in the process that starts the run (the workers get them handed over).

    pytest-xdist stops when its workers collect the tests in different orders:
    were each to read the cache, a run finishing meanwhile could change it.
    """
    if hasattr(config, "workerinput"):
        config.stash[_past_seconds] = config.workerinput.get(TEST_SECONDS, {})
    else:
        cache = getattr(config, "cache", None)
        config.stash[_past_seconds] = cache.get(TEST_SECONDS, {}) if cache else {}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: only called when it runs workers
def pytest_configure_node(node) -> None:
    node.workerinput[TEST_SECONDS] = node.config.stash[_past_seconds]


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files so that two processes finish together, one training the test models while the other works.

    The first file that needs the trained models goes first (its process
    starts the training at once, unless an earlier run kept them), then every
    file that needs none, then the rest. Within each group the files that took
    longest in earlier runs go first (a test never timed counts as a second),
    so the last files handed out are short ones. pytest-xdist's
    ``--dist loadfile`` hands out files in this order. Within a file the order
    is unchanged.
    """
    seconds = config.stash[_past_seconds]
    needs: dict[Path, bool] = {}
    took: dict[Path, float] = {}
    for item in items:
        needs[item.path] = needs.get(item.path, False) or "trained_models" in item.fixturenames
        took[item.path] = took.get(item.path, 0.0) + seconds.get(item.nodeid, 1.0)
    first = next((path for path, need in needs.items() if need), None)
    rank = {path: 0 if path == first else 1 if not need else 2 for path, need in needs.items()}
    items.sort(key=lambda item: (rank[item.path], -took[item.path]))  # stable: each file's tests keep their order


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache and _seconds and not hasattr(session.config, "workerinput"):  # the one process that saw every test
        cache.set(TEST_SECONDS, {**cache.get(TEST_SECONDS, {}), **{k: round(v, 3) for k, v in _seconds.items()}})


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_digits(capsys: pytest.CaptureFixture, *argv: str) -> Ran:
    """The digits command run in this process, with what it printed (a test of it as its own process runs it)."""
    from clients.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


@pytest.fixture(scope="session", autouse=True)
def one_numeric_thread():
    """One BLAS/OpenMP thread, as the server runs (and sets for the whole process when a test starts one).

    On a busy two-core machine threaded BLAS mostly waits for itself: the
    estimator tests took 42 s with two threads and 10 s with one.
    """
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = Path(os.environ.get("MNIST_DIR") or ROOT.parent / "shared" / "mnist")
    if not (folder / "t10k-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST files not found in {folder}: set MNIST_DIR to the folder holding them")
    return folder


@pytest.fixture(scope="session")
def test_digits(mnist_dir) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test images as (n, 784) uint8, and their labels."""
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    return images, read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")


def training_key(argv: list[str]) -> str:
    """A digest of everything a training reads: its code, the numeric libraries' versions and the flags.

    Not MNIST itself: the trainer refuses any file whose content is not the canonical one
    (the digests of trainer.mnist.FILES).
    """
    digest = hashlib.sha256("\0".join(argv).encode())
    code = (path for package in ("clients", "digitserve", "trainer") for path in (ROOT / package).rglob("*.py"))
    for path in sorted(code):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    for library in ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl", "pillow"):
        digest.update(f"{library} {metadata.version(library)}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def trained_models(mnist_dir, pytestconfig, tmp_path_factory) -> Path:
    """All four models trained by digits-train on a subset; treat as read-only (copy to change).

    They are kept in pytest's cache folder (.pytest_cache) under the ``training_key`` of their
    training, so a run after a change to anything else trains nothing; ``--cache-clear`` trains anew.
    """
    from trainer.main import main as train

    # Both cores: under pytest -n 2 the other worker soon runs out of tests that need no models. One network
    # for the judge of shapes: the four the default averages steady its letter figure (bench.confidence),
    # and the tests' limits hold with one.
    argv = ["--mnist-dir", str(mnist_dir), "--limit", str(TRAIN_LIMIT), "--jobs", "2", "--judges", "1",
            "--no-report"]
    cache = getattr(pytestconfig, "cache", None)  # None under -p no:cacheprovider: then kept for this run only
    folder = cache.mkdir("trained-models") if cache else tmp_path_factory.mktemp("trained-models")
    out = folder / training_key(argv)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest -n: the other workers wait here for the first one's models
        if not (out / "training-summary.json").exists():  # there only once a training run succeeded
            for stale in folder.iterdir():  # models of an earlier key
                if stale.is_dir():
                    shutil.rmtree(stale)
            assert train(argv + ["--out", str(out)]) == 0
    return out


@pytest.fixture
def models_copy(trained_models, tmp_path) -> Path:
    """A private, writable copy of the trained models folder."""
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    return folder


def require_system_package(present: bool, package: str, variable: str, what: str) -> None:
    """Skip ``what`` with one line naming the missing Debian package, or fail when ``variable``=1
    (.ci/run sets it: there the package must be installed, and a skip would hide that)."""
    if present:
        return
    message = f"{what} need the Debian package {package} (deploy/setup-host.sh installs it when run as root)"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message}; {variable}=1 says they must run", pytrace=False)
    pytest.skip(message, allow_module_level=True)  # so a module can skip all its tests in one line


class Serving:
    """A running server and a stub on a channel to it."""

    def __init__(self, running: RunningServer, settings: Settings):
        self.running = running
        self.settings = settings
        self.address = f"127.0.0.1:{running.port}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = digits_pb2_grpc.DigitsStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.running.stop(grace=1)


@pytest.fixture
def serve():
    """Start servers with given settings; all are stopped after the test."""
    started: list[Serving] = []

    def _serve(models_dir: Path, **overrides) -> Serving:
        settings = Settings(**{"host": "127.0.0.1", "port": 0, **overrides}, models_dir=Path(models_dir))
        serving = Serving(start(settings), settings)
        started.append(serving)
        return serving

    yield _serve
    for serving in started:
        serving.close()


@pytest.fixture
def server(serve, models_copy) -> Serving:
    """A server over a private copy of the trained models."""
    return serve(models_copy)
