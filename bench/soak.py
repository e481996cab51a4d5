"""make soak: load, reload and bad-input campaigns against one server, for a bounded time.

Sixteen clients send single-image requests while a reloader swaps the svm
artifact back and forth and calls Reload, a third party sends malformed
requests to every method of every service the server registers (Digits,
health, reflection and whatever is added), idle clients hold more streams
open than the server allows, and a prober times health checks. Prints
requests sent, errors, bad inputs tried, reloads done, latency percentiles of
requests and health checks, what became of the idle streams, and the server's
memory after warm-up, at the end and at its peak; exits 1 if any good request
failed, any bad one got another answer than its own error, or memory kept
growing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.process import ServerProcess
from bench.common import ROOT, data_arguments, mnist, percentiles
from bench.services import registered_methods
from digitserve.artifacts import read_manifest
from digitserve.contract import PIXELS
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc


def publish(folder: Path, source: Path, name: str) -> None:
    """Copy a model version into the live folder the way the trainer writes: artifact, then manifest."""
    manifest = read_manifest(source / f"{name}.manifest.json")
    for file_name in (manifest.artifact, f"{name}.manifest.json"):
        tmp = folder / f".tmp-soak-{file_name}"
        shutil.copyfile(source / file_name, tmp)
        os.replace(tmp, folder / file_name)


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--requests", type=int, default=100_000, help="good requests to send (all clients)")
    parser.add_argument("--seconds", type=float, default=300, help="stop after this long at the latest")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--reload-every", type=float, default=0.25, help="seconds between reloads")
    parser.add_argument("--idle-streams", type=int, default=24,
                        help="clients holding a stream open without sending (the server allows 16)")
    args = parser.parse_args(argv)

    images = mnist(args.mnist_dir, "t10k", 256)[0]
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        live, other = Path(tmp) / "live", Path(tmp) / "other"
        shutil.copytree(args.models_dir, live)
        # A second svm version to swap with: the same model under another manifest version.
        shutil.copytree(args.models_dir, other)
        text = json.loads((other / "svm.manifest.json").read_text())
        text["version"] += "-swap"
        (other / "svm.manifest.json").write_text(json.dumps(text))
        versions = {read_manifest(live / "svm.manifest.json").version, text["version"]}

        server = ServerProcess(live, env={"DIGITS_NUMERIC_THREADS": "1"})
        stop = threading.Event()
        latencies: list[float] = []
        errors: list[str] = []
        counts = {"good": 0, "bad": 0, "bad_other_services": 0, "reloads": 0, "foreign_versions": 0}
        idle: dict[str, int] = {}
        health_latencies: list[float] = []
        lock = threading.Lock()
        warm = {"done": threading.Event(), "rss": 0.0}
        peak = {"rss": 0.0}

        def client(k: int) -> None:
            with grpc.insecure_channel(server.address) as channel:
                stub = digits_pb2_grpc.DigitsStub(channel)
                i = k
                while not stop.is_set():
                    request = pb.PredictRequest(u8=images[i % 256].tobytes(), model="svm" if i % 4 == 0 else "")
                    started = time.perf_counter()
                    try:
                        reply = stub.Predict(request, timeout=30)
                        elapsed = time.perf_counter() - started
                        with lock:
                            latencies.append(elapsed)
                            counts["good"] += 1
                            if reply.model == "svm" and reply.version not in versions:
                                counts["foreign_versions"] += 1
                            if counts["good"] >= args.requests:
                                stop.set()
                            if counts["good"] == args.requests // 10:
                                warm["rss"] = server.memory_kib() / 1024
                                warm["done"].set()
                    except grpc.RpcError as exc:
                        with lock:
                            errors.append(f"{exc.code().name}: {exc.details()}")
                    i += args.clients

        def reloader() -> None:
            k = 0
            while not stop.wait(args.reload_every):
                publish(live, other if k % 2 == 0 else args.models_dir, "svm")
                server.stub.Reload(pb.ReloadRequest(), timeout=60)
                with lock:
                    counts["reloads"] += 1
                k += 1

        def vandal() -> None:
            raw = server.channel.unary_unary("/digitserve.v1.Digits/Predict")
            bad = [b"\xff" * 50, pb.PredictRequest(u8=b"\x01" * 783).SerializeToString(),
                   pb.PredictRequest(model="nope", u8=bytes(PIXELS)).SerializeToString(),
                   pb.PredictRequest(f32=pb.FloatPixels(values=[300.0] * PIXELS)).SerializeToString()]
            k = 0
            while not stop.wait(0.002):
                try:
                    raw(bad[k % len(bad)], timeout=10)
                except grpc.RpcError as exc:
                    if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                        with lock:
                            errors.append(f"bad input answered {exc.code().name}")
                with lock:
                    counts["bad"] += 1
                k += 1

        methods = registered_methods(server.channel)  # before the idle clients take every stream slot

        def every_service_vandal() -> None:
            k = 0
            while not stop.wait(0.005):
                method = methods[k % len(methods)]
                garbage = b"\xff\xfe" * (1 + k % 300)
                try:
                    answer = method.raw_call(server.channel)(
                        iter([garbage]) if method.client_streaming else garbage, timeout=10)
                    if method.server_streaming:
                        list(answer)
                    errors.append(f"{method.path} answered undecodable bytes")
                except grpc.RpcError as exc:
                    # With the idle clients holding every stream slot, a new stream is refused first.
                    expected = {grpc.StatusCode.INVALID_ARGUMENT} | (
                        {grpc.StatusCode.RESOURCE_EXHAUSTED} if method.client_streaming else set())
                    if exc.code() not in expected:
                        errors.append(f"{method.path}: undecodable bytes answered {exc.code().name}")
                with lock:
                    counts["bad_other_services"] += 1
                k += 1

        def idler() -> None:
            """Opens a stream, sends one chunk and says nothing more; again whenever the server ends it."""
            stub = digits_pb2_grpc.DigitsStub(server.channel)
            while not stop.is_set():
                def requests():
                    yield pb.PredictRequest(u8=images[0].tobytes())
                    stop.wait()
                try:
                    for _ in stub.PredictStream(requests(), timeout=args.seconds + 60):
                        pass
                    outcome = "ended"
                except grpc.RpcError as exc:
                    outcome = exc.code().name
                with lock:
                    idle[outcome] = idle.get(outcome, 0) + 1
                stop.wait(0.5)

        def prober() -> None:
            health = health_pb2_grpc.HealthStub(server.channel)
            while not stop.wait(0.05):
                started = time.perf_counter()
                try:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                    health_latencies.append(time.perf_counter() - started)
                except grpc.RpcError as exc:
                    errors.append(f"health check: {exc.code().name}")

        def sampler() -> None:
            while not stop.wait(0.5):
                peak["rss"] = max(peak["rss"], server.memory_kib() / 1024)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        threads += [threading.Thread(target=f) for f in (reloader, vandal, every_service_vandal, prober, sampler)]
        threads += [threading.Thread(target=idler) for _ in range(args.idle_streams)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        end_rss = server.memory_kib() / 1024
        server.stop()

    p = percentiles(latencies) if latencies else {"p50": float("nan"), "p99": float("nan")}
    growth = end_rss - warm["rss"] if warm["done"].is_set() else float("nan")
    report = {
        "seconds": round(elapsed, 1), "requests": counts["good"], "errors": len(errors),
        "bad_inputs": counts["bad"], "bad_inputs_to_every_service": counts["bad_other_services"],
        "reloads": counts["reloads"], "idle_streams_ended": idle,
        "health_p99_ms": percentiles(health_latencies)["p99"] if health_latencies else None,
        "answers_from_unknown_versions": counts["foreign_versions"],
        "p50_ms": p["p50"], "p99_ms": p["p99"], "requests_per_s": round(counts["good"] / elapsed, 1),
        "rss_after_warmup_mb": round(warm["rss"], 1), "rss_end_mb": round(end_rss, 1),
        "rss_peak_mb": round(max(peak["rss"], end_rss), 1), "rss_growth_mb": round(growth, 1),
    }
    print(json.dumps(report, indent=2))
    for line in errors[:5]:
        print("error:", line, file=sys.stderr)
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results-soak.json").write_text(json.dumps(report, indent=2) + "\n")
    healthy = not errors and not counts["foreign_versions"] and (math.isnan(growth) or growth < 25)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
