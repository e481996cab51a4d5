"""digits-server as a child process on loopback: what the benchmark, the soak and the fault tests drive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digitserve.v1 import digits_pb2_grpc

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nobody listens on now, for servers that must come back on the same port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """Starts ``digits-server`` with the given flags and waits until it reports SERVING."""

    def __init__(self, models_dir: Path, *flags: str, port: int = 0, env: dict[str, str] | None = None,
                 timeout: float = 30.0):
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(BIN / "digits-server"), "--models-dir", str(models_dir), "--host", "127.0.0.1",
             "--port", str(port), "--log-format", "json", *flags],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.port = int(json.loads(self.proc.stderr.readline())["address"].rsplit(":", 1)[1])
        self.address = f"127.0.0.1:{self.port}"
        self.log: list[str] = []  # the rest of the server's log lines
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
        self.channel = grpc.insecure_channel(self.address)
        self.stub = digits_pb2_grpc.DigitsStub(self.channel)
        health = health_pb2_grpc.HealthStub(self.channel)
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.perf_counter() - started > timeout or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError(f"digits-server on {self.address} did not start serving")
            time.sleep(0.005)
        self.start_to_serving = time.perf_counter() - started

    def memory_kib(self, field: str = "VmRSS") -> int:
        """Resident memory now (VmRSS) or at its peak (VmHWM), from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith(field + ":")).split()[1])

    def stop(self) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=30)
