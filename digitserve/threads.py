"""How many threads the numeric libraries (BLAS, OpenMP) may use, including the ones not loaded yet."""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

# Read by a library when it loads. The server and the benchmarks set their limit before scikit-learn
# (and with it scipy's OpenBLAS and scikit-learn's OpenMP) loads with the first model; left at one
# thread per core, those libraries make concurrent requests fight over the cores.
_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_numeric_threads(threads: int) -> threadpool_limits:
    """Limit the libraries loaded now and those loaded later to ``threads`` threads each.

    The result restores the loaded libraries' limits when used as a context manager (the
    variables for later libraries stay). OpenMP's limit belongs to the thread that sets it, so
    a thread pool calls this in each of its threads.
    """
    for variable in _VARIABLES:
        # Written once: pool threads call this as they start, while others may be reading the environment.
        if os.environ.get(variable) != str(threads):
            os.environ[variable] = str(threads)
    return threadpool_limits(threads)
