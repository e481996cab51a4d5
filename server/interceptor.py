"""What every call passes through, whatever service it belongs to.

``CallGate`` wraps the handler of every method the server registers - the
Digits service, health, reflection and any service added later - so that:

- access is checked first (server/access.py), from the call's metadata;
- requests are parsed leniently: bytes that are not a valid message for the
  method are answered INVALID_ARGUMENT. grpcio's own path for them answers
  INTERNAL, keeps about 16 KiB per call for good (grpcio 1.85), and can leave
  a request stream that SIGTERM then waits for forever;
- request streams are bounded by server/streams.py;
- errors become statuses in one place (server/errors.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import grpc

from server.access import Access
from server.errors import InvalidInput, ServingError, Unimplemented, abort
from server.streams import StreamLimits

_MALFORMED = object()
_NOT_PARSED = "request is not a valid protobuf message for this method"

_MAKE = {  # (request streaming, response streaming) -> handler constructor and its behaviour field
    (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
    (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
    (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
    (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream"),
}


def _lenient(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # any parser's failure, protobuf's or a service's own
            return _MALFORMED

    return deserialize


def _parsed(requests):
    for request in requests:
        if request is _MALFORMED:
            raise InvalidInput(_NOT_PARSED)
        yield request


def _refusal(method: str, error: ServingError):
    def refuse(_request, context, *_):
        abort(context, method, error)
    return refuse


class CallGate(grpc.ServerInterceptor):
    def __init__(self, access: Access, streams: StreamLimits):
        self.access = access
        self.streams = streams

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpcio answers UNIMPLEMENTED
        method = handler_call_details.method
        make, field = _MAKE[(handler.request_streaming, handler.response_streaming)]
        try:
            self.access.check(method, handler_call_details.invocation_metadata)
        except ServingError as exc:
            behaviour = _refusal(method, exc)
        else:
            behaviour = self._guarded(getattr(handler, field), method, handler.request_streaming,
                                      handler.response_streaming)
        return make(behaviour, request_deserializer=_lenient(handler.request_deserializer),
                    response_serializer=handler.response_serializer)

    def _guarded(self, behaviour, method: str, request_streaming: bool, response_streaming: bool):
        if getattr(behaviour, "experimental_non_blocking", False):
            # Health's Watch answers through a callback and holds no thread; keep its signature.
            def non_blocking(request, context, send):
                with self._call(method, context, False):
                    return behaviour(self._argument(request, context, method, False), context, send)
            non_blocking.experimental_non_blocking = True
            return non_blocking

        def unary_response(argument, context):
            with self._call(method, context, request_streaming):
                return behaviour(self._argument(argument, context, method, request_streaming), context)

        def streaming_response(argument, context):
            with self._call(method, context, request_streaming):
                responses = behaviour(self._argument(argument, context, method, request_streaming), context)
                yield from self.streams.sent(responses, context, method) if request_streaming else responses

        return streaming_response if response_streaming else unary_response

    def _argument(self, argument, context: grpc.ServicerContext, method: str, request_streaming: bool):
        """The request, refused if it did not parse; or the request stream, parsed and watched for idleness."""
        if not request_streaming:
            if argument is _MALFORMED:
                raise InvalidInput(_NOT_PARSED)
            return argument
        return self.streams.received(_parsed(argument), context, method)

    @contextmanager
    def _call(self, method: str, context: grpc.ServicerContext, request_streaming: bool) -> Iterator[None]:
        """A stream slot for request streams, and every error of the call turned into its status."""
        admitted = False
        try:
            if request_streaming:
                self.streams.admit(context)
                admitted = True
            yield
        except NotImplementedError:  # a method a service declares but does not implement (health's List)
            abort(context, method, Unimplemented(f"{method} is not implemented by this server"))
        except Exception as exc:
            if context.code() is not None or not context.is_active():
                raise  # the handler has chosen its status itself (context.abort), or the call is over
            abort(context, method, exc)
        finally:
            if admitted:
                self.streams.release(context)
