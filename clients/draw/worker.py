"""The drawing window's server calls, on a thread of their own.

The Tk thread never waits for the server: it hands requests to the
:class:`Worker` and polls a queue for what came back. The worker holds one
:class:`~clients.connection.Connection` for the window's whole life and
watches its channel: gRPC's own reconnect backoff brings the channel back
after the server went away, and the worker reports each change of
readiness at once, lists the models again on every reconnection, and
every few seconds while connected, so models added by a reload appear.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np
from PIL import Image

from clients import numbers
from clients.connection import Answer, Connection, ConnectionOptions
from clients.draw.state import Placement, Reading
from clients.drawing import Drawing
from clients.prediction import Prediction
from digitserve.v1 import digits_pb2 as pb

MODELS_REFRESH_SECONDS = 3.0


@dataclass(frozen=True)
class Request:
    """One prediction: the pixels (or, in number mode, the drawing) and model as they were when it was asked for."""

    vector: np.ndarray | None
    model: str
    epoch: int  # DrawState.epoch then: an answer about replaced content is not shown
    drawing: Drawing | None = None  # read as a whole number instead of sending ``vector``
    picture: Image.Image | None = None  # ... or this picture,
    placement: Placement = Placement()  # whose digits' boxes this puts on the canvas


@dataclass(frozen=True)
class Predicted:
    request: Request
    answer: Answer
    seconds: float


@dataclass(frozen=True)
class NumberRead:
    request: Request
    reading: Reading
    seconds: float


@dataclass(frozen=True)
class Listed:
    models: pb.ListModelsResponse
    seconds: float


@dataclass(frozen=True)
class Failed:
    error: Exception
    request: Request | None  # None: listing the models failed


@dataclass(frozen=True)
class Readiness:
    """The channel became ready (connected) or stopped being ready."""

    ready: bool


Event = Predicted | NumberRead | Listed | Failed | Readiness


class Worker:
    """Makes the window's calls one at a time and puts what happened on ``events``.

    Only the newest prediction waiting is kept: while one call runs, newer
    requests replace each other, so a fast drawer never builds a backlog.
    """

    def __init__(self, options: ConnectionOptions, events: queue.Queue[Event],
                 refresh_seconds: float = MODELS_REFRESH_SECONDS):
        self._options = options
        self._events = events
        self._refresh_seconds = refresh_seconds
        self._wake = threading.Condition()
        self._next: Request | None = None
        self._list_due = True
        self._ready: bool | None = None  # None until the channel first connects or fails
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="digits-draw-calls", daemon=True)
        self._thread.start()

    def predict(self, request: Request) -> None:
        with self._wake:
            self._next = request
            self._wake.notify()

    def stop(self) -> None:
        """Let the thread end after the call it may be making (a daemon: exiting never waits for it)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _on_connectivity(self, state: grpc.ChannelConnectivity) -> None:
        """On gRPC's thread: report readiness changes; list the models on each reconnection."""
        with self._wake:
            if state == grpc.ChannelConnectivity.READY:
                ready = True
            elif state == grpc.ChannelConnectivity.TRANSIENT_FAILURE or (
                    state == grpc.ChannelConnectivity.IDLE and self._ready):
                ready = False  # a failed attempt, or the server closed the connection
            else:
                return  # CONNECTING, or IDLE before the first attempt: no news yet
            if ready == self._ready:
                return
            self._ready = ready
            self._list_due = self._list_due or ready
            self._wake.notify()
        self._events.put(Readiness(ready))

    def _run(self) -> None:
        try:
            connection = Connection(self._options)
        except Exception as exc:  # unreadable certificate files: every request fails with this
            self._fail_forever(exc)
            return
        connection.watch(self._on_connectivity)
        try:
            self._serve(connection)
        finally:
            connection.close()

    def _serve(self, connection: Connection) -> None:
        listed_at = float("-inf")
        while True:
            with self._wake:
                while not (self._stopped or self._next is not None or self._list_due):
                    # While connected, list the models every few seconds; otherwise wait for news.
                    wait = listed_at + self._refresh_seconds - time.monotonic() if self._ready else None
                    if wait is not None and wait <= 0:
                        self._list_due = True
                    else:
                        self._wake.wait(wait)
                if self._stopped:
                    return
                request, self._next = self._next, None
                list_now, self._list_due = self._list_due and self._ready, False
            if list_now:
                listed_at = time.monotonic()
                self._list(connection)
            if request is not None:
                self._predict(connection, request)

    def _list(self, connection: Connection) -> None:
        start = time.perf_counter()
        try:
            models = connection.list_models()
        except Exception as exc:  # any failure is shown in the window; the thread must live on
            self._events.put(Failed(exc, None))
        else:
            self._events.put(Listed(models, time.perf_counter() - start))

    def _predict(self, connection: Connection, request: Request) -> None:
        start = time.perf_counter()
        try:
            if request.drawing is not None or request.picture is not None:  # digits found here, off the Tk thread
                def classify(vectors: np.ndarray) -> list[Prediction]:
                    return connection.predict(vectors, request.model).predictions()

                lines = numbers.read_lines(request.drawing if request.drawing is not None else request.picture,
                                           classify)
                placed = request.placement
                reading = Reading(tuple(line.moved(placed.scale, placed.left, placed.top)
                                        if isinstance(line, numbers.Number) else line for line in lines))
                self._events.put(NumberRead(request, reading, time.perf_counter() - start))
                return
            answer = connection.predict(request.vector.reshape(1, -1), request.model)
        except Exception as exc:  # any failure is shown in the window; the thread must live on
            self._events.put(Failed(exc, request))
        else:
            self._events.put(Predicted(request, answer, time.perf_counter() - start))

    def _fail_forever(self, error: Exception) -> None:
        self._events.put(Failed(error, None))
        while True:
            with self._wake:
                while not self._stopped and self._next is None:
                    self._wake.wait()
                if self._stopped:
                    return
                request, self._next = self._next, None
            self._events.put(Failed(error, request))
