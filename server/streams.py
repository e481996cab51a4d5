"""What a client stream may hold: how many run at once, and how long one may wait on its client.

grpcio's synchronous server gives every call a thread for as long as it runs,
and a request stream runs for as long as its client keeps it open. Without a
bound, eight clients that open a stream and go quiet hold all eight workers
and every unary call and health check waits behind them. So streams get their
own threads (the server's pool has ``--workers`` plus ``--max-streams``), at
most ``--max-streams`` run at once (the next one is refused at once with
RESOURCE_EXHAUSTED), and one that waits longer than ``--stream-idle-timeout``
on its client - for its next message, or to take the last answer - is
cancelled, which frees its slot.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

import grpc

from server.errors import TooManyStreams

log = logging.getLogger("digitserve.streams")

T = TypeVar("T")
_END = object()


class StreamLimits:
    def __init__(self, max_streams: int, idle_timeout: float):
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        # the calls holding a slot, by their context
        self._holders: set[grpc.ServicerContext] = set()
        # a waiting call -> (since when, its context, its method)
        self._waiting: dict[object, tuple[float, grpc.ServicerContext, str]] = {}

    def admit(self, context: grpc.ServicerContext) -> None:
        """Take a stream slot for the call of ``context``, or refuse the stream at once."""
        with self._lock:
            if len(self._holders) >= self.max_streams:
                raise TooManyStreams(f"{self.max_streams} streams are already running (--max-streams); "
                                     "retry later or send single requests")
            self._holders.add(context)

    def release(self, context: grpc.ServicerContext) -> None:
        """Give back the slot of ``context``'s call; one given back already (cancelled as idle) is not given twice."""
        with self._lock:
            self._holders.discard(context)

    @contextmanager
    def _waiting_on_client(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        key = object()
        with self._lock:
            self._waiting[key] = (time.monotonic(), context, method)
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(key, None)

    def received(self, requests: Iterable[T], context: grpc.ServicerContext, method: str) -> Iterator[T]:
        """``requests``, counting the wait for each one as waiting on the client."""
        iterator = iter(requests)
        while True:
            with self._waiting_on_client(context, method):
                request = next(iterator, _END)
            if request is _END:
                return
            yield request

    def sent(self, responses: Iterable[T], context: grpc.ServicerContext, method: str) -> Iterator[T]:
        """``responses``, counting the time grpcio takes to deliver each one as waiting on the client."""
        for response in responses:
            with self._waiting_on_client(context, method):
                yield response  # grpcio resumes this generator once the client has taken the answer

    def cancel_idle(self) -> int:
        """Cancel every stream that has waited on its client longer than the idle timeout; returns how many."""
        deadline = time.monotonic() - self.idle_timeout
        with self._lock:
            idle = [(key, entry) for key, entry in self._waiting.items() if entry[0] < deadline]
            for key, _ in idle:
                del self._waiting[key]
        for _, (since, context, method) in idle:
            log.warning("stream idle too long; cancelled", extra={
                "method": method, "idle_seconds": round(time.monotonic() - since, 1)})
            # The slot first: the client learns of the cancel at once, while the call's own thread
            # may take a while to wake up and finish, and a client that opens its next stream
            # straight away must find the slot free.
            self.release(context)
            context.cancel()
        return len(idle)

    def watch(self, stop: threading.Event) -> None:
        """Cancel idle streams until ``stop``, checking a few times per timeout."""
        if self.idle_timeout <= 0:
            return
        while not stop.wait(min(1.0, self.idle_timeout / 4)):
            self.cancel_idle()
