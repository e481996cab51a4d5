"""A client that sends each stream message only once the answer to the previous one has arrived."""

from __future__ import annotations

import queue
from typing import Callable, Iterator


def one_at_a_time(open_stream: Callable[[Iterator], Iterator], requests: list, timeout: float = 10.0) -> list:
    """The answers to ``requests``, sent one by one over one stream, each after the last answer came."""
    outgoing: queue.Queue = queue.Queue()

    def sent() -> Iterator:
        while (request := outgoing.get(timeout=timeout)) is not None:
            yield request

    answers = open_stream(sent())
    received = []
    try:
        for request in requests:
            outgoing.put(request)
            received.append(next(answers))
    finally:
        outgoing.put(None)
    return received
