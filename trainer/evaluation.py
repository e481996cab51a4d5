"""How good and how fast a fitted model is, measured on held-out test digits."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from digitserve.contract import CLASSES


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    per_class_recall: list[float]
    confusion: list[list[int]]  # confusion[true][predicted]
    test_samples: int
    fit_seconds: float
    batch_images_per_second: float
    single_image_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def single_image_ms(model: Any, images: np.ndarray, repeats: int = 50) -> float:
    """Median time of ``predict_proba`` on one image, after one warm-up call.

    Measured with one numeric thread, as the server runs by default: on a
    busy machine, multi-threaded BLAS makes a tiny product many times slower.
    """
    with threadpool_limits(1):
        model.predict_proba(images[:1])
        times = []
        for i in range(repeats):
            started = time.perf_counter()
            model.predict_proba(images[i % len(images): i % len(images) + 1])
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray,
             fit_seconds: float) -> tuple[Evaluation, np.ndarray]:
    """Score a model on test images; returns the evaluation and its probabilities."""
    started = time.perf_counter()
    probabilities = np.asarray(model.predict_proba(images))
    rate = len(images) / (time.perf_counter() - started)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, labels=CLASSES)
    totals = np.maximum(matrix.sum(axis=1), 1)
    evaluation = Evaluation(
        accuracy=float((predicted == labels).mean()),
        per_class_recall=[round(float(v), 4) for v in np.diag(matrix) / totals],
        confusion=matrix.tolist(),
        test_samples=len(labels),
        fit_seconds=round(fit_seconds, 2),
        batch_images_per_second=round(rate, 1),
        single_image_ms=round(single_image_ms(model, images), 3),
    )
    return evaluation, probabilities


def voting_accuracies(member_probabilities: list[np.ndarray], weights: list[float],
                      labels: np.ndarray) -> dict[str, float]:
    """Accuracy of hard voting (weighted majority of predicted digits) and soft voting (weighted mean)."""
    hard = sum(w * np.eye(len(CLASSES))[p.argmax(axis=1)] for p, w in zip(member_probabilities, weights))
    soft = sum(w * p for p, w in zip(member_probabilities, weights))
    return {"hard": float((hard.argmax(axis=1) == labels).mean()),
            "soft": float((soft.argmax(axis=1) == labels).mean())}
