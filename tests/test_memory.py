"""server.memory: the server caps glibc's malloc heaps, which kept growing under load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Eight threads free and allocate through the C library directly (ctypes lets go of the GIL), so they
# contend for heaps as the server's threads do; malloc_stats then lists one "Arena N:" per heap.
_CHURN = """
import ctypes, sys, threading
from server.memory import limit_malloc_arenas
print(limit_malloc_arenas(int(sys.argv[1])) if sys.argv[1] != "-" else None)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def churn():
    for _ in range(20000):
        libc.free(libc.malloc(4096))
threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()
"""


def _heaps(limit: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env or {})
    done = subprocess.run([sys.executable, "-c", _CHURN, limit], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip(), sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_heaps_are_capped_where_threads_contend():
    took, capped = _heaps("2")
    assert took == "True" and capped <= 2
    _, uncapped = _heaps("-")
    assert uncapped > 2  # what glibc does by itself: a heap for nearly every contending thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_malloc_arena_max_set_by_the_operator_wins():
    took, heaps = _heaps("1", {"MALLOC_ARENA_MAX": "3"})
    assert took == "False" and 1 < heaps <= 3
