"""Server settings: every flag has an environment variable (digitserve.settings reads both)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from digitserve import version
from digitserve.contract import F32_IMAGE_BYTES
from digitserve.settings import Setting, add_settings

# The rest of a PredictRequest (model name, field tags, lengths) fits in this headroom.
MESSAGE_HEADROOM = 64 * 1024


@dataclass(frozen=True)
class Settings:
    host: str = "[::]"
    port: int = 50051
    health_port: int = 0
    health_host: str = "127.0.0.1"
    models_dir: Path = Path("models")
    default_model: str = ""
    workers: int = 8
    max_concurrent: int = 64
    max_batch: int = 8192
    max_message_mb: int = 25
    max_streams: int = 16
    stream_idle_timeout: float = 30.0
    numeric_threads: int = 1
    grace: float = 10.0
    watch: float = 0.0
    max_connection_age: float = 0.0
    max_connection_age_grace: float = 0.0
    metrics_port: int = 0
    log_level: str = "INFO"
    log_format: str = "json"
    token: str = ""
    protect_all: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


_D = Settings()
SETTINGS = (
    Setting("--host", "DIGITS_HOST", _D.host, "interface to listen on"),
    Setting("--port", "DIGITS_PORT", _D.port, "port to listen on (0 picks a free one)", minimum=0),
    Setting("--health-port", "DIGITS_HEALTH_PORT", _D.health_port,
            "plaintext port serving only grpc.health.v1, for probes inside the container or pod when the main "
            "port speaks TLS", minimum=0, zero="off"),
    Setting("--health-host", "DIGITS_HEALTH_HOST", _D.health_host, "interface of --health-port"),
    Setting("--models-dir", "DIGITS_MODELS_DIR", _D.models_dir,
            "folder of model artifacts and manifests, as written by digits-train"),
    Setting("--default-model", "DIGITS_DEFAULT_MODEL", _D.default_model, "model for requests that name none",
            shown="ensemble if present"),
    Setting("--workers", "DIGITS_WORKERS", _D.workers, "threads answering requests", minimum=1),
    Setting("--max-concurrent", "DIGITS_MAX_CONCURRENT", _D.max_concurrent,
            "requests running or queued at once; beyond it new ones get RESOURCE_EXHAUSTED", minimum=1),
    Setting("--max-batch", "DIGITS_MAX_BATCH", _D.max_batch, "most images in one Predict request or stream chunk",
            minimum=1),
    Setting("--max-message-mb", "DIGITS_MAX_MESSAGE_MB", _D.max_message_mb,
            f"largest message accepted, in MiB; must hold --max-batch images as f32 ({F32_IMAGE_BYTES:,} bytes each)",
            minimum=1),
    Setting("--max-streams", "DIGITS_MAX_STREAMS", _D.max_streams,
            "request streams running at once, on threads of their own; beyond it new ones get RESOURCE_EXHAUSTED",
            minimum=1),
    Setting("--stream-idle-timeout", "DIGITS_STREAM_IDLE_TIMEOUT", _D.stream_idle_timeout,
            "cancel a stream that waits this many seconds on its client", minimum=0, zero="never"),
    Setting("--numeric-threads", "DIGITS_NUMERIC_THREADS", _D.numeric_threads, "BLAS/OpenMP threads per request",
            minimum=1),
    Setting("--grace", "DIGITS_GRACE", _D.grace, "seconds in-flight requests get to finish on SIGTERM", minimum=0),
    Setting("--watch", "DIGITS_WATCH", _D.watch,
            "check the models folder every this many seconds and reload on change", minimum=0, zero="off"),
    Setting("--max-connection-age", "DIGITS_MAX_CONNECTION_AGE", _D.max_connection_age,
            "after this many seconds a client connection takes no new calls, so long-lived clients reconnect "
            "and spread over new replicas", minimum=0, zero="never"),
    Setting("--max-connection-age-grace", "DIGITS_MAX_CONNECTION_AGE_GRACE", _D.max_connection_age_grace,
            "seconds the calls still running on an aged connection get before it is closed (0: as long as they "
            "take, so long streams finish)", minimum=0, zero="unbounded"),
    Setting("--metrics-port", "DIGITS_METRICS_PORT", _D.metrics_port,
            "serve Prometheus metrics over HTTP at :PORT/metrics", minimum=0, zero="off"),
    Setting("--log-level", "DIGITS_LOG_LEVEL", _D.log_level, "DEBUG, INFO, WARNING or ERROR"),
    Setting("--log-format", "DIGITS_LOG_FORMAT", _D.log_format, "one JSON object per line, or text",
            choices=("json", "text")),
    Setting("--token", "DIGITS_TOKEN", _D.token, "operator token required by Reload (empty: Reload is open)"),
    Setting("--protect-all", "DIGITS_PROTECT_ALL", _D.protect_all, "require the token for Predict and ListModels too"),
    Setting("--tls-cert", "DIGITS_TLS_CERT", _D.tls_cert, "PEM certificate chain; with --tls-key serves TLS"),
    Setting("--tls-key", "DIGITS_TLS_KEY", _D.tls_key, "PEM private key of --tls-cert"),
    Setting("--tls-client-ca", "DIGITS_TLS_CLIENT_CA", _D.tls_client_ca,
            "PEM CA bundle; when set, clients must present a certificate it signed"),
)


def parse_settings(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="digits-server",
        description="Serve the digit models of a models folder over gRPC (digitserve.v1.Digits, the Open "
                    "Inference Protocol's inference.GRPCInferenceService, grpc.health.v1 and reflection).",
        epilog="Every flag can also be set by the environment variable shown in brackets.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    add_settings(parser, SETTINGS, environ)
    settings = Settings(**vars(parser.parse_args(argv)))
    if bool(settings.tls_cert) != bool(settings.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if settings.tls_client_ca and not settings.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    needed = settings.max_batch * F32_IMAGE_BYTES + MESSAGE_HEADROOM
    if needed > settings.max_message_mb * 1024 * 1024:
        parser.error(f"--max-batch {settings.max_batch} images sent as f32 need {needed / 2**20:.1f} MiB, over "
                     f"--max-message-mb {settings.max_message_mb}: raise --max-message-mb to "
                     f"{-(-needed // 2**20)} or lower --max-batch to "
                     f"{(settings.max_message_mb * 2**20 - MESSAGE_HEADROOM) // F32_IMAGE_BYTES}")
    return settings
