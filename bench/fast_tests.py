"""python -m bench.fast_tests: how long the fast tier (make test-fast) takes, in wall and CPU time.

Runs the tests `make test-fast` runs, over two processes (pytest-xdist), and
reports the wall time and the CPU time of pytest and everything it started
(servers, clients, the trainer), with the machine's load before and after,
so a figure from a busy machine reads as one. The test models are kept
between runs in pytest's cache (tests/conftest.py::trained_models), so a
run after any change but one to the training trains nothing: ``--cold``
first clears that cache, as on a fresh clone, and then runs the tier a
second time, warm, reporting both. ``--out FILE`` also writes the figures
as JSON (bench/results-fast-tests.json is one such run); the exit code is
pytest's, the first failing run's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, machine

PYTEST = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", "-q", "-m",
          "not slow and not heavy"]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(argv: list[str]) -> dict:
    """One run of the tier: its exit code, wall and CPU seconds, the load and speed of the machine."""
    facts = machine(numeric_threads=1)
    cpu, started = children_cpu_seconds(), time.perf_counter()
    code = subprocess.call(argv, cwd=ROOT)
    wall, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu
    facts["load_after"] = [round(v, 2) for v in os.getloadavg()]
    return {"exit_code": code, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "machine": facts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_tests", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true",
                        help="clear pytest's cache first (the kept test models), then run again warm")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    plan = {"cold": ["--cache-clear"], "warm": []} if args.cold else {"run": []}
    runs = {}
    for name, extra in plan.items():
        run = runs[name] = timed_run(PYTEST + extra + args.pytest_args)
        facts = run["machine"]
        print(f"make test-fast ({name}): {run['wall_seconds']:.1f} s wall, {run['cpu_seconds']:.1f} s CPU on "
              f"{facts['cores']} cores (load average {facts['load_before'][0]:.1f} before, "
              f"{facts['load_after'][0]:.1f} after; bench.common's Python loop {facts['python_loop_s']:.2f} s)")
        if run["exit_code"]:
            break
    if args.out:
        result = {"command": " ".join(["python"] + PYTEST[1:] + args.pytest_args), "runs": runs}
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return next((run["exit_code"] for run in runs.values() if run["exit_code"]), 0)


if __name__ == "__main__":
    sys.exit(main())
