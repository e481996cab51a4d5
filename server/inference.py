"""Prediction, independent of gRPC: pixels in, digits and probabilities out."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from digitserve.contract import PIXELS
from server.errors import InvalidInput
from server.registry import ModelRegistry


@dataclass(frozen=True)
class Result:
    model: str
    version: str
    # (n, 10) float32; row i belongs to image i.
    probabilities: np.ndarray
    # Why to doubt each answer, "" when there is no reason (digitserve.confidence).
    doubts: list[str]

    @property
    def digits(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidences(self) -> np.ndarray:
        return self.probabilities.max(axis=1)


def _check_count(field: str, values: int, unit: str, max_batch: int) -> int:
    if values == 0:
        raise InvalidInput(f"{field}: the batch is empty; send 1 to {max_batch} images of {PIXELS} pixels")
    whole, rest = divmod(values, PIXELS)
    if rest:
        raise InvalidInput(f"{field}: {values} {unit} is not a whole number of {PIXELS}-pixel images: "
                           f"image {whole} has {rest} pixels, expected {PIXELS}")
    if whole > max_batch:
        raise InvalidInput(f"{field}: batch of {whole} images is over the maximum of {max_batch}; "
                           "split it or use PredictStream")
    return whole


def decode_u8(data: bytes, max_batch: int, field: str = "u8") -> np.ndarray:
    """Images sent as uint8 bytes, viewed without a copy as (n, 784); errors name ``field``."""
    n = _check_count(field, len(data), "bytes", max_batch)
    return np.frombuffer(data, dtype=np.uint8).reshape(n, PIXELS)


def decode_f32(values: Sequence[float] | np.ndarray, max_batch: int, field: str = "f32.values") -> np.ndarray:
    """Images sent as numbers, checked to be finite and within 0..255, as float32; errors name ``field``."""
    n = _check_count(field, len(values), "values", max_batch)
    images = np.asarray(values, dtype=np.float32).reshape(n, PIXELS)
    bad = ~np.isfinite(images) | (images < 0) | (images > 255)
    if bad.any():
        image, pixel = map(int, np.argwhere(bad)[0])
        raise InvalidInput(f"{field}: image {image} pixel {pixel} is {float(images[image, pixel])!r}, "
                           "expected a value from 0 to 255")
    return images


class Predictor:
    """Answers batches of images with the model a request names."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def predict(self, model_name: str, images: np.ndarray) -> Result:
        model = self.registry.resolve(model_name)
        probabilities, doubts = model.batcher.answer(images)
        return Result(model.name, model.version, probabilities, doubts)


class Serving:
    """What the servicer of every service answers with (server/servicer.py, server/open_inference.py): the
    models, the predictor over them, the most images one request may carry, and the pool that computes
    stream chunks, ``stream_depth`` of one stream at a time."""

    def __init__(self, registry: ModelRegistry, predictor: Predictor, max_batch: int,
                 stream_pool: Executor, stream_depth: int = 2):
        self.registry = registry
        self.predictor = predictor
        self.max_batch = max_batch
        self.stream_pool = stream_pool
        self.stream_depth = stream_depth
