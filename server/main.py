"""digits-server: build the gRPC server, load the models, serve until SIGTERM."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from digitserve import exits
from digitserve.open_inference import grpc_service_pb2_grpc
from digitserve.threads import limit_numeric_threads
from digitserve.v1 import digits_pb2_grpc
from server import logs
from server.access import Access
from server.described import enable_reflection
from server.inference import Predictor
from server.memory import limit_malloc_arenas
from server.metrics import ServerMetrics
from server.interceptor import CallGate
from server.open_inference import SERVICE as OPEN_INFERENCE, OpenInferenceServicer
from server.registry import ModelRegistry, Snapshot
from server.servicer import SERVICE, DigitsServicer
from server.settings import Settings, parse_settings
from server.streams import StreamLimits

log = logging.getLogger("digitserve.server")


class StartupError(Exception):
    """The server cannot start; the message says why in one line, ``code`` is the exit code (digitserve/exits.py)."""

    def __init__(self, message: str, code: int = exits.FAILED):
        super().__init__(message)
        self.code = code


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    registry: ModelRegistry
    health: health.HealthServicer
    stream_pool: futures.ThreadPoolExecutor
    stopping: threading.Event
    metrics: ServerMetrics | None = None
    health_server: grpc.Server | None = None

    def stop(self, grace: float | None) -> None:
        """Refuse new calls, let running ones finish within ``grace`` seconds."""
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.stream_pool.shutdown(wait=False, cancel_futures=True)
        if self.metrics is not None:
            self.metrics.stop()
        if self.health_server is not None:
            self.health_server.stop(None)


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials, checked with Python's ssl first: grpcio reports bad PEM files only as a failed bind."""
    if not settings.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password=lambda: b"")
    except OSError as exc:
        if not isinstance(exc, ssl.SSLError):
            raise StartupError(f"cannot read {exc.filename}: {exc.strerror}", exits.LOCAL_FILE) from exc
        raise StartupError(f"--tls-cert {settings.tls_cert} and --tls-key {settings.tls_key} are not a PEM "
                           f"certificate chain and its unencrypted private key ({exc.reason or exc})",
                           exits.LOCAL_FILE) from exc
    if settings.tls_client_ca:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca)
        except OSError as exc:
            raise StartupError(f"--tls-client-ca {settings.tls_client_ca} is not a readable PEM CA bundle "
                               f"({getattr(exc, 'reason', None) or exc.strerror or exc})", exits.LOCAL_FILE) from exc
    pair = (Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())
    client_ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def _check_address_free(settings: Settings) -> None:
    """Bind the address once ourselves: grpcio reports a failed bind with a C++ log line and no reason."""
    if settings.port == 0:
        return
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
                settings.host.strip("[]") or None, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio does
                probe.bind(address)
    except OSError as exc:
        # Only a port taken or forbidden is certain to fail; for the rest (no IPv6 here, say) grpcio decides.
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise StartupError(f"cannot listen on {settings.address}: {exc.strerror}") from exc


def _start_health_server(settings: Settings, health_servicer: health.HealthServicer) -> grpc.Server:
    """grpc.health.v1 alone, in plaintext, for probes that cannot speak the main port's TLS."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
                         options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.health_host}:{settings.health_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio's "Failed to bind"
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {address} (--health-port)")
    server.start()
    return server


def _listen(server: grpc.Server, settings: Settings, credentials: grpc.ServerCredentials | None) -> int:
    _check_address_free(settings)
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.address)
        else:
            port = server.add_secure_port(settings.address, credentials)
    except RuntimeError:  # grpcio's "Failed to bind"
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {settings.address}: the port is in use or the address is not local")
    return port


def start(settings: Settings) -> RunningServer:
    """Listen on the settings' address, load the models folder, then serve.

    Health reports NOT_SERVING while no model is loaded. Raises
    StartupError when the server cannot listen or its TLS files are unusable.
    """
    credentials = _credentials(settings)
    limit_numeric_threads(settings.numeric_threads)
    limit_malloc_arenas(os.cpu_count() or 2)  # before any of the server's threads allocate
    health_servicer = health.HealthServicer(experimental_non_blocking=True)

    def publish(snapshot: Snapshot) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if snapshot.models else \
            health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE, OPEN_INFERENCE):
            health_servicer.set(name, status)

    publish(Snapshot({}, None, {}))
    # Metrics first: a taken metrics port stops the server before it listens for calls.
    metrics = ServerMetrics() if settings.metrics_port else None
    if metrics is not None:
        try:
            metrics.serve(settings.host, settings.metrics_port)
        except OSError as exc:
            raise StartupError(str(exc)) from exc
    registry = ModelRegistry(settings.models_dir, settings.default_model, on_change=publish, observer=metrics)
    cores = os.cpu_count() or 2
    # Stream chunks are computed here, one per core, whichever thread reads the stream.
    stream_pool = futures.ThreadPoolExecutor(max_workers=cores, thread_name_prefix="stream",
                                             initializer=limit_numeric_threads,
                                             initargs=(settings.numeric_threads,))
    predictor = Predictor(registry)
    servicer = DigitsServicer(registry, predictor, settings.max_batch, stream_pool=stream_pool,
                              stream_depth=cores)
    streams = StreamLimits(settings.max_streams, settings.stream_idle_timeout)
    limit = settings.max_message_mb * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
               ("grpc.so_reuseport", 0)]
    if settings.max_connection_age > 0:
        # GOAWAY after this age makes clients reconnect (and re-resolve), so they reach replicas added since.
        options.append(("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000)))
    if settings.max_connection_age_grace > 0:
        options.append(("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace * 1000)))
    server = grpc.server(
        # Request streams hold a thread while they run: they get --max-streams threads of their own.
        futures.ThreadPoolExecutor(max_workers=settings.workers + settings.max_streams, thread_name_prefix="rpc",
                                   initializer=limit_numeric_threads, initargs=(settings.numeric_threads,)),
        # Metrics outermost, so they count the calls the gate refuses too.
        interceptors=[*([metrics] if metrics is not None else []),
                      CallGate(Access(settings.token, settings.protect_all), streams)],
        maximum_concurrent_rpcs=settings.max_concurrent,
        options=options,
    )
    digits_pb2_grpc.add_DigitsServicer_to_server(servicer, server)
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        OpenInferenceServicer(registry, predictor, settings.max_batch, stream_pool=stream_pool, stream_depth=cores),
        server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, (SERVICE, OPEN_INFERENCE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
    try:
        port = _listen(server, settings, credentials)
    except StartupError:
        if metrics is not None:
            metrics.stop()
        raise
    # NOT_SERVING to probes while the models load
    health_server = _start_health_server(settings, health_servicer) if settings.health_port else None
    log.info("server started", extra={"address": f"{settings.host}:{port}", "tls": credentials is not None,
                                      "models_dir": str(settings.models_dir), "workers": settings.workers,
                                      "max_concurrent": settings.max_concurrent,
                                      "max_streams": settings.max_streams, "token": bool(settings.token),
                                      "metrics_port": settings.metrics_port})
    # Load before answering: a client that connects meanwhile waits for the models instead of
    # being told NO_MODEL_LOADED by a server that is only starting (a restart, say).
    registry.reload()
    server.start()
    stopping = threading.Event()
    threading.Thread(target=streams.watch, args=(stopping,), name="idle-streams", daemon=True).start()
    if settings.watch > 0:
        threading.Thread(target=registry.watch, args=(settings.watch, stopping), name="watch", daemon=True).start()
    return RunningServer(server, port, registry, health_servicer, stream_pool, stopping, metrics, health_server)


def _reload_on_hangup(hangup: threading.Event, registry: ModelRegistry) -> None:
    """One reload per burst of SIGHUPs, however many arrive while one runs."""
    while True:
        hangup.wait()
        hangup.clear()
        registry.reload()


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    logs.configure(settings.log_level, settings.log_format)
    # Handlers first: a signal that arrives while the port opens or the models load must not kill us.
    stopping, hangup = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: hangup.set())
    try:
        running = start(settings)
    except StartupError as exc:
        log.error("server failed to start", extra={"reason": str(exc)})
        return exc.code
    threading.Thread(target=_reload_on_hangup, args=(hangup, running.registry), name="sighup", daemon=True).start()
    stopping.wait()
    log.info("shutting down", extra={"grace_seconds": settings.grace})
    stopper = threading.Thread(target=running.stop, args=(settings.grace,), name="stop", daemon=True)
    stopper.start()
    stopper.join(settings.grace + 0.5)
    if stopper.is_alive():
        # grpcio can wait forever on a call that never ends; SIGTERM must end the process regardless.
        log.error("calls still running after the grace period; exiting anyway")
        logging.shutdown()
        os._exit(exits.OK)
    log.info("server stopped")
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
