"""Answering a request stream in order while the next requests are already being computed."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Iterable, Iterator, TypeVar

R = TypeVar("R")
A = TypeVar("A")

_END = object()


def in_order(requests: Iterable[R], start: Callable[[R], Future], answer: Callable[[R, Future], A],
             depth: int) -> Iterator[A]:
    """``answer(request, future)`` for each request in turn, with up to ``depth`` requests started ahead.

    The requests are read on a thread of their own, so a request is answered
    as soon as it is computed - a client that waits for each answer before it
    sends the next request is served, not left waiting for a read-ahead - and
    while one request is computed the next ones are read and started, so one
    stream keeps every core busy. ``start`` may refuse a request by raising:
    the stream ends with that error once every request before it has been
    answered. When the caller stops listening, unanswered work is cancelled.
    """
    started: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(item: tuple) -> bool:
        while not stopped.is_set():
            try:
                started.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for request in requests:
                future = start(request)
                if not hand_over((request, future)):
                    future.cancel()
                    return
        except Exception as exc:  # a refused request, or the call ended under the reader
            hand_over((_END, exc))
        else:
            hand_over((_END, None))

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    try:
        while True:
            request, outcome = started.get()
            if request is _END:
                if outcome is not None:
                    raise outcome
                return
            yield answer(request, outcome)
    finally:
        stopped.set()
        while not started.empty():
            request, outcome = started.get_nowait()
            if request is not _END:
                outcome.cancel()
