"""The server's domain errors and the one place that maps them to gRPC status codes."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request the server refuses; ``code`` is the gRPC status it answers with."""

    code = grpc.StatusCode.INTERNAL


class InvalidInput(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class NoModelLoaded(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ServingError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServingError):
    code = grpc.StatusCode.PERMISSION_DENIED
