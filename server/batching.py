"""Micro-batching: concurrent small requests to one model share one model call.

The call answers with probabilities and the reasons to doubt them together
(``digitserve.confidence.assess``): the features and the neighbour search
are computed once per batch for both.

A model answers eight images in little more time than one, so when requests
overlap, the first to arrive (the leader) runs everything queued in one call.
A request that finds the model idle runs at once on its own thread: a lone
client waits for nothing. When the leader is done with its own round it hands
the lead to the next waiting request, so nobody serves others indefinitely.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np


Answers = tuple[np.ndarray, list[str]]  # (n, 10) float32 probabilities, and why to doubt each answer ("" for none)

SMALL = 32  # requests up to this many images are batched; bigger ones run on their own


class _Waiting:
    __slots__ = ("images", "done", "result", "error", "lead")

    def __init__(self, images: np.ndarray):
        self.images = images
        self.done = threading.Event()
        self.result: Answers | None = None
        self.error: BaseException | None = None
        self.lead = False


class MicroBatcher:
    """Answers concurrent callers with ``assess(estimator, images)``, batching small requests."""

    def __init__(self, estimator: Any, on_batch: Callable[[int, int], None] | None = None):
        # Imported with the first model, not at start-up: it brings scikit-learn, which a
        # server that fails to start (a taken port, a bad certificate) need not load first.
        from digitserve.confidence import assess

        self._assess = assess
        self.estimator = estimator
        # Told (requests, images) after every model call that succeeded; metrics count batches with it.
        self._on_batch = on_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._busy = False

    def answer(self, images: np.ndarray) -> Answers:
        if len(images) > SMALL:
            answers = self._assess(self.estimator, images)
            if self._on_batch is not None:
                self._on_batch(1, len(images))
            return answers
        me = _Waiting(images)
        with self._lock:
            self._queue.append(me)
            leading = not self._busy
            self._busy = True
        if not leading:
            me.done.wait()
            if not me.lead:
                return self._outcome(me)
        while not me.done.is_set() or me.lead:
            me.lead = False
            with self._lock:
                batch, self._queue = self._queue, []
            self._run(batch)
        with self._lock:
            if self._queue:
                successor = self._queue[0]
                successor.lead = True
                successor.done.set()
            else:
                self._busy = False
        return self._outcome(me)

    def _run(self, batch: list[_Waiting]) -> None:
        try:
            probabilities, doubts = self._assess(self.estimator, np.concatenate([w.images for w in batch]))
            if self._on_batch is not None:
                self._on_batch(len(batch), len(probabilities))
        except BaseException as exc:  # every caller in the batch gets the error; none is left waiting
            for waiting in batch:
                waiting.error = exc
                waiting.done.set()
            return
        start = 0
        for waiting in batch:
            end = start + len(waiting.images)
            waiting.result = probabilities[start:end], doubts[start:end]
            start = end
            waiting.done.set()

    @staticmethod
    def _outcome(waiting: _Waiting) -> Answers:
        if waiting.error is not None:
            raise waiting.error
        return waiting.result
