"""What Prometheus metrics cost: single-image latency with and without --metrics-port, in one run.

Two servers over the same models run side by side, one with metrics and one
without; one client's single-image requests alternate between them, so both
see the same moments of a shared machine. Also measures one scrape of
/metrics after the traffic. Results go to bench/results-metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.process import ServerProcess, free_port
from bench.common import ROOT, data_arguments, mnist, percentiles, timed
from digitserve.artifacts import find_manifests
from digitserve.threads import limit_numeric_threads
from digitserve.v1 import digits_pb2 as pb


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.metrics", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--rounds", type=int, default=6, help="rounds per server, alternating")
    parser.add_argument("--requests", type=int, default=500, help="single-image requests per round")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-metrics.json")
    args = parser.parse_args(argv)
    if not find_manifests(args.models_dir):
        print(f"bench.metrics: no models in {args.models_dir}; run digits-train (or make train) first",
              file=sys.stderr)
        return 2
    images = mnist(args.mnist_dir, "t10k", 64)[0]
    requests = [pb.PredictRequest(u8=image.tobytes()) for image in images]
    metrics_port = free_port()
    load_before = [round(v, 2) for v in os.getloadavg()]
    env = {"DIGITS_NUMERIC_THREADS": "1"}
    with limit_numeric_threads(1):
        servers = {"without": ServerProcess(args.models_dir, env=env),
                   "with": ServerProcess(args.models_dir, "--metrics-port", str(metrics_port), env=env)}
        try:
            for server in servers.values():
                for request in requests * 2:  # warm the connections and the models
                    server.stub.Predict(request)
            rounds = []
            for r in range(args.rounds):
                # Requests alternate between the two servers, so both see the same moments of a busy machine.
                times: dict[str, list[float]] = {"without": [], "with": []}
                for k in range(args.requests * 2):
                    name = ("without", "with")[(k + r) % 2]
                    times[name] += timed(lambda: servers[name].stub.Predict(requests[k // 2 % len(requests)]), 1)
                row = {name: percentiles(seconds) for name, seconds in times.items()}
                rounds.append(row)
                print(f"bench.metrics: round {r + 1}: p50 {row['without']['p50']} ms without, "
                      f"{row['with']['p50']} ms with", file=sys.stderr)
            scrapes, size = [], 0
            for _ in range(20):
                started = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
                    size = len(reply.read())
                scrapes.append(time.perf_counter() - started)
        finally:
            for server in servers.values():
                server.stop()

    without = np.array([r["without"]["p50"] for r in rounds])
    with_ = np.array([r["with"]["p50"] for r in rounds])
    results = {
        "machine": {"cores": os.cpu_count(), "load_before": load_before,
                    "load_after": [round(v, 2) for v in os.getloadavg()], "numeric_threads": 1},
        "model": "default (ensemble when present)",
        "requests_per_round": args.requests,
        "rounds": rounds,
        "p50_without_ms": round(float(np.median(without)), 3),
        "p50_with_ms": round(float(np.median(with_)), 3),
        "overhead_p50_ms": round(float(np.median(with_ - without)), 3),
        "overhead_p50_spread_ms": [round(float((with_ - without).min()), 3), round(float((with_ - without).max()), 3)],
        "overhead_p50_pct": round(float(np.median((with_ - without) / without) * 100), 1),
        "scrape_ms": percentiles(scrapes),
        "scrape_bytes": size,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"single-image p50: {results['p50_without_ms']} ms without metrics, {results['p50_with_ms']} ms with "
          f"(median difference {results['overhead_p50_ms']:+} ms, {results['overhead_p50_pct']:+}%, "
          f"rounds {results['overhead_p50_spread_ms']}); a scrape takes {results['scrape_ms']['p50']} ms "
          f"for {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
