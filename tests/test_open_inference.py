"""The Open Inference Protocol, end to end: Triton's tritonclient, grpcurl and our own stub against a real server."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import grpc
import kubernetes_validate
import numpy as np
import pytest
import yaml
from grpc_health.v1 import health_pb2

from digitserve.artifacts import FORMAT_VERSION
from digitserve.open_inference import grpc_service_pb2 as pb
from digitserve.open_inference import grpc_service_pb2_grpc
from digitserve.v1 import digits_pb2
from server.main import start
from server.settings import Settings, parse_settings
from tests.conftest import ROOT, Serving
from tests.ping_pong import one_at_a_time
from tests.test_server import code_and_details, health_status

COUNT = 500  # MNIST test digits sent through tritonclient
GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICE = "inference.GRPCInferenceService"


def infer_request(images: np.ndarray, model: str = "svm", datatype: str = "UINT8", **fields) -> pb.ModelInferRequest:
    """A request with the images as raw contents, in the datatype's encoding."""
    dtype = {"UINT8": np.uint8, "FP32": "<f4"}[datatype]
    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype=datatype, shape=images.shape)
    return pb.ModelInferRequest(model_name=model, inputs=[tensor],
                                raw_input_contents=[np.ascontiguousarray(images, dtype).tobytes()], **fields)


def typed_request(images: np.ndarray, datatype: str) -> pb.ModelInferRequest:
    contents = pb.InferTensorContents(uint_contents=images.ravel().tolist()) if datatype == "UINT8" else \
        pb.InferTensorContents(fp32_contents=images.ravel().astype(float).tolist())
    tensor = pb.ModelInferRequest.InferInputTensor(name="pixels", datatype=datatype, shape=images.shape,
                                                   contents=contents)
    return pb.ModelInferRequest(model_name="svm", inputs=[tensor])


def outputs(reply: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    dtypes = {"FP32": "<f4", "INT64": "<i8"}
    return {o.name: np.frombuffer(raw, dtypes[o.datatype]).reshape(o.shape)
            for o, raw in zip(reply.outputs, reply.raw_output_contents)}


def predict(server: Serving, images: np.ndarray, model: str, floats: bool = False) -> digits_pb2.PredictResponse:
    if floats:
        return server.stub.Predict(digits_pb2.PredictRequest(
            model=model, f32=digits_pb2.FloatPixels(values=images.ravel().astype(float))))
    return server.stub.Predict(digits_pb2.PredictRequest(model=model, u8=images.astype(np.uint8).tobytes()))


@pytest.fixture(scope="module")
def shared(trained_models):
    """One server for the read-only tests of this module (it never writes its models folder)."""
    settings = Settings(host="127.0.0.1", port=0, models_dir=trained_models)
    serving = Serving(start(settings), settings)
    yield serving
    serving.close()


@pytest.fixture(scope="module")
def oip(shared):
    return grpc_service_pb2_grpc.GRPCInferenceServiceStub(shared.channel)


# --- tritonclient ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def triton(shared, test_digits, tmp_path_factory) -> dict:
    """What Triton's own client saw, run in a process of its own (see tests/tritonclient_calls.py)."""
    images = tmp_path_factory.mktemp("triton") / "images.npy"
    np.save(images, test_digits[0][:COUNT])
    run = subprocess.run([sys.executable, "-m", "tests.tritonclient_calls", shared.address, str(images)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_tritonclient_sees_a_live_ready_server_and_its_models(triton, trained_models):
    assert triton["live"] is True and triton["ready"] is True
    assert triton["model_ready"] == {"ensemble": True, "svm": True, "no-such-model": False}
    assert triton["server_metadata"]["name"] == "digitserve"
    assert "classification" in triton["server_metadata"]["extensions"]
    meta = triton["model_metadata"]
    manifest = json.loads((trained_models / "ensemble.manifest.json").read_text())
    assert meta["name"] == "ensemble" and meta["versions"] == [manifest["version"]]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": ["-1", "784"]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]},
                               {"name": "digit", "datatype": "INT64", "shape": ["-1"]}]


def test_tritonclient_uint8_answers_exactly_what_predict_answers(triton, shared, test_digits):
    images, labels = test_digits[0][:COUNT], test_digits[1][:COUNT]
    reply = predict(shared, images, "ensemble")
    got = triton["uint8"]
    assert (got["model"], got["version"], got["id"]) == ("ensemble", reply.version, "u8")
    assert got["probabilities"]["datatype"] == "FP32" and got["probabilities"]["shape"] == [COUNT, 10]
    assert got["digit"]["datatype"] == "INT64" and got["digit"]["shape"] == [COUNT]
    assert got["digit"]["value"] == [p.digit for p in reply.predictions]
    assert np.array_equal(np.float32(got["probabilities"]["value"]), [p.probabilities for p in reply.predictions])
    assert (np.array(got["digit"]["value"]) == labels).mean() > 0.93


def test_tritonclient_fp32_28x28_answers_what_predict_with_floats_answers(triton, shared, test_digits):
    reply = predict(shared, test_digits[0][:COUNT], "ensemble", floats=True)
    assert triton["fp32"]["digit"]["value"] == [p.digit for p in reply.predictions]
    assert np.array_equal(np.float32(triton["fp32"]["probabilities"]["value"]),
                          [p.probabilities for p in reply.predictions])


def test_tritonclient_gets_only_the_outputs_it_asks_for(triton):
    assert list(triton["digit_only"]) == ["digit"]
    top3 = triton["top3"]["probabilities"]
    assert top3["datatype"] == "BYTES" and top3["shape"] == [5, 3]
    for row, digit in zip(top3["value"], triton["digit_only"]["digit"]["value"]):
        probabilities = [float(text.split(":")[0]) for text in row]
        assert int(row[0].split(":")[1]) == digit
        assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1


def test_tritonclient_stream_answers_in_order_and_goes_on_after_a_refusal(triton):
    first, refused, last = triton["stream"]
    assert first["id"] == "0" and last["id"] == "2" and len(first["digit"]) == 1
    assert "NOT_FOUND" in refused["error"] and "no-such-model" in refused["error"]


@pytest.mark.parametrize("case, status, words", [
    ("unknown_model", "StatusCode.NOT_FOUND", ["no-such-model", "available", "svm"]),
    ("wrong_shape", "StatusCode.INVALID_ARGUMENT", ["pixels", "[2, 783]", "[n, 784] or [n, 28, 28]"]),
    ("wrong_datatype", "StatusCode.INVALID_ARGUMENT", ["pixels", "INT32", "UINT8 or FP32"]),
    ("out_of_range", "StatusCode.INVALID_ARGUMENT", ["pixels", "image 1 pixel 300", "300.0", "0 to 255"]),
])
def test_tritonclient_refusals_name_the_input_the_index_and_what_was_expected(triton, case, status, words):
    assert triton[case]["status"] == status
    for word in words:
        assert word in triton[case]["message"]


# --- grpcurl -----------------------------------------------------------------------------------

def grpcurl(address: str, *args: str, data: dict | None = None) -> str:
    command = [str(GRPCURL), "-plaintext", "-max-time", "20"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    run = subprocess.run([*command, address, *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_grpcurl_lists_and_describes_both_services_through_reflection(shared):
    services = grpcurl(shared.address, "list").split()
    assert {SERVICE, "digitserve.v1.Digits", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    described = grpcurl(shared.address, "describe", SERVICE)
    for method in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                   "ModelStreamInfer"):
        assert f"rpc {method} (" in described
    assert "rpc Predict ( .digitserve.v1.PredictRequest )" in grpcurl(shared.address, "describe",
                                                                       "digitserve.v1.Digits")
    assert "repeated bytes raw_input_contents = 7;" in grpcurl(shared.address, "describe",
                                                                "inference.ModelInferRequest")


def test_grpcurl_describe_shows_the_protos_comments(shared):
    request = grpcurl(shared.address, "describe", "digitserve.v1.PredictRequest")
    assert "// N images of 784 bytes each, one uint8 per pixel, image after image:" in request
    assert "bytes u8 = 2;" in request
    assert "// The model to use; empty means the server's default model." in request
    assert "rpc Check ( .grpc.health.v1.HealthCheckRequest )" in grpcurl(shared.address, "describe",
                                                                        "grpc.health.v1.Health")


def test_grpcurl_json_model_infer_and_predict_agree(shared, test_digits):
    images = test_digits[0][:3]
    encoded = base64.b64encode(images.tobytes()).decode()
    answer = json.loads(grpcurl(shared.address, f"{SERVICE}/ModelInfer", data={
        "model_name": "svm", "id": "json-1",
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [3, 784]}],
        "raw_input_contents": [encoded]}))
    assert answer["id"] == "json-1" and [o["name"] for o in answer["outputs"]] == ["probabilities", "digit"]
    digits = np.frombuffer(base64.b64decode(answer["raw_output_contents"][1]), "<i8").tolist()
    predicted = json.loads(grpcurl(shared.address, "digitserve.v1.Digits/Predict",
                                   data={"model": "svm", "u8": encoded}))
    assert digits == [p.get("digit", 0) for p in predicted["predictions"]]  # JSON omits a digit of 0
    typed = json.loads(grpcurl(shared.address, f"{SERVICE}/ModelInfer", data={
        "model_name": "svm", "outputs": [{"name": "digit"}],
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [3, 28, 28],
                    "contents": {"fp32_contents": images.ravel().tolist()}}]}))
    assert np.frombuffer(base64.b64decode(typed["raw_output_contents"][0]), "<i8").tolist() == digits


# --- our own stub: encodings, limits and refusals ----------------------------------------------

@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
def test_typed_contents_answer_like_raw_contents(oip, test_digits, datatype):
    images = test_digits[0][:20]
    typed = outputs(oip.ModelInfer(typed_request(images, datatype)))
    raw = outputs(oip.ModelInfer(infer_request(images, datatype=datatype)))
    assert np.array_equal(typed["digit"], raw["digit"])
    assert np.array_equal(typed["probabilities"], raw["probabilities"])


def test_default_model_version_and_metadata(oip, shared):
    model = shared.running.registry.resolve("svm")
    reply = oip.ModelInfer(infer_request(np.zeros((1, 784)), model_version=model.version))
    assert (reply.model_name, reply.model_version) == ("svm", model.version)
    assert oip.ModelInfer(infer_request(np.zeros((1, 784)), model="")).model_name == "ensemble"
    assert oip.ModelReady(pb.ModelReadyRequest(name="svm", version=model.version)).ready
    assert not oip.ModelReady(pb.ModelReadyRequest(name="svm", version="old")).ready
    code, details = code_and_details(lambda: oip.ModelInfer(infer_request(np.zeros((1, 784)), model_version="old")))
    assert code == grpc.StatusCode.NOT_FOUND and "no version 'old'" in details and model.version in details
    code, _ = code_and_details(lambda: oip.ModelMetadata(pb.ModelMetadataRequest(name="no-such-model")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert health_status(shared.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def with_input(raw: list[bytes], **tensor_fields) -> pb.ModelInferRequest:
    """A request for two images whose input tensor and raw contents are as given."""
    fields = {"name": "pixels", "datatype": "UINT8", "shape": [2, 784], **tensor_fields}
    return pb.ModelInferRequest(model_name="svm", inputs=[pb.ModelInferRequest.InferInputTensor(**fields)],
                                raw_input_contents=raw)


TWO = bytes(2 * 784)


@pytest.mark.parametrize("request_, words", [
    (with_input([bytes(784)]), ["pixels", "shape [2, 784] holds 2 images", "hold 1"]),
    (with_input([bytes(1000)]), ["pixels", "image 1 has 216 pixels", "expected 784"]),
    (with_input([b"", b""]), ["raw_input_contents", "2 entries for 1 input"]),
    (with_input([TWO], contents=pb.InferTensorContents(uint_contents=[0] * 1568)), ["typed contents and raw"]),
    (with_input([TWO], datatype="FP32"), ["pixels", "image 0 has 392 pixels"]),
    (with_input([bytes(3)], datatype="FP32"), ["pixels", "3 bytes of raw FP32", "4-byte values"]),
    (with_input([TWO], name="image"), ["inputs", "'image'", "expected one input 'pixels'"]),
    (pb.ModelInferRequest(model_name="svm"), ["inputs", "expected one input 'pixels'"]),
    (typed_request(np.full((1, 784), 300), "UINT8"), ["pixels", "image 0 pixel 0 is 300.0", "0 to 255"]),
    (typed_request(np.full((2, 784), np.nan), "FP32"), ["pixels", "image 0 pixel 0 is nan"]),
    (infer_request(np.zeros((0, 784))), ["pixels", "empty"]),
    (infer_request(np.zeros((1, 784)), outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="logits")]),
     ["outputs[0]", "'logits'", "'probabilities' or 'digit'"]),
    (infer_request(np.zeros((1, 784)), outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(
        name="digit", parameters={"classification": pb.InferParameter(int64_param=2)})]),
     ["outputs[0]", "classification", "1 to 10", "'probabilities'"]),
])
def test_bad_requests_are_invalid_argument_naming_what_was_expected(oip, request_, words):
    code, details = code_and_details(lambda: oip.ModelInfer(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for word in words:
        assert word in details


def test_undecodable_bytes_are_invalid_argument(shared):
    infer = shared.channel.unary_unary(f"/{SERVICE}/ModelInfer")
    code, details = code_and_details(lambda: infer(b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid protobuf" in details


def test_the_batch_limit_is_digitserve_v1s(serve, models_copy):
    small = serve(models_copy, max_batch=4)
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(small.channel)
    assert len(outputs(stub.ModelInfer(infer_request(np.zeros((4, 784)))))["digit"]) == 4
    code, details = code_and_details(lambda: stub.ModelInfer(infer_request(np.zeros((5, 784)))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch of 5 images is over the maximum of 4" in details


def test_without_models_the_server_is_live_but_not_ready(serve, tmp_path):
    empty = serve(tmp_path)
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(empty.channel)
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert not stub.ServerReady(pb.ServerReadyRequest()).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="svm")).ready
    code, details = code_and_details(lambda: stub.ModelInfer(infer_request(np.zeros((1, 784)))))
    assert code == grpc.StatusCode.UNAVAILABLE and "no model is loaded" in details


def test_stream_answers_each_request_and_reports_refusals_in_place(oip, test_digits):
    images = test_digits[0][:2]
    replies = list(oip.ModelStreamInfer(iter([
        infer_request(images[:1], id="a"), infer_request(images[:1], model="nope"),
        infer_request(np.zeros((1, 783)), id="c"), infer_request(images, id="d")])))
    assert [r.infer_response.id for r in replies] == ["a", "", "", "d"]
    assert replies[1].error_message.startswith("NOT_FOUND") and "'nope'" in replies[1].error_message
    assert replies[2].error_message.startswith("INVALID_ARGUMENT") and "[1, 783]" in replies[2].error_message
    assert len(outputs(replies[3].infer_response)["digit"]) == 2


def test_stream_answers_a_client_that_waits_for_each_answer(oip, test_digits):
    images, labels = test_digits
    replies = one_at_a_time(lambda requests: oip.ModelStreamInfer(requests, timeout=10),
                            [infer_request(images[i:i + 1], id=str(i)) for i in range(4)])
    assert [r.infer_response.id for r in replies] == ["0", "1", "2", "3"]
    assert [int(outputs(r.infer_response)["digit"][0]) for r in replies] == labels[:4].tolist()


def test_protect_all_guards_model_infer(serve, models_copy):
    guarded = serve(models_copy, token="s3cret", protect_all=True)
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(guarded.channel)
    code, _ = code_and_details(lambda: stub.ModelInfer(infer_request(np.zeros((1, 784)))))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = code_and_details(lambda: list(stub.ModelStreamInfer(iter([infer_request(np.zeros((1, 784)))]))))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    reply = stub.ModelInfer(infer_request(np.zeros((1, 784))), metadata=[("authorization", "Bearer s3cret")])
    assert reply.model_name == "svm"
    # Probes need no secret, like grpc.health.v1's.
    assert stub.ServerLive(pb.ServerLiveRequest()).live and stub.ServerReady(pb.ServerReadyRequest()).ready


# --- KServe ------------------------------------------------------------------------------------

KSERVE = ROOT / "deploy/kubernetes/kserve"


def kserve(kind: str) -> dict:
    """The one resource of ``kind`` in deploy/kubernetes/kserve/."""
    found = [doc for path in sorted(KSERVE.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
             if doc and doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in {KSERVE}, found {len(found)}"
    return found[0]


def test_kserve_serving_runtime_runs_the_server_on_its_grpc_port():
    runtime = kserve("ServingRuntime")
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1" and runtime["metadata"]["name"]
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["grpc-v2"]
    assert spec["supportedModelFormats"] == [{"name": "digitserve", "version": str(FORMAT_VERSION),
                                              "autoSelect": True}]
    (container,) = spec["containers"]
    # KServe merges the predictor into the container named kserve-container.
    assert container["name"] == "kserve-container" and container["image"]
    # Knative serves one port; a gRPC one is named h2c.
    (port,) = container["ports"]
    assert port["name"] == "h2c" and port["protocol"] == "TCP"
    settings = parse_settings(container["args"], environ={})
    assert settings.port == port["containerPort"]
    assert str(settings.models_dir) == "/mnt/models"  # where KServe's storage initializer puts storageUri
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["grpc"]["port"] == port["containerPort"]
    # Kubernetes has no schema for KServe's resources; the container itself is checked as a Pod's.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "digitserve"}, "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, kubernetes_validate.utils.latest_version(), strict=True)


def test_kserve_inference_service_asks_for_the_runtime_and_grpc_v2():
    runtime, service = kserve("ServingRuntime"), kserve("InferenceService")
    assert service["apiVersion"] == "serving.kserve.io/v1beta1" and service["metadata"]["name"]
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"] in [{k: f[k] for k in ("name", "version")}
                                    for f in runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["storageUri"].split("://")[0] in {"pvc", "s3", "gs", "https", "hdfs", "oci"}
