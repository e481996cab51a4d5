"""python -m bench.containers [--cold]: the container test's duration, the image sizes, start-to-healthy.

Runs tests/test_containers.py as `make test-containers` does (build the three images, run the
compose stack under podman), times the whole run and writes bench/results-containers.json with
the figures the test measured. A warm run reuses what an earlier run left: the stand-in base
image, the images' layers and the builds' pip cache. --cold removes all three first, so the run
includes deploy/setup-host.sh building the base image again (the Debian packages stay installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results-containers.json"
BASE_IMAGE = os.environ.get("DIGITS_BASE_IMAGE") or (ROOT / "deploy" / "podman" / "stand-in-base").read_text().strip()
IMAGES = [f"localhost/digitserve-{service}:test" for service in ("server", "trainer", "client")]
BUILD_STAGES = [image.replace(":", "-build:") for image in IMAGES]  # build-images.sh keeps them as the cache
# RUN --mount=type=cache keeps pip's downloads here between podman builds
BUILD_CACHE = Path(os.environ.get("TMPDIR", "/var/tmp")) / f"buildah-cache-{os.getuid()}"
TARGETS = {"server_image_mb": 350, "client_image_mb": 200, "start_to_healthy_s": 5.0,
           "warm_test_s": 300, "cold_test_s": 720}


def forget_caches() -> None:
    """What a machine that never ran the container test lacks (besides the Debian packages)."""
    subprocess.run(["podman", "rmi", "--force", *IMAGES, *BUILD_STAGES, BASE_IMAGE], capture_output=True, timeout=300)
    subprocess.run(["podman", "image", "prune", "--force"], capture_output=True, timeout=300)
    shutil.rmtree(BUILD_CACHE, ignore_errors=True)


def run(cold: bool) -> dict:
    if cold:
        forget_caches()
    with tempfile.TemporaryDirectory() as folder:
        figures_file = Path(folder) / "figures.json"
        env = {**os.environ, "DIGITS_CONTAINER_RESULTS": str(figures_file), "DIGITS_REQUIRE_CONTAINERS": "1"}
        started = time.monotonic()
        subprocess.run([str(ROOT / "deploy/setup-host.sh")], check=True, timeout=1800)
        setup = time.monotonic() - started
        test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_containers.py"], cwd=ROOT, env=env, timeout=1800)
        total = time.monotonic() - started
        figures = json.loads(figures_file.read_text()) if figures_file.exists() else {}
    return {"passed": test.returncode == 0, "seconds": round(total, 1), "host_setup_seconds": round(setup, 1),
            **figures}


def verdicts(results: dict) -> dict[str, str]:
    warm, cold = results.get("warm", {}), results.get("cold", {})
    measured = {
        "server_image_mb": warm.get("image_mb", {}).get("server"),
        "client_image_mb": warm.get("image_mb", {}).get("client"),
        "start_to_healthy_s": warm.get("start_to_healthy_seconds"),
        "warm_test_s": warm.get("seconds"),
        "cold_test_s": cold.get("seconds"),
    }
    return {name: "-" if value is None else ("PASS" if value <= TARGETS[name] else "MISS") + f" {value} <= {TARGETS[name]}"
            for name, value in measured.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.containers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="remove the images, the base image and the pip cache first")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    mode = "cold" if args.cold else "warm"
    results[mode] = {"cpus": os.cpu_count(), **run(args.cold)}
    results["targets"] = TARGETS
    results["verdicts"] = verdicts(results)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({mode: results[mode], "verdicts": results["verdicts"]}, indent=1))
    return 0 if results[mode]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
