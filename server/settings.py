"""Server settings: every flag has an environment variable of the same name."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from digitserve import version
from digitserve.artifacts import INPUT_PIXELS

# The largest encoding of an image: f32, four bytes a pixel. The rest of a
# PredictRequest (model name, field tags, lengths) fits in the headroom.
F32_IMAGE_BYTES = 4 * INPUT_PIXELS
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


# flag -> (environment variable, help)
_HELP = {
    "host": ("DIGITS_HOST", "interface to listen on"),
    "port": ("DIGITS_PORT", "port to listen on (0 picks a free one)"),
    "health_port": ("DIGITS_HEALTH_PORT", "plaintext port serving only grpc.health.v1, for probes inside the "
                                          "container or pod when the main port speaks TLS (0: off)"),
    "health_host": ("DIGITS_HEALTH_HOST", "interface of --health-port"),
    "models_dir": ("DIGITS_MODELS_DIR", "folder of model artifacts and manifests, as written by digits-train"),
    "default_model": ("DIGITS_DEFAULT_MODEL", "model for requests that name none (default: ensemble if present)"),
    "workers": ("DIGITS_WORKERS", "threads answering requests"),
    "max_concurrent": ("DIGITS_MAX_CONCURRENT",
                       "requests running or queued at once; beyond it new ones get RESOURCE_EXHAUSTED"),
    "max_batch": ("DIGITS_MAX_BATCH", "most images in one Predict request or stream chunk"),
    "max_message_mb": ("DIGITS_MAX_MESSAGE_MB",
                       "largest message accepted, in MiB; must hold --max-batch images as f32 (3,136 bytes each)"),
    "max_streams": ("DIGITS_MAX_STREAMS", "request streams running at once, on threads of their own; "
                                          "beyond it new ones get RESOURCE_EXHAUSTED"),
    "stream_idle_timeout": ("DIGITS_STREAM_IDLE_TIMEOUT",
                            "cancel a stream that waits this many seconds on its client (0: never)"),
    "numeric_threads": ("DIGITS_NUMERIC_THREADS", "BLAS/OpenMP threads per request"),
    "grace": ("DIGITS_GRACE", "seconds in-flight requests get to finish on SIGTERM"),
    "watch": ("DIGITS_WATCH", "check the models folder every this many seconds and reload on change (0: off)"),
    "max_connection_age": ("DIGITS_MAX_CONNECTION_AGE",
                           "after this many seconds a client connection takes no new calls, so long-lived "
                           "clients reconnect and spread over new replicas (0: never)"),
    "max_connection_age_grace": ("DIGITS_MAX_CONNECTION_AGE_GRACE",
                                 "seconds the calls still running on an aged connection get before it is "
                                 "closed (0: as long as they take, so long streams finish)"),
    "metrics_port": ("DIGITS_METRICS_PORT", "serve Prometheus metrics over HTTP at :PORT/metrics (0: off)"),
    "log_level": ("DIGITS_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR"),
    "log_format": ("DIGITS_LOG_FORMAT", "json (one object per line) or text"),
    "token": ("DIGITS_TOKEN", "operator token required by Reload (empty: Reload is open)"),
    "protect_all": ("DIGITS_PROTECT_ALL", "require the token for Predict and ListModels too"),
    "tls_cert": ("DIGITS_TLS_CERT", "PEM certificate chain; with --tls-key serves TLS"),
    "tls_key": ("DIGITS_TLS_KEY", "PEM private key of --tls-cert"),
    "tls_client_ca": ("DIGITS_TLS_CLIENT_CA", "PEM CA bundle; when set, clients must present a certificate it signed"),
}


_KIND = {int: "a whole number", float: "a number", str: "text", Path: "a path"}


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def parse_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="digits-server",
        description="Serve the digit models of a models folder over gRPC (digitserve.v1.Digits, the Open "
                    "Inference Protocol's inference.GRPCInferenceService, grpc.health.v1 and reflection).",
        epilog="Every flag can also be set by the environment variable shown in brackets.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    defaults = Settings()
    for f in fields(Settings):
        env, text = _HELP[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if env in environ:
            try:
                default = _parse_bool(environ[env]) if isinstance(default, bool) else type(default)(environ[env])
            except ValueError:
                parser.error(f"{env}={environ[env]!r}: expected {_KIND[type(default)]}")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=f"{text} [{env}]")
        else:
            parser.add_argument(flag, type=type(default), default=default,
                                help=f"{text} [{env}] (default: {default or 'none'})")
    args = parser.parse_args(argv)
    settings = Settings(**vars(args))
    if bool(settings.tls_cert) != bool(settings.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if settings.tls_client_ca and not settings.tls_cert:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    if settings.log_format not in ("json", "text"):
        parser.error(f"--log-format is {settings.log_format!r}, expected json or text")
    for name in ("max_connection_age", "max_connection_age_grace", "metrics_port"):
        if getattr(settings, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 (off) or more")
    for name in ("workers", "max_concurrent", "max_batch", "max_message_mb", "numeric_threads", "max_streams"):
        if getattr(settings, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if settings.stream_idle_timeout < 0:
        parser.error("--stream-idle-timeout must be 0 (never) or more seconds")
    needed = settings.max_batch * F32_IMAGE_BYTES + MESSAGE_HEADROOM
    if needed > settings.max_message_mb * 1024 * 1024:
        parser.error(f"--max-batch {settings.max_batch} images sent as f32 need {needed / 2**20:.1f} MiB, over "
                     f"--max-message-mb {settings.max_message_mb}: raise --max-message-mb to "
                     f"{-(-needed // 2**20)} or lower --max-batch to "
                     f"{(settings.max_message_mb * 2**20 - MESSAGE_HEADROOM) // F32_IMAGE_BYTES}")
    return settings
