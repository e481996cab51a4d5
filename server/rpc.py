"""What every gRPC service of the server shares: lenient request parsing and one way to report errors.

Requests are parsed by ``lenient`` deserializers: a message that is not valid
protobuf becomes ``MALFORMED`` and is answered with INVALID_ARGUMENT instead
of going through grpcio's own failure path, which answers INTERNAL and, in
grpcio 1.85, keeps about 19 KiB per such request (measured: 57 MB per 3,000).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Callable

import grpc
from google.protobuf.message import DecodeError

from server.errors import InvalidInput, ServingError

log = logging.getLogger("digitserve.rpc")

MALFORMED = object()


def lenient(parse: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def deserialize(data: bytes) -> object:
        try:
            return parse(data)
        except (DecodeError, RuntimeError, ValueError):
            return MALFORMED

    return deserialize


def check_parsed(request: object) -> None:
    if request is MALFORMED:
        raise InvalidInput("request is not a valid protobuf message for this method")


def _abort(context: grpc.ServicerContext, method: str, exc: Exception) -> None:
    """End the call with the status a ServingError names, or INTERNAL (logged) for anything else."""
    if isinstance(exc, ServingError):
        context.abort(exc.code, str(exc))
    log.exception("unexpected error", extra={"method": method})
    context.abort(grpc.StatusCode.INTERNAL, f"{method} failed unexpectedly; see the server log")


def answers_errors(method):
    """Report every error of an RPC method the same way, unary or streaming."""

    @functools.wraps(method)
    def unary(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(context, method.__name__, exc)

    @functools.wraps(method)
    def streaming(self, request, context):
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort(context, method.__name__, exc)

    return streaming if inspect.isgeneratorfunction(method) else unary
