"""make bench (capacity): throughput with 1, 2 and 3 replicas on this machine, next to the in-process floor.

For each number of replicas (digits-server processes on loopback, one
client channel balancing over them with round_robin, as ``digits`` does) it
measures single-image requests from concurrent clients and a 10,000-image
run of parallel streams; in the same run the same model is called in-process
(single images from as many threads, and one batch). Wall-clock throughput
depends on what else the machine runs, so every phase also records the CPU
seconds the servers and this process spent and how busy the whole machine
was: images per server CPU-second is the capacity model's figure, and a
machine near 100% busy means the cores, not the software, set the limit.
Results go to bench/results-capacity.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, data_arguments, machine, mnist, model_manifest
from bench.process import ServerProcess
from bench.run import concurrent
from clients.connection import Connection, ConnectionOptions
from digitserve.artifacts import load_estimator
from digitserve.threads import limit_numeric_threads

TICKS = os.sysconf("SC_CLK_TCK")
TARGET_BUSY = 0.7  # plan cores to run at most this busy, leaving room for bursts and a replica lost


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (every process, other users' too)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


def measured(servers: list[ServerProcess], work) -> dict:
    """Run ``work`` (which returns how many images it had answered) and what it cost in time and CPU."""
    servers_before = [process_cpu_seconds(s.proc.pid) for s in servers]
    client_before = time.process_time()
    busy_before, total_before = machine_jiffies()
    started = time.perf_counter()
    extra = work()
    wall = time.perf_counter() - started
    busy_after, total_after = machine_jiffies()
    per_server = [process_cpu_seconds(s.proc.pid) - b for s, b in zip(servers, servers_before)]
    images = extra.pop("images")
    server_cpu = sum(per_server)
    return {"images": images, "seconds": round(wall, 3), "images_per_s": round(images / wall, 1),
            "server_cpu_s": round(server_cpu, 3), "client_cpu_s": round(time.process_time() - client_before, 3),
            "server_cores_used": round(server_cpu / wall, 2),
            "server_cpu_share": [round(c / server_cpu, 3) for c in per_server],
            "images_per_server_cpu_s": round(images / server_cpu, 1),
            "machine_busy": round((busy_after - busy_before) / max(1, total_after - total_before), 3), **extra}


def single_requests(address: str, model: str, images: np.ndarray, clients: int, per_client: int):
    def work() -> dict:
        connections = [Connection(ConnectionOptions(address=address)) for _ in range(clients)]
        try:
            for c in connections:
                c.predict(images[:1], model)  # connected before the clock runs
            latency = concurrent(lambda k: (lambda it=iter(range(10**9)): connections[k].predict(
                images[next(it) % len(images)][None], model)), clients, per_client)
        finally:
            for c in connections:
                c.close()
        return {"images": clients * per_client, "p50_ms": latency["p50"], "p99_ms": latency["p99"]}
    return work


def streams(address: str, model: str, images: np.ndarray, count: int, chunk: int):
    def work() -> dict:
        with Connection(ConnectionOptions(address=address)) as connection:
            chunks = (images[i:i + chunk] for i in range(0, len(images), chunk))
            answered = sum(len(a.digits) for a in connection.predict_streams(chunks, model, count))
        return {"images": answered, "streams": count}
    return work


def inprocess(estimator, images: np.ndarray, clients: int, per_client: int) -> dict:
    """The floor: the same model in this process, one numeric thread, single images from threads and one batch."""
    started, cpu = time.perf_counter(), time.process_time()
    estimator.predict_proba(images)
    batch_wall, batch_cpu = time.perf_counter() - started, time.process_time() - cpu
    cpu = time.process_time()
    single = concurrent(lambda k: (lambda: estimator.predict_proba(images[k:k + 1])), clients, per_client)
    single_cpu = time.process_time() - cpu
    return {"batch_images_per_s": round(len(images) / batch_wall, 1),
            "batch_images_per_cpu_s": round(len(images) / batch_cpu, 1),
            "single_images_per_s": single["requests_per_s"], "single_p50_ms": single["p50"],
            "single_images_per_cpu_s": round(clients * per_client / single_cpu, 1)}


def capacity_model(results: dict) -> dict:
    """Images per second one core gives (the median over the replica counts), and the cores a load needs."""
    per_core = {kind: float(np.median([r[kind]["images_per_server_cpu_s"] for r in results["replicas"]]))
                for kind in ("single", "stream")}

    def cores(load: float, kind: str) -> int:
        return math.ceil(load / (per_core[kind] * TARGET_BUSY))

    return {"single_images_per_core_s": round(per_core["single"], 1),
            "stream_images_per_core_s": round(per_core["stream"], 1), "target_busy": TARGET_BUSY,
            "cores_for": {**{f"{load} single images/s": cores(load, "single") for load in (100, 1000, 5000)},
                          **{f"{load} streamed images/s": cores(load, "stream") for load in (10000, 100000)}}}


def markdown(results: dict) -> str:
    m, base = results["machine"], results["inprocess"]
    lines = [f"Machine: {m['cores']} cores, load average {m['load_before']} before / {m['load_after']} after; "
             f"model {results['model']}; {results['clients']} clients for single images; numeric threads 1.", "",
             "| replicas | single images/s (p50, p99) | per server CPU-s | stream images/s | per server CPU-s | "
             "server cores used (single, stream) | machine busy (single, stream) | CPU share per replica (stream) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["replicas"]:
        s, t = r["single"], r["stream"]
        lines.append(f"| {r['count']} | {s['images_per_s']:.0f} ({s['p50_ms']:.1f}, {s['p99_ms']:.1f} ms) | "
                     f"{s['images_per_server_cpu_s']:.0f} | {t['images_per_s']:.0f} | {t['images_per_server_cpu_s']:.0f} | "
                     f"{s['server_cores_used']:.2f}, {t['server_cores_used']:.2f} | "
                     f"{s['machine_busy']:.0%}, {t['machine_busy']:.0%} | "
                     f"{' / '.join(f'{c:.0%}' for c in t['server_cpu_share'])} |")
    lines.append(f"| in-process | {base['single_images_per_s']:.0f} ({base['single_p50_ms']:.1f} ms p50) | "
                 f"{base['single_images_per_cpu_s']:.0f} | {base['batch_images_per_s']:.0f} (one batch) | "
                 f"{base['batch_images_per_cpu_s']:.0f} | - | - | - |")
    c = results["capacity"]
    lines += ["", f"Per server core: {c['single_images_per_core_s']:.0f} single images/s, "
                  f"{c['stream_images_per_core_s']:.0f} streamed images/s; cores needed at {c['target_busy']:.0%} "
                  "busy: " + ", ".join(f"{load}: {n}" for load, n in c["cores_for"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.capacity", description=__doc__.split("\n\n")[0]))
    parser.add_argument("--model", default="ensemble", help="the model to measure (default: ensemble)")
    parser.add_argument("--max-replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8, help="concurrent single-image clients")
    parser.add_argument("--requests", type=int, default=300, help="single-image requests per client")
    parser.add_argument("--chunk", type=int, default=500, help="images per stream chunk")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-capacity.json")
    args = parser.parse_args(argv)

    manifest = model_manifest(args.models_dir, args.model, "bench.capacity")
    if manifest is None:
        return 2
    images, _ = mnist(args.mnist_dir, "t10k")
    results: dict = {"model": args.model, "clients": args.clients, "requests_per_client": args.requests,
                     "chunk": args.chunk, "machine": {**machine(numeric_threads=1), "nice": os.nice(0)},
                     "replicas": []}
    with limit_numeric_threads(1):
        results["inprocess"] = inprocess(load_estimator(args.models_dir, manifest), images,
                                         args.clients, args.requests)
    for count in range(1, args.max_replicas + 1):
        print(f"bench.capacity: {count} replica(s), load average {os.getloadavg()[0]:.2f} ...", file=sys.stderr)
        servers = [ServerProcess(args.models_dir, env={"DIGITS_NUMERIC_THREADS": "1"}) for _ in range(count)]
        try:
            address = ",".join(s.address for s in servers)
            results["replicas"].append({
                "count": count, "load_average": [round(v, 2) for v in os.getloadavg()],
                "single": measured(servers, single_requests(address, args.model, images, args.clients, args.requests)),
                "stream": measured(servers, streams(address, args.model, images, count, args.chunk)),
            })
        finally:
            for s in servers:
                s.stop()
    results["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]
    results["capacity"] = capacity_model(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
