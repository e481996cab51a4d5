"""The gRPC transport of the Digits service: protobuf in, plain calls to the handlers, protobuf out.

Access, request parsing and the mapping of errors to statuses are not here:
server/interceptor.py applies them to every method of every service alike.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Iterator

from digitserve.contract import PIXELS
from digitserve.v1 import digits_pb2 as pb
from digitserve.v1 import digits_pb2_grpc
from server.errors import InvalidInput
from server.inference import Result, Serving, decode_f32, decode_u8
from server.pipeline import in_order
from server.registry import ReloadReport, Snapshot

SERVICE = pb.DESCRIPTOR.services_by_name["Digits"].full_name


def _images(request: pb.PredictRequest, max_batch: int):
    which = request.WhichOneof("pixels")
    if which == "u8":
        return decode_u8(request.u8, max_batch)
    if which == "f32":
        return decode_f32(request.f32.values, max_batch)
    raise InvalidInput(f"pixels: the request holds no images; set u8 ({PIXELS} bytes per image) or f32.values")


def _response(result: Result) -> pb.PredictResponse:
    reply = pb.PredictResponse(model=result.model, version=result.version)
    add = reply.predictions.add
    for digit, confidence, row, doubt in zip(result.digits.tolist(), result.confidences.tolist(),
                                             result.probabilities.tolist(), result.doubts):
        add(digit=digit, confidence=confidence, probabilities=row, unsure=bool(doubt), unsure_reason=doubt)
    return reply


def _model_info(snapshot: Snapshot) -> list[pb.ModelInfo]:
    infos = []
    for name, model in snapshot.models.items():
        m = model.manifest
        failure = snapshot.failures.get(name)
        infos.append(pb.ModelInfo(
            name=name, kind=m.kind, members=m.members, version=m.version, sha256=m.sha256,
            size_bytes=m.size_bytes, training_samples=m.training_samples, test_accuracy=m.test_accuracy,
            created=m.created, default=(name == snapshot.default), state=pb.LOADED,
            probabilities=m.probabilities, error=failure.reason if failure else "",
            load_seconds=model.load_seconds))
    for name, failure in snapshot.failures.items():
        if name not in snapshot.models:
            infos.append(pb.ModelInfo(name=name, state=pb.FAILED, error=f"{failure.path}: {failure.reason}"))
    return sorted(infos, key=lambda info: info.name)


def _reload_response(report: ReloadReport) -> pb.ReloadResponse:
    return pb.ReloadResponse(
        added=[pb.ModelChange(name=m.name, version=m.version) for m in report.added],
        updated=[pb.ModelChange(name=m.name, version=m.version, previous_version=old) for m, old in report.updated],
        removed=[pb.ModelChange(name=m.name, previous_version=m.version) for m in report.removed],
        failed=[pb.LoadFailure(name=f.name, path=f.path, reason=f.reason) for f in report.failed],
        unchanged=report.unchanged, default_model=report.default or "", seconds=report.seconds)


class DigitsServicer(Serving, digits_pb2_grpc.DigitsServicer):
    """The Digits service of digits.proto: Predict, PredictStream, ListModels and Reload."""

    def Predict(self, request, context):
        return _response(self.predictor.predict(request.model, _images(request, self.max_batch)))

    def PredictStream(self, requests, context) -> Iterator[pb.PredictResponse]:
        """Chunks are predicted ``stream_depth`` at a time on the stream pool, answered in order."""
        def start(numbered: tuple[int, pb.PredictRequest]) -> Future:
            position, request = numbered
            if request.HasField("sequence") and request.sequence != position:
                raise InvalidInput(f"sequence: chunk {position} has sequence {request.sequence}, "
                                   f"expected {position}")
            return self.stream_pool.submit(self.predictor.predict, request.model, _images(request, self.max_batch))

        def answer(numbered: tuple[int, pb.PredictRequest], future: Future) -> pb.PredictResponse:
            reply = _response(future.result())
            if numbered[1].HasField("sequence"):
                reply.sequence = numbered[1].sequence
            return reply

        return in_order(enumerate(requests), start, answer, self.stream_depth)

    def ListModels(self, request, context):
        snapshot = self.registry.snapshot()
        return pb.ListModelsResponse(models=_model_info(snapshot), default_model=snapshot.default or "")

    def Reload(self, request, context):
        return _reload_response(self.registry.reload())
