"""python -m bench.abuse: what undecodable requests and quiet clients cost a server.

Two measurements against a digits-server process with its default settings:

- memory: the server's resident memory before and after 3,000 undecodable
  requests to health's Check and to reflection's stream (after 1,000 to warm
  up), and the status codes they got;
- starvation: single Predicts and health checks (2 s deadline) timed while 8
  streams send one chunk and then say nothing (the default --workers), and
  while 8 streams keep the server busy and 64 more say nothing.

Results are merged into bench/results-abuse.json under ``--label`` (run it
with PYTHONPATH pointing at an older tree and ``--label before`` to compare).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from bench.common import ROOT, data_arguments, mnist, percentiles
from digitserve.v1 import digits_pb2 as pb

GARBAGE = b"\xff\xfe" * 300
GARBAGE_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")


def send_garbage(server: ServerProcess, method: str, calls: int, metadata=()) -> collections.Counter:
    """Send ``calls`` undecodable requests to ``method``; the status codes they got, by name."""
    streaming = method.endswith("ServerReflectionInfo")
    call = (server.channel.stream_stream if streaming else server.channel.unary_unary)(method)
    codes: collections.Counter = collections.Counter()
    for _ in range(calls):
        try:
            answer = call(iter([GARBAGE]) if streaming else GARBAGE, metadata=metadata, timeout=5)
            if streaming:
                list(answer)
            codes["OK"] += 1
        except grpc.RpcError as exc:
            codes[exc.code().name] += 1
    return codes


def garbage_growth(server: ServerProcess, method: str, calls: int = 3000, metadata=()) -> dict:
    """Resident memory growth over ``calls`` undecodable requests, after a third as many to warm up."""
    send_garbage(server, method, calls // 3, metadata)
    before = server.memory_kib()
    codes = send_garbage(server, method, calls, metadata)
    return {"calls": calls, "rss_growth_kib": server.memory_kib() - before, "codes": dict(codes)}


# How long a stream of the starvation run may live: the probes and the busy streams' backlog
# together, with room for a machine several times slower than usual.
STREAM_SECONDS = 180


def starvation(server: ServerProcess, images: np.ndarray, busy: int = 8, idle: int = 64, probes: int = 150) -> dict:
    """Single Predicts and health checks timed while ``busy`` streams work and ``idle`` ones say nothing."""
    chunk = pb.PredictRequest(u8=images[:64].tobytes(), model="svm")
    single = pb.PredictRequest(u8=images[:1].tobytes(), model="svm")
    release, stop = threading.Event(), threading.Event()
    outcomes = {"busy": collections.Counter(), "idle": collections.Counter()}

    def stream(kind: str) -> None:
        def requests():
            yield chunk
            while kind == "busy" and not stop.is_set():
                yield chunk
            release.wait(STREAM_SECONDS)
        try:
            for _ in server.stub.PredictStream(requests(), timeout=STREAM_SECONDS):
                pass
            outcomes[kind]["OK"] += 1
        except grpc.RpcError as exc:
            outcomes[kind][exc.code().name] += 1

    threads = [threading.Thread(target=stream, args=("busy",)) for _ in range(busy)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the busy streams first
    threads += [threading.Thread(target=stream, args=("idle",)) for _ in range(idle)]
    for t in threads[busy:]:
        t.start()
    time.sleep(1.0)
    health = health_pb2_grpc.HealthStub(server.channel)
    predict_s, health_s, failures = [], [], collections.Counter()
    try:
        for _ in range(probes):
            for call, request, times in ((server.stub.Predict, single, predict_s),
                                         (health.Check, health_pb2.HealthCheckRequest(), health_s)):
                started = time.perf_counter()
                try:
                    call(request, timeout=2)
                    times.append(time.perf_counter() - started)
                except grpc.RpcError as exc:
                    failures[exc.code().name] += 1
    finally:
        stop.set()
        release.set()
        for t in threads:
            t.join(timeout=60)

    predict, health_checks = (percentiles(times) if times else {} for times in (predict_s, health_s))
    return {"busy_streams": busy, "idle_streams": idle, "probes": probes,
            "predict_p50_ms": predict.get("p50"), "predict_p99_ms": predict.get("p99"),
            "health_p50_ms": health_checks.get("p50"), "health_p99_ms": health_checks.get("p99"),
            "probe_failures": dict(failures), "busy_outcomes": dict(outcomes["busy"]),
            "idle_outcomes": dict(outcomes["idle"])}


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="abuse", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--label", default="current")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    images = mnist(args.mnist_dir, "t10k", 64)[0]
    report = {}
    for method in GARBAGE_METHODS:
        server = ServerProcess(args.models_dir)
        report[method] = garbage_growth(server, method, args.calls)
        server.proc.kill()
        server.proc.wait()
    for name, busy, idle, probes in (("eight_idle_streams", 0, 8, 20), ("starvation", 8, 64, 150)):
        server = ServerProcess(args.models_dir)
        report[name] = starvation(server, images, busy, idle, probes)
        server.proc.kill()
        server.proc.wait()
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results-abuse.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.label] = report
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
