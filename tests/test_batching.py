"""Micro-batching: concurrent requests share model calls and each gets its own answer."""

from __future__ import annotations

import threading

import numpy as np

from digitserve.artifacts import load_estimator, read_manifest
from server.batching import SMALL, MicroBatcher


class Counting:
    """A served model that counts how often, and with how many images, it is called."""

    def __init__(self, model):
        self.model = model
        self.calls: list[int] = []

    def predict_proba(self, images):
        self.calls.append(len(images))
        return self.model.predict_proba(images)


def test_concurrent_requests_are_batched_and_answered_exactly(trained_models, test_digits):
    svm = load_estimator(trained_models, read_manifest(trained_models / "svm.manifest.json"))
    counting = Counting(svm)
    batcher = MicroBatcher(counting)
    images = test_digits[0][:400]
    expected = svm.predict_proba(images)
    answers: dict[int, np.ndarray] = {}
    start = threading.Barrier(16)

    def client(k: int) -> None:
        start.wait()
        for i in range(k, 400, 16):
            answers[i] = batcher.answer(images[i:i + 1])[0]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = np.concatenate([answers[i] for i in range(400)])
    assert np.allclose(got, expected, atol=1e-5)
    assert sum(counting.calls) == 400
    assert len(counting.calls) < 300 and max(counting.calls) > 1  # requests really shared calls


def test_a_lone_request_runs_at_once_and_big_ones_alone(trained_models, test_digits):
    svm = load_estimator(trained_models, read_manifest(trained_models / "svm.manifest.json"))
    counting = Counting(svm)
    batcher = MicroBatcher(counting)
    batcher.answer(test_digits[0][:1])
    batcher.answer(test_digits[0][:SMALL + 1])
    assert counting.calls == [1, SMALL + 1]


def test_a_failing_model_fails_every_request_of_its_batch():
    class Broken:
        def predict_proba(self, images):
            raise ValueError("broken model")

    batcher = MicroBatcher(Broken())
    errors = []

    def client() -> None:
        try:
            batcher.answer(np.zeros((1, 784), np.uint8))
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["broken model"] * 8
    done = threading.Thread(target=client)  # the next request is not left waiting behind the failure
    done.start()
    done.join(timeout=5)
    assert not done.is_alive() and len(errors) == 9
