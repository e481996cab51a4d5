"""The Open Inference Protocol (KServe V2, Triton's ``inference.GRPCInferenceService``) over the same models.

A transport beside ``server/servicer.py``, as thin: a request's input tensor
becomes the same (n, 784) images through the same decoders, the same
``Predictor`` answers them (so the same micro-batching, limits and status
codes), and its result becomes output tensors. Every served model is a model
of the same name whose one version is its artifact's version. Access, request
parsing and errors are server/interceptor.py's, as for every service.
"""

from __future__ import annotations

import struct
from concurrent.futures import Future
from importlib import metadata
from typing import Iterator

import numpy as np

from digitserve.contract import CLASSES, IMAGE_SIDE, PIXELS
from digitserve.open_inference import grpc_service_pb2 as pb
from digitserve.open_inference import grpc_service_pb2_grpc
from server.errors import InvalidInput, ModelNotFound, ServingError, clip
from server.inference import Result, Serving, decode_f32, decode_u8
from server.pipeline import in_order
from server.registry import LoadedModel

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "digitserve"
SERVER_VERSION = metadata.version("digitserve")
# Triton's classification extension: an output parameter "classification" = k
# answers the k likeliest classes as BYTES "probability:class" strings.
EXTENSIONS = ("classification",)
CLASSIFICATION = "classification"
# The specification names platforms "<framework>_<format>".
PLATFORM = "sklearn_joblib"

INPUT = "pixels"
PROBABILITIES = "probabilities"
DIGIT = "digit"
_Tensor = pb.ModelMetadataResponse.TensorMetadata
# FP32 (values 0..255) and the shape [-1, 28, 28] are accepted too; metadata names one of each.
INPUTS = (_Tensor(name=INPUT, datatype="UINT8", shape=[-1, PIXELS]),)
OUTPUTS = (_Tensor(name=PROBABILITIES, datatype="FP32", shape=[-1, len(CLASSES)]),
           _Tensor(name=DIGIT, datatype="INT64", shape=[-1]))
_EXPECTED = f"one input {INPUT!r}, UINT8 or FP32, of shape [n, {PIXELS}] or [n, {IMAGE_SIDE}, {IMAGE_SIDE}]"


def _shape_text(shape: list[int]) -> str:
    """A shape for an error message, its first dimensions only: a client's shape can be any length."""
    return "[" + ", ".join(map(str, shape[:4])) + (", ...]" if len(shape) > 4 else "]")


def _image_count(shape: list[int]) -> int:
    """How many images a shape [n, 784] or [n, 28, 28] holds."""
    if shape and shape[0] >= 0 and (shape[1:] == [PIXELS] or shape[1:] == [IMAGE_SIDE, IMAGE_SIDE]):
        return shape[0]
    raise InvalidInput(f"{INPUT}: shape {_shape_text(shape)} is not [n, {PIXELS}] or [n, {IMAGE_SIDE}, {IMAGE_SIDE}]")


def _raw_contents(request: pb.ModelInferRequest) -> bytes | None:
    """The input's raw bytes, or None when it comes as typed contents."""
    raw = request.raw_input_contents
    if not raw:
        return None
    if len(raw) != 1:
        raise InvalidInput(f"raw_input_contents: {len(raw)} entries for 1 input; expected one per input")
    if request.inputs[0].HasField("contents"):
        raise InvalidInput(f"{INPUT}: has typed contents and raw_input_contents; send one of them")
    return raw[0]


def _images(request: pb.ModelInferRequest, max_batch: int) -> np.ndarray:
    """The request's input tensor as (n, 784) images, checked like digitserve.v1's pixels."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
        raise InvalidInput(f"inputs: got {clip(', '.join(t.name for t in request.inputs))}, expected {_EXPECTED}")
    tensor = request.inputs[0]
    shape = list(tensor.shape)
    count = _image_count(shape)
    raw = _raw_contents(request)
    # Typed contents are checked as digitserve.v1 checks f32 values: finite, from 0 to 255.
    if tensor.datatype == "UINT8":
        images = decode_u8(raw, max_batch, INPUT) if raw is not None else \
            decode_f32(tensor.contents.uint_contents, max_batch, f"{INPUT} uint_contents").astype(np.uint8)
    elif tensor.datatype == "FP32":
        if raw is not None and len(raw) % 4:
            raise InvalidInput(f"{INPUT}: {len(raw)} bytes of raw FP32 is not a whole number of 4-byte values")
        images = decode_f32(np.frombuffer(raw, "<f4"), max_batch, INPUT) if raw is not None else \
            decode_f32(tensor.contents.fp32_contents, max_batch, f"{INPUT} fp32_contents")
    else:
        raise InvalidInput(f"{INPUT}: datatype {clip(tensor.datatype)} is not accepted; expected UINT8 or FP32")
    if len(images) != count:
        raise InvalidInput(f"{INPUT}: shape {_shape_text(shape)} holds {count} images but the contents hold "
                           f"{len(images)}")
    return images


def _wanted_outputs(request: pb.ModelInferRequest) -> list[tuple[str, int]]:
    """(output name, classification count or 0) for every output the request asks for; all when it names none."""
    if not request.outputs:
        return [(PROBABILITIES, 0), (DIGIT, 0)]
    wanted = []
    for index, output in enumerate(request.outputs):
        if output.name not in (PROBABILITIES, DIGIT):
            raise InvalidInput(f"outputs[{index}]: {clip(output.name)} is not an output; "
                               f"expected {PROBABILITIES!r} or {DIGIT!r}")
        classes = 0
        if CLASSIFICATION in output.parameters:
            parameter = output.parameters[CLASSIFICATION]
            kind = parameter.WhichOneof("parameter_choice")
            classes = getattr(parameter, kind) if kind in ("int64_param", "uint64_param") else 0
            if output.name != PROBABILITIES or not 1 <= classes <= len(CLASSES):
                raise InvalidInput(f"outputs[{index}]: {CLASSIFICATION} must be an integer from 1 to "
                                   f"{len(CLASSES)} on {PROBABILITIES!r}")
        wanted.append((output.name, classes))
    return wanted


def _bytes_tensor(strings: list[str]) -> bytes:
    """BYTES elements as the protocol lays them out raw: each prefixed by its 4-byte little-endian length."""
    return b"".join(struct.pack("<I", len(data)) + data for data in (s.encode() for s in strings))


def _classification(probabilities: np.ndarray, classes: int) -> bytes:
    likeliest = np.argsort(-probabilities, axis=1, kind="stable")[:, :classes]
    return _bytes_tensor([f"{row[c]:f}:{c}" for row, top in zip(probabilities, likeliest) for c in top])


def _infer_response(request: pb.ModelInferRequest, result: Result,
                    wanted: list[tuple[str, int]]) -> pb.ModelInferResponse:
    reply = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=request.id)
    count = len(result.probabilities)
    for name, classes in wanted:
        if classes:
            datatype, shape, data = "BYTES", [count, classes], _classification(result.probabilities, classes)
        elif name == PROBABILITIES:
            datatype, shape, data = "FP32", [count, len(CLASSES)], result.probabilities.astype("<f4").tobytes()
        else:
            datatype, shape, data = "INT64", [count], result.digits.astype("<i8").tobytes()
        reply.outputs.add(name=name, datatype=datatype, shape=shape)
        reply.raw_output_contents.append(data)
    return reply


class OpenInferenceServicer(Serving, grpc_service_pb2_grpc.GRPCInferenceServiceServicer):
    """The Open Inference Protocol's GRPCInferenceService over the same models and predictor."""

    def _model(self, name: str, version: str) -> LoadedModel:
        """The model a request names, which must be at ``version`` when one is given."""
        model = self.registry.resolve(name)
        if version and version != model.version:
            raise ModelNotFound(f"model {model.name!r} has no version {clip(version)}; it serves {model.version!r}")
        return model

    def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        model = self._model(request.model_name, request.model_version)
        images = _images(request, self.max_batch)
        wanted = _wanted_outputs(request)
        return _infer_response(request, self.predictor.predict(model.name, images), wanted)

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=bool(self.registry.snapshot().models))

    def ModelReady(self, request, context):
        try:
            self._model(request.name, request.version)
        except ServingError:  # not loaded, or no such model or version
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    def ModelMetadata(self, request, context):
        model = self._model(request.name, request.version)
        return pb.ModelMetadataResponse(name=model.name, versions=[model.version], platform=PLATFORM,
                                        inputs=INPUTS, outputs=OUTPUTS)

    def ModelInfer(self, request, context):
        return self._infer(request)

    def ModelStreamInfer(self, requests, context) -> Iterator[pb.ModelStreamInferResponse]:
        """Answers each request in order, computing the next ones on the stream pool meanwhile;
        a refused request is answered with its error and the stream goes on."""
        def answer(request: pb.ModelInferRequest, future: Future) -> pb.ModelStreamInferResponse:
            try:
                return pb.ModelStreamInferResponse(infer_response=future.result())
            except ServingError as exc:
                return pb.ModelStreamInferResponse(error_message=f"{exc.code.name}: {exc}")

        return in_order(requests, lambda request: self.stream_pool.submit(self._infer, request), answer,
                        self.stream_depth)
