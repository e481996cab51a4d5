"""digits-server: build the gRPC server, load the models, serve until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from threadpoolctl import threadpool_limits

from server import logs
from server.inference import Predictor
from server.metrics import ServerMetrics
from server.registry import ModelRegistry, Snapshot
from server.servicer import SERVICE, DigitsServicer, OperatorToken
from server.settings import Settings, parse_settings

log = logging.getLogger("digitserve.server")


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    registry: ModelRegistry
    health: health.HealthServicer
    stream_pool: futures.ThreadPoolExecutor
    stopping: threading.Event
    metrics: ServerMetrics | None = None

    def stop(self, grace: float | None) -> None:
        """Refuse new calls, let running ones finish within ``grace`` seconds."""
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.stream_pool.shutdown(wait=False)
        if self.metrics is not None:
            self.metrics.stop()


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert:
        return None
    pair = (Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def start(settings: Settings) -> RunningServer:
    """Start serving on the settings' address, then load the models folder.

    Health reports NOT_SERVING until at least one model is loaded.
    """
    threadpool_limits(settings.numeric_threads)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)

    def publish(snapshot: Snapshot) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if snapshot.models else \
            health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            health_servicer.set(name, status)

    publish(Snapshot({}, None, {}))
    # Metrics first: a taken metrics port stops the server before it listens for calls.
    metrics = ServerMetrics() if settings.metrics_port else None
    if metrics is not None:
        metrics.serve(settings.host, settings.metrics_port)
    registry = ModelRegistry(settings.models_dir, settings.default_model, on_change=publish, observer=metrics)
    operator = OperatorToken(settings.token)
    reader = OperatorToken(settings.token if settings.protect_all else "")
    cores = os.cpu_count() or 2
    # Stream chunks run here, one per core; OpenMP limits are per thread, so each worker sets its own.
    stream_pool = futures.ThreadPoolExecutor(
        max_workers=cores, thread_name_prefix="stream",
        initializer=lambda: threadpool_limits(settings.numeric_threads, user_api="openmp"))
    servicer = DigitsServicer(registry, Predictor(registry), settings.max_batch, operator, reader,
                              stream_pool=stream_pool, stream_depth=cores)

    limit = settings.max_message_mb * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
               ("grpc.so_reuseport", 0)]
    if settings.max_connection_age > 0:
        # GOAWAY after this age makes clients reconnect (and re-resolve), so they reach replicas added since.
        options.append(("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000)))
    if settings.max_connection_age_grace > 0:
        options.append(("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace * 1000)))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        handlers=[servicer.handler()],
        interceptors=[metrics] if metrics is not None else None,
        maximum_concurrent_rpcs=settings.max_concurrent,
        options=options,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    credentials = _credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(settings.address)
    else:
        port = server.add_secure_port(settings.address, credentials)
    if port == 0:
        if metrics is not None:
            metrics.stop()
        raise OSError(f"cannot listen on {settings.address}")
    server.start()
    log.info("server started", extra={"address": f"{settings.host}:{port}", "tls": credentials is not None,
                                      "models_dir": str(settings.models_dir), "workers": settings.workers,
                                      "max_concurrent": settings.max_concurrent, "token": bool(settings.token),
                                      "metrics_port": settings.metrics_port})
    registry.reload()
    stopping = threading.Event()
    if settings.watch > 0:
        threading.Thread(target=registry.watch, args=(settings.watch, stopping), name="watch", daemon=True).start()
    return RunningServer(server, port, registry, health_servicer, stream_pool, stopping, metrics)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logs.configure(settings.log_level, settings.log_format)
    try:
        running = start(settings)
    except OSError as exc:
        log.error("server failed to start", extra={"reason": str(exc)})
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=running.registry.reload, daemon=True).start())
    stopping.wait()
    log.info("shutting down", extra={"grace_seconds": settings.grace})
    running.stop(settings.grace)
    log.info("server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
