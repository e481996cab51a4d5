"""--max-connection-age: a client on a long-lived connection reaches a replica added after it connected.

A Kubernetes ClusterIP Service picks a replica per connection, not per call,
so a client that never reconnects never sees a new replica. The stand-in here
is a TCP forwarder on loopback that sends every new connection to its current
target; the two replicas are real servers, told apart by the one model each serves.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import grpc
import pytest

from digitserve.artifacts import read_manifest
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc

ONE_IMAGE = pb.PredictRequest(u8=bytes(784))


class Forwarder:
    """Listens on a loopback port and joins each new connection to ``127.0.0.1:target``."""

    def __init__(self, target: int):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):  # either side ending ends the connection, as a proxy's would
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def only(trained_models: Path, name: str, folder: Path) -> Path:
    """A models folder holding just ``name``."""
    folder.mkdir()
    for file_name in (read_manifest(trained_models / f"{name}.manifest.json").artifact, f"{name}.manifest.json"):
        shutil.copyfile(trained_models / file_name, folder / file_name)
    return folder


def answered_by(serve, trained_models, tmp_path, max_connection_age: float, seconds: float) -> list[tuple]:
    """(seconds since the first answer, model) for each call of one client while a new replica took
    the new connections; ends with the first answer from the new replica."""
    old = serve(only(trained_models, "svm", tmp_path / "old"), max_connection_age=max_connection_age)
    forwarder = Forwarder(old.running.port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{forwarder.port}") as channel:
            stub = digits_pb2_grpc.DigitsStub(channel)
            model = stub.Predict(ONE_IMAGE, timeout=5).model
            started = time.monotonic()
            answers = [(0.0, model)]
            new = serve(only(trained_models, "knn", tmp_path / "new"))
            forwarder.target = new.running.port  # the scale-up: new connections land on the new replica
            while answers[-1][0] < seconds and model == "svm":
                time.sleep(0.02)
                model = stub.Predict(ONE_IMAGE, timeout=5).model  # any failed call fails the test
                answers.append((time.monotonic() - started, model))
        return answers
    finally:
        forwarder.close()


@pytest.mark.heavy
def test_a_long_lived_client_moves_to_the_new_replica_after_max_connection_age(serve, trained_models, tmp_path):
    answers = answered_by(serve, trained_models, tmp_path, max_connection_age=1.0, seconds=10)
    moved_at, model = answers[-1]
    assert model == "knn", "the client never left the old replica"
    # It stayed on the old replica until its connection aged: 1 s, less gRPC's jitter of up to 10%.
    assert moved_at > 0.8
    assert {model for _, model in answers[:-1]} == {"svm"}


@pytest.mark.heavy
def test_without_it_the_client_stays_where_it_first_connected(serve, trained_models, tmp_path):
    answers = answered_by(serve, trained_models, tmp_path, max_connection_age=0, seconds=3)
    assert {model for _, model in answers} == {"svm"}
    assert answers[-1][0] >= 3


def slow_stream(stub, chunks: int, pause: float):
    """A stream whose client sends one image every ``pause`` seconds."""
    def requests():
        for _ in range(chunks):
            yield ONE_IMAGE
            time.sleep(pause)

    return [reply.model for reply in stub.PredictStream(requests(), timeout=30)]


@pytest.mark.heavy
def test_a_stream_outliving_the_connection_age_finishes(serve, trained_models, tmp_path):
    server = serve(only(trained_models, "svm", tmp_path / "models"), max_connection_age=0.5)
    assert slow_stream(server.stub, chunks=10, pause=0.2) == ["svm"] * 10
    assert server.stub.Predict(ONE_IMAGE, timeout=5).model == "svm"  # on a new connection


@pytest.mark.heavy
def test_max_connection_age_grace_bounds_the_calls_left_on_an_aged_connection(serve, trained_models, tmp_path):
    server = serve(only(trained_models, "svm", tmp_path / "models"), max_connection_age=0.5,
                   max_connection_age_grace=0.5)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        slow_stream(server.stub, chunks=20, pause=0.2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert 0.8 < time.monotonic() - started < 3
