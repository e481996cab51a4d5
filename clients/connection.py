"""A client's connection to a digits server: TLS, token, deadlines and retries.

Both clients (the command line and the Tk window) talk to the server only
through ``Connection``, so they retry, time out and report errors alike.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import grpc
import numpy as np

from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc

DEFAULT_ADDRESS = "localhost:50051"
PIXELS = 784


def default_address() -> str:
    return os.environ.get("DIGITS_SERVER", DEFAULT_ADDRESS)


class ServerUnavailable(Exception):
    """The server could not be reached (after retries)."""

    def __init__(self, address: str, detail: str):
        super().__init__(f"cannot reach the digits server at {address} ({detail}); "
                         "check that digits-server runs there, the address and port (--server or "
                         "DIGITS_SERVER), and TLS options (--ca-cert)")
        self.address = address


class ServerError(Exception):
    """The server answered with an error status."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class ConnectionOptions:
    address: str = DEFAULT_ADDRESS
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 0.25
    ca_cert: str = ""
    client_cert: str = ""
    client_key: str = ""
    token: str = ""


@dataclass(frozen=True)
class Answer:
    """The server's answer for a batch of images."""

    model: str
    version: str
    probabilities: np.ndarray  # (n, 10)

    @property
    def digits(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def _answer(reply: pb.PredictResponse) -> Answer:
    probabilities = np.array([p.probabilities for p in reply.predictions], dtype=np.float32).reshape(-1, 10)
    return Answer(reply.model, reply.version, probabilities)


def _request(images: np.ndarray, model: str, sequence: int | None = None) -> pb.PredictRequest:
    pixels = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, PIXELS)
    return pb.PredictRequest(u8=pixels.tobytes(), model=model, sequence=sequence)


class Connection:
    """One channel to a server. Use as a context manager or call ``close``."""

    def __init__(self, options: ConnectionOptions, sleep: Callable[[float], None] = time.sleep):
        self.options = options
        self._sleep = sleep
        self.channel = self._open_channel()
        self.stub = digits_pb2_grpc.DigitsStub(self.channel)
        self._watchers: list[Callable[[grpc.ChannelConnectivity], None]] = []

    def _open_channel(self) -> grpc.Channel:
        o = self.options
        # gRPC's own reconnect backoff grows to two minutes; a restarted server should be
        # noticed within seconds, so cap it at the scale of our retry backoff.
        limits = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
                  ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                  ("grpc.max_reconnect_backoff_ms", 2000)]
        if not o.ca_cert and not o.client_cert:
            return grpc.insecure_channel(o.address, options=limits)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(o.ca_cert).read_bytes() if o.ca_cert else None,
            private_key=Path(o.client_key).read_bytes() if o.client_key else None,
            certificate_chain=Path(o.client_cert).read_bytes() if o.client_cert else None)
        return grpc.secure_channel(o.address, credentials, options=limits)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for watcher in self._watchers:
            self.channel.unsubscribe(watcher)
        self.channel.close()

    def watch(self, on_change: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Tell ``on_change`` (on a gRPC thread) each connectivity state of the channel, and keep it connecting.

        A channel whose server went away falls IDLE and would wait there for
        the next call; a watcher wants to know when the server is back, so an
        IDLE channel is asked to connect again and the channel's own reconnect
        backoff (capped above) does the retrying.
        """
        last: list[grpc.ChannelConnectivity | None] = [None]

        def changed(state: grpc.ChannelConnectivity) -> None:
            if state == last[0]:
                return
            last[0] = state
            on_change(state)
            if state == grpc.ChannelConnectivity.IDLE:
                # Subscribing with try_to_connect is grpcio's public way to ask for a connection.
                self.channel.unsubscribe(changed)
                self.channel.subscribe(changed, try_to_connect=True)

        self._watchers.append(changed)
        self.channel.subscribe(changed, try_to_connect=True)

    @property
    def _metadata(self):
        return [("authorization", f"Bearer {self.options.token}")] if self.options.token else None

    def _delay(self, attempt: int) -> float:
        return min(self.options.backoff * 2**attempt, 5.0) * random.uniform(0.8, 1.2)

    def _call(self, method, request):
        """A unary call with a deadline, retried with backoff while the server is UNAVAILABLE."""
        for attempt in range(self.options.retries + 1):
            try:
                return method(request, timeout=self.options.timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                last = exc
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.options.retries:
                    break
                self._sleep(self._delay(attempt))
        raise self._error(last)

    def _error(self, exc: grpc.RpcError) -> Exception:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE and "no model is loaded" not in details:
            return ServerUnavailable(self.options.address, details.splitlines()[0] if details else code.name)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServerUnavailable(self.options.address, f"no answer within {self.options.timeout:g}s (--timeout)")
        return ServerError(code, details)

    def predict(self, images: np.ndarray, model: str = "") -> Answer:
        return _answer(self._call(self.stub.Predict, _request(images, model)))

    def list_models(self) -> pb.ListModelsResponse:
        return self._call(self.stub.ListModels, pb.ListModelsRequest())

    def reload(self) -> pb.ReloadResponse:
        return self._call(self.stub.Reload, pb.ReloadRequest())

    def predict_stream(self, chunks: Iterable[np.ndarray], model: str = "", window: int = 4) -> Iterator[Answer]:
        """Answers for each chunk of images, in order, through PredictStream.

        At most ``window`` chunks are in flight, so memory stays bounded however
        long the input. When the server becomes unavailable mid-stream, the
        unanswered chunks are sent again on a new stream after a backoff.
        """
        source = iter(chunks)
        pending: deque[np.ndarray] = deque()
        attempt = 0
        while True:
            slots = threading.Semaphore(window)
            replay = list(pending)
            lock = threading.Lock()

            def requests() -> Iterator[pb.PredictRequest]:
                for chunk in replay:
                    slots.acquire()
                    yield _request(chunk, model)
                for chunk in source:
                    slots.acquire()
                    with lock:
                        pending.append(chunk)
                    yield _request(chunk, model)

            try:
                for reply in self.stub.PredictStream(requests(), metadata=self._metadata):
                    with lock:
                        pending.popleft()
                    slots.release()
                    attempt = 0
                    yield _answer(reply)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.options.retries:
                    raise self._error(exc) from None
                self._sleep(self._delay(attempt))
                attempt += 1
