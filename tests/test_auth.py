"""Access is checked for every method of every service, and refusals carry a stable reason."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from digitserve.v1 import digits_pb2 as pb
from server.access import POLICY, Access, Level, level_of
from server.errors import DOMAIN
from server.interceptor import CallGate
from server.streams import StreamLimits
from bench.services import registered_methods

TOKEN = [("authorization", "Bearer s3cret")]


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a refusal, as a client reads it."""
    status = rpc_status.from_call(error)
    assert status is not None, f"{error.code().name} carries no rich status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == DOMAIN
    return info.reason


def call_without_token(method, channel) -> grpc.StatusCode:
    """Call ``method`` with an empty request and no token; the status it ends with."""
    call = method.raw_call(channel)
    request = iter([b""]) if method.client_streaming else b""
    try:
        answer = call(request, timeout=5)
        if method.server_streaming:
            next(answer)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


@pytest.mark.parametrize("protect_all", [False, True])
def test_every_registered_method_is_guarded_as_the_policy_says(serve, models_copy, protect_all):
    server = serve(models_copy, token="s3cret", protect_all=protect_all)
    methods = registered_methods(server.channel, metadata=TOKEN)
    services = {m.path.split("/")[1] for m in methods}
    assert {"digitserve.v1.Digits", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    for method in methods:
        level = level_of(method.path)
        needs_token = level is Level.OPERATOR or (level is Level.READER and protect_all)
        code = call_without_token(method, server.channel)
        if needs_token:
            assert code == grpc.StatusCode.UNAUTHENTICATED, method.path
        else:
            assert code != grpc.StatusCode.UNAUTHENTICATED, method.path
    assert level_of("/grpc.health.v1.Health/Watch") is Level.OPEN  # probes never need a secret
    assert level_of("/digitserve.v1.Digits/Reload") is Level.OPERATOR
    for key in POLICY:  # no entry outlives the method it was written for
        assert any(m.path == key or (key.endswith("/") and m.path.startswith(key)) for m in methods), key


def test_a_service_registered_later_is_guarded_by_default():
    """A method the policy table does not name needs the token under --protect-all."""
    echo = grpc.method_handlers_generic_handler("test.Later", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
        "Chat": grpc.stream_stream_rpc_method_handler(lambda requests, context: iter(requests))})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[echo],
                         interceptors=[CallGate(Access("s3cret", protect_all=True), StreamLimits(4, 0))])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo_call = channel.unary_unary("/test.Later/Echo")
            with pytest.raises(grpc.RpcError) as refused:
                echo_call(b"hi", timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason_of(refused.value) == "TOKEN_MISSING"
            assert echo_call(b"hi", metadata=TOKEN, timeout=5) == b"hi"
            chat = channel.stream_stream("/test.Later/Chat")
            with pytest.raises(grpc.RpcError) as refused:
                list(chat(iter([b"a"]), timeout=5))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert list(chat(iter([b"a", b"b"]), metadata=TOKEN, timeout=5)) == [b"a", b"b"]
    finally:
        server.stop(None)


def test_refusals_carry_a_stable_reason(serve, models_copy, tmp_path):
    guarded = serve(models_copy, token="s3cret")
    empty = tmp_path / "empty"
    empty.mkdir()
    unloaded = serve(empty)
    cases = [
        (lambda: guarded.stub.Reload(pb.ReloadRequest()), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
        (lambda: guarded.stub.Reload(pb.ReloadRequest(), metadata=[("authorization", "Bearer no")]),
         grpc.StatusCode.PERMISSION_DENIED, "TOKEN_WRONG"),
        (lambda: guarded.stub.Predict(pb.PredictRequest(u8=bytes(10))), grpc.StatusCode.INVALID_ARGUMENT,
         "INVALID_INPUT"),
        (lambda: guarded.stub.Predict(pb.PredictRequest(u8=bytes(784), model="resnet")), grpc.StatusCode.NOT_FOUND,
         "MODEL_NOT_FOUND"),
        (lambda: unloaded.stub.Predict(pb.PredictRequest(u8=bytes(784))), grpc.StatusCode.UNAVAILABLE,
         "NO_MODEL_LOADED"),
        (lambda: guarded.channel.unary_unary("/grpc.health.v1.Health/Check")(b"\xff\xfe", timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INPUT"),
    ]
    for call, code, reason in cases:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert (caught.value.code(), reason_of(caught.value)) == (code, reason)
