"""What every benchmark module shares: where things are, timing, percentiles, the data flags."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from digitserve.artifacts import Manifest, find_manifests, read_manifest
from digitserve.contract import PIXELS
from digitserve.idx import read_idx
from digitserve.settings import Setting, add_settings

ROOT = Path(__file__).resolve().parents[1]


def write_sections(path: Path, sections: dict) -> None:
    """Write ``sections`` into the results file at ``path``, keeping the sections other benches wrote there."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results.update(sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of durations in seconds, as milliseconds."""
    ms = np.asarray(seconds) * 1000
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def timed(call, repeats: int) -> list[float]:
    """The duration of each of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


MODELS_DIR = Setting("--models-dir", "DIGITS_MODELS_DIR", Path("models"), "the trained models")
MNIST_DIR = Setting("--mnist-dir", "MNIST_DIR", ROOT.parent / "shared" / "mnist",
                    "folder holding the four MNIST .gz files")
DATA = (MODELS_DIR, MNIST_DIR)


def data_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--models-dir and --mnist-dir, shared by every benchmark."""
    add_settings(parser, DATA)
    return parser


def mnist(mnist_dir: Path, part: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``train`` or ``t10k`` images as (n, 784) uint8 and their labels, the first ``limit`` of them."""
    images = read_idx(mnist_dir / f"{part}-images-idx3-ubyte.gz").reshape(-1, PIXELS)[:limit]
    return images, read_idx(mnist_dir / f"{part}-labels-idx1-ubyte.gz")[:limit]


def python_loop_seconds() -> float:
    """A fixed plain-Python loop, timed: how fast this machine is right now, to compare runs by."""
    started = time.perf_counter()
    sum(i * i for i in range(5_000_000))
    return round(time.perf_counter() - started, 2)


def machine(numeric_threads: int) -> dict:
    """The facts a reader needs to weigh a result: cores, load, speed, thread count, Python, CPU and BLAS."""
    return {"cores": os.cpu_count(), "load_before": [round(v, 2) for v in os.getloadavg()],
            "python_loop_s": python_loop_seconds(), "numeric_threads": numeric_threads,
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu": _cpu_model(), "blas": _blas_kernels()}


def _cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _blas_kernels() -> list[str]:
    """Each loaded BLAS with the CPU kernels it chose: under other kernels the same seeded recipe can
    fit slightly different models, so a change of host shows in the results."""
    from threadpoolctl import threadpool_info

    return sorted({f"{lib['internal_api']} {lib['version']} {lib.get('architecture') or ''}".strip()
                   for lib in threadpool_info() if lib["user_api"] == "blas"})


def model_manifest(models_dir: Path, name: str, prog: str) -> Manifest | None:
    """The manifest of model ``name`` in the models folder, or None after saying on stderr how to get it."""
    found = {m.name: m for m in map(read_manifest, find_manifests(models_dir))}
    if name not in found:
        print(f"{prog}: no model {name!r} in {models_dir}; run digits-train (or make train) first", file=sys.stderr)
    return found.get(name)
