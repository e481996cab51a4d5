"""clients/connection.py: addresses, safety checks, retries and errors, against real servers on loopback."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest

from bench.process import ServerProcess
from clients.connection import (NO_MODEL_LOADED, Connection, ConnectionOptions, ServerError, ServerUnavailable,
                                UsageError, is_loopback, parse_address)
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc
from tests.conftest import free_port


@pytest.mark.parametrize("given, parsed", [
    ("localhost", "localhost:50051"),
    ("gpu-box", "gpu-box:50051"),
    ("gpu-box:7000", "gpu-box:7000"),
    ("10.0.0.5", "10.0.0.5:50051"),
    ("::1", "[::1]:50051"),
    ("[::1]", "[::1]:50051"),
    ("[::1]:7000", "[::1]:7000"),
    ("unix:/run/digits.sock", "unix:/run/digits.sock"),
])
def test_a_server_without_a_port_means_the_default_port(given, parsed):
    assert parse_address(given) == parsed
    assert ConnectionOptions(address=given).address == parsed


@pytest.mark.parametrize("bad", ["", "host:http", "host:70000", ":50051", "[::1]x"])
def test_malformed_addresses_are_usage_errors(bad):
    with pytest.raises(UsageError):
        parse_address(bad)


def test_the_token_goes_in_clear_only_to_this_machine_or_with_insecure():
    for local in ("localhost:1", "127.0.0.1:1", "127.3.2.1:1", "[::1]:1", "unix:/tmp/x"):
        assert is_loopback(parse_address(local))
        ConnectionOptions(address=local, token="t")
    with pytest.raises(UsageError, match="--insecure"):
        ConnectionOptions(address="10.0.0.5", token="t")
    with pytest.raises(UsageError, match="--insecure"):
        ConnectionOptions(address="localhost.example.org", token="t")
    assert ConnectionOptions(address="10.0.0.5", token="t", insecure=True).address == "10.0.0.5:50051"
    assert ConnectionOptions(address="10.0.0.5", token="t", ca_cert="ca.pem").tls


def test_a_client_certificate_without_its_key_is_a_usage_error():
    with pytest.raises(UsageError, match="--client-key"):
        ConnectionOptions(client_cert="client.pem")
    with pytest.raises(UsageError, match="--client-cert"):
        ConnectionOptions(client_key="client.key")


class _Empty(digits_pb2_grpc.DigitsServicer):
    """A server that runs but has nothing to serve, and says so in google.rpc.ErrorInfo."""

    def _refuse(self, context):
        from google.protobuf import any_pb2
        from google.rpc import code_pb2, error_details_pb2, status_pb2
        from grpc_status import rpc_status

        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=NO_MODEL_LOADED, domain="digitserve"))
        context.abort_with_status(rpc_status.to_status(status_pb2.Status(
            code=code_pb2.UNAVAILABLE, message="no model is loaded yet", details=[info])))

    def Predict(self, request, context):
        self._refuse(context)

    def PredictStream(self, request_iterator, context):
        self._refuse(context)


@pytest.fixture
def empty_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    digits_pb2_grpc.add_DigitsServicer_to_server(_Empty(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_no_model_loaded_is_told_apart_from_a_server_that_is_down(empty_server):
    with Connection(ConnectionOptions(address=empty_server, retries=1, timeout=5)) as connection:
        with pytest.raises(ServerError) as caught:
            connection.predict(np.zeros((1, 784), np.uint8))
        assert caught.value.reason == NO_MODEL_LOADED and caught.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(ServerError) as caught:
            list(connection.predict_stream([np.zeros((2, 784), np.uint8)]))
        assert caught.value.reason == NO_MODEL_LOADED
    with Connection(ConnectionOptions(address=f"127.0.0.1:{free_port()}", retries=0, timeout=5)) as connection:
        with pytest.raises(ServerUnavailable):
            connection.predict(np.zeros((1, 784), np.uint8))


class _Flaky(digits_pb2_grpc.DigitsServicer):
    """Unavailable for the first ``failures`` calls, then an empty model list."""

    def __init__(self, failures: int):
        self.failures, self.calls = failures, 0

    def ListModels(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        return pb.ListModelsResponse()


def test_calls_are_retried_by_grpc_while_the_server_is_unavailable():
    """The retry policy in the channel's service config, not a loop of ours, tries again."""
    flaky = _Flaky(failures=2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    digits_pb2_grpc.add_DigitsServicer_to_server(flaky, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        with Connection(ConnectionOptions(address=address, retries=2, timeout=20)) as connection:
            connection.list_models()
        assert flaky.calls == 3
        flaky.calls = 0
        with Connection(ConnectionOptions(address=address, retries=1, timeout=20)) as connection:
            with pytest.raises(ServerUnavailable, match="starting up"):
                connection.list_models()
        assert flaky.calls == 2
    finally:
        server.stop(0)
    with Connection(ConnectionOptions(address=f"127.0.0.1:{free_port()}", retries=2, timeout=20)) as connection:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable):  # nobody there: two retries with backoff, then the error
            connection.list_models()
        assert 0.2 < time.monotonic() - started < 15


def _hold_stream_slot(serving) -> tuple[threading.Event, grpc.Call]:
    """A PredictStream that holds one of the server's stream slots until the event is set."""
    release = threading.Event()

    def one_chunk_then_quiet():
        yield pb.PredictRequest(u8=bytes(784))
        release.wait(20)

    call = serving.stub.PredictStream(one_chunk_then_quiet(), timeout=30)
    next(call)  # answered: the server has admitted the stream
    return release, call


def test_a_stream_refused_by_a_busy_server_is_tried_again_elsewhere(serve, models_copy, test_digits):
    images = test_digits[0][:20]
    busy, free = serve(models_copy, max_streams=1), serve(models_copy, max_streams=1)
    release, held = _hold_stream_slot(busy)
    try:
        # Both replicas: each stream refused by the busy one goes on, through round_robin, to the other.
        options = ConnectionOptions(address=f"{busy.address},{free.address}", retries=3, timeout=20)
        with Connection(options) as connection:
            for _ in range(4):
                assert len(np.concatenate([a.digits for a in connection.predict_stream([images])])) == 20
        # One replica that stays busy: the refusal, once the retries are spent.
        with Connection(ConnectionOptions(address=busy.address, retries=1, timeout=20)) as connection:
            with pytest.raises(ServerError) as caught:
                list(connection.predict_stream([images]))
            assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # One replica that frees its slot while the client waits: the stream goes through.
        threading.Timer(0.3, release.set).start()
        with Connection(ConnectionOptions(address=busy.address, retries=4, timeout=20)) as connection:
            assert len(np.concatenate([a.digits for a in connection.predict_stream([images])])) == 20
    finally:
        release.set()
        held.cancel()


@pytest.mark.heavy
def test_watch_reports_the_server_going_away_and_coming_back(trained_models):
    port = free_port()
    server = ServerProcess(trained_models, port=port)
    seen: list[grpc.ChannelConnectivity] = []
    changed = threading.Condition()

    def on_change(state: grpc.ChannelConnectivity) -> None:
        with changed:
            seen.append(state)
            changed.notify_all()

    def wait_for(*states: grpc.ChannelConnectivity) -> None:
        with changed:
            assert changed.wait_for(lambda: seen and seen[-1] in states, timeout=15), seen

    gone = (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    with Connection(ConnectionOptions(address=f"127.0.0.1:{port}")) as connection:
        connection.watch(on_change)
        wait_for(grpc.ChannelConnectivity.READY)
        server.proc.kill()
        server.proc.wait()
        wait_for(*gone)
        server = ServerProcess(trained_models, port=port)
        wait_for(grpc.ChannelConnectivity.READY)  # the channel reconnected by itself, with no call made
        assert connection.wait_for_ready(1)
    server.proc.kill()
    server.proc.wait()
