"""Prometheus metrics of one server, served as text at http://HOST:METRICS_PORT/metrics.

Every server has its own ``CollectorRegistry`` (tests run several servers in
one process). RPC counts, latencies and calls in flight come from a gRPC
server interceptor, so every service on the port is measured the same way;
micro-batches and model loads come from the model registry's observer hooks;
the loaded versions come from the registry's latest snapshot at scrape time.
Calls that grpcio refuses before they reach a handler (beyond
``--max-concurrent``) are not seen here.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import InfoMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from server.registry import ReloadReport, Snapshot

# Single images take 1-3 ms and streams of thousands seconds: buckets cover both.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
UNKNOWN_MODEL = "unknown"  # a name that is not loaded: not a label value of its own, or anyone could add series
# How often the HTTP loop looks for a stop request: prometheus_client's own
# server looks every 0.5 s, and a server stopping waited that long for it.
STOP_POLL_SECONDS = 0.02


class _MetricsHTTPServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress does not hold up the server's exit

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily):
        self.address_family = family  # read by the socket's creation in the base class
        super().__init__(address, _QuietHandler)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass  # one line per scrape would bury the server's own log


def _http_server(host: str, port: int, registry: CollectorRegistry) -> WSGIServer:
    """/metrics (and every other path) on ``host:port``, served from a daemon thread."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    httpd = _MetricsHTTPServer((address[0], port), family)
    httpd.set_app(make_wsgi_app(registry))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": STOP_POLL_SECONDS},
                     name="metrics-http", daemon=True).start()
    return httpd


class _ModelInfo:
    """``digits_model_info``: one series per loaded model, labelled with its version, read at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot]):
        self._snapshot = snapshot

    def collect(self):
        snapshot = self._snapshot()
        family = InfoMetricFamily("digits_model", "Loaded models and their versions", labels=["model"])
        for name, model in sorted(snapshot.models.items()):
            family.add_metric([name], {"version": model.version, "kind": model.manifest.kind,
                                       "sha256": model.manifest.sha256,
                                       "default": "true" if name == snapshot.default else "false"})
        yield family


class ServerMetrics(grpc.ServerInterceptor):
    """The metrics of one server: an interceptor for its gRPC calls and an observer of its model registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._snapshot = Snapshot({}, None, {})
        self._http = None
        self._measured: dict[str, tuple] = {}
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_ModelInfo(lambda: self._snapshot))
        r = self.registry
        self.rpcs = Counter("digits_rpcs", "RPCs finished, by method and status code",
                            ["service", "method", "code"], registry=r)
        self.rpc_seconds = Histogram("digits_rpc_duration_seconds",
                                     "Time from the call's arrival to its last answer, by method and model "
                                     "(streams: by the model of their first chunk)",
                                     ["service", "method", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("digits_rpcs_in_flight", "RPCs running now", ["service", "method"], registry=r)
        self.images = Counter("digits_images_predicted", "Images answered, by model", ["model"], registry=r)
        self.batch_images = Histogram("digits_batch_size_images",
                                      "Images per model call: concurrent small requests share one (micro-batch)",
                                      ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("digits_batch_size_requests", "Requests answered by one model call",
                                        ["model"], buckets=BATCH_BUCKETS[:8], registry=r)
        self.loads = Counter("digits_model_loads", "Model versions loaded (first load and every new version)",
                             ["model"], registry=r)
        self.load_failures = Counter("digits_model_load_failures",
                                     "Model versions that failed to load (the previous version keeps serving)",
                                     ["model"], registry=r)
        self.reloads = Counter("digits_reloads", "Rescans of the models folder (start, Reload, SIGHUP, --watch)",
                               registry=r)

    # --- HTTP endpoint ---------------------------------------------------------------------

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics on ``host:port``; OSError names the port when it cannot be had."""
        addr = host.strip("[]")
        try:
            try:
                self._http = _http_server(addr, port, self.registry)
            except OSError as exc:
                if addr != "::" or exc.errno != errno.EAFNOSUPPORT:
                    raise
                # The default "all interfaces" on a host without IPv6, where gRPC falls back to IPv4 too.
                self._http = _http_server("0.0.0.0", port, self.registry)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {host}:{port} (--metrics-port): {exc.strerror or exc}; "
                          "choose another port or 0 to turn metrics off") from exc

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    # --- RegistryObserver --------------------------------------------------------------------

    def reloaded(self, report: ReloadReport, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self.reloads.inc()
        for model in [*report.added, *(new for new, _ in report.updated)]:
            self.loads.labels(model.name).inc()
        for failure in report.failed:
            self.load_failures.labels(failure.name).inc()

    def batched(self, model: str, requests: int, images: int) -> None:
        self.images.labels(model).inc(images)
        self.batch_images.labels(model).observe(images)
        self.batch_requests.labels(model).observe(requests)

    # --- grpc.ServerInterceptor ----------------------------------------------------------------

    def model_label(self, request: object) -> str:
        """The model a request is answered by; "" for calls that name no model (ListModels, health)."""
        # digitserve.v1 names it `model`, the Open Inference Protocol `model_name`.
        name = getattr(request, "model", getattr(request, "model_name", None))
        if name is None:
            return ""
        snapshot = self._snapshot
        name = name or snapshot.default or ""
        return name if name in snapshot.models else UNKNOWN_MODEL

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        # grpcio asks for every call; the measured handler of a method is built once.
        method = handler_call_details.method
        cached = self._measured.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, _Method(self, method).measure(handler))
            self._measured[method] = cached
        return cached[1]


def _status(context: grpc.ServicerContext, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """The status a call ended with: the client's cancel or deadline wins over what the handler set."""
    if not context.is_active():
        remaining = context.time_remaining()
        return grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else \
            grpc.StatusCode.CANCELLED
    return context.code() or otherwise


class _Method:
    """Wraps one method's behaviour: counts its calls in flight, then records their status and duration."""

    def __init__(self, metrics: ServerMetrics, full_method: str):
        self.metrics = metrics
        self.service, _, self.method = full_method.lstrip("/").rpartition("/")
        self.in_flight = metrics.in_flight.labels(self.service, self.method)

    def measure(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return handler._replace(unary_unary=self.unary(handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self.streaming(handler.unary_stream))
        if handler.stream_unary:
            return handler._replace(stream_unary=self.unary(handler.stream_unary, streaming_request=True))
        return handler._replace(stream_stream=self.streaming(handler.stream_stream, streaming_request=True))

    def _begin(self, request, streaming_request: bool) -> tuple[float, list[str], object]:
        """Counts the call in flight; returns its start, where its model label will be, and its request(s)."""
        self.in_flight.inc()
        model: list[str] = []
        if streaming_request:
            request = self._requests(request, model)
        else:
            model.append(self.metrics.model_label(request))
        return time.perf_counter(), model, request

    def _end(self, started: float, model: list[str], code: grpc.StatusCode) -> None:
        m = self.metrics
        m.rpc_seconds.labels(self.service, self.method, model[0] if model else "").observe(
            time.perf_counter() - started)
        m.rpcs.labels(self.service, self.method, code.name).inc()
        self.in_flight.dec()

    def _requests(self, requests: Iterator, model: list[str]) -> Iterator:
        """Passes a request stream through, noting the model of its first message."""
        for request in requests:
            if not model:
                model.append(self.metrics.model_label(request))
            yield request

    def unary(self, behaviour, streaming_request: bool = False):
        def measured(request, context):
            started, model, request = self._begin(request, streaming_request)
            try:
                response = behaviour(request, context)
                code = _status(context, grpc.StatusCode.OK)
                return response
            except BaseException:
                code = _status(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                self._end(started, model, code)

        return measured

    def streaming(self, behaviour, streaming_request: bool = False):
        def measured(request, context):
            started, model, request = self._begin(request, streaming_request)
            try:
                yield from behaviour(request, context)
                code = _status(context, grpc.StatusCode.OK)
            except BaseException:  # GeneratorExit too: grpcio closes the answers when the client has gone
                code = _status(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                self._end(started, model, code)

        return measured

