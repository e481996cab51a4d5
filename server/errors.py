"""The server's domain errors and the one place that turns them into gRPC statuses.

Every refusal carries, beside its status code and message, a
``google.rpc.ErrorInfo`` (domain ``digitserve.v1``) whose ``reason`` is one of
the stable names below, listed in protos/digitserve/v1/digits.proto. Clients
branch on the reason, never on the English message: NO_MODEL_LOADED and a
server that is down are both UNAVAILABLE, only the reason tells them apart.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger("digitserve.rpc")

DOMAIN = "digitserve.v1"
# Status messages travel in HTTP/2 trailers, which clients cap at 8 KiB by
# default; a longer message turns the answer into RESOURCE_EXHAUSTED.
MAX_MESSAGE_CHARS = 1000


class ServingError(Exception):
    """A request the server refuses; ``code`` is its gRPC status, ``reason`` its ErrorInfo reason."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"

    def __init_subclass__(cls, code: grpc.StatusCode, reason: str, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.code, cls.reason = code, reason


class InvalidInput(ServingError, code=grpc.StatusCode.INVALID_ARGUMENT, reason="INVALID_INPUT"):
    pass


class ModelNotFound(ServingError, code=grpc.StatusCode.NOT_FOUND, reason="MODEL_NOT_FOUND"):
    pass


# UNAVAILABLE, so that clients retrying while a server starts also wait for the trainer.
class NoModelLoaded(ServingError, code=grpc.StatusCode.UNAVAILABLE, reason="NO_MODEL_LOADED"):
    pass


class Unauthenticated(ServingError, code=grpc.StatusCode.UNAUTHENTICATED, reason="TOKEN_MISSING"):
    pass


class PermissionDenied(ServingError, code=grpc.StatusCode.PERMISSION_DENIED, reason="TOKEN_WRONG"):
    pass


class TooManyStreams(ServingError, code=grpc.StatusCode.RESOURCE_EXHAUSTED, reason="TOO_MANY_STREAMS"):
    pass


class Unimplemented(ServingError, code=grpc.StatusCode.UNIMPLEMENTED, reason="NOT_IMPLEMENTED"):
    pass


def clip(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters so a client's megabyte is not echoed."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def status_of(error: ServingError) -> grpc.Status:
    """The status a refusal is answered with: code, bounded message and ErrorInfo."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN))
    message = str(error)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "..."
    return rpc_status.to_status(status_pb2.Status(code=error.code.value[0], message=message, details=[detail]))


def abort(context: grpc.ServicerContext, method: str, exc: Exception) -> NoReturn:
    """End a call with the status a ServingError names, or INTERNAL (logged) for anything else."""
    if not isinstance(exc, ServingError):
        log.error("unexpected error", exc_info=exc, extra={"method": method})
        exc = ServingError(f"{method} failed unexpectedly; see the server log")
    context.abort_with_status(status_of(exc))
