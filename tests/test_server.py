"""The gRPC contract, end to end: a real server on loopback, real channels, real models."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from digitserve.v1 import digits_pb2 as pb
from tests.conftest import QUICK_TRAINING, ROOT, TRAIN_LIMIT
from tests.ping_pong import one_at_a_time


def u8(images: np.ndarray, model: str = "") -> pb.PredictRequest:
    return pb.PredictRequest(u8=np.ascontiguousarray(images, np.uint8).tobytes(), model=model)


def code_and_details(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def health_status(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


# --- Predict ---------------------------------------------------------------------------------

def test_predict_recognises_test_digits_with_the_default_ensemble(server, test_digits):
    images, labels = test_digits
    reply = server.stub.Predict(u8(images[:300]))
    digits = np.array([p.digit for p in reply.predictions])
    assert reply.model == "ensemble" and reply.version
    assert len(reply.predictions) == 300
    assert (digits == labels[:300]).mean() > 0.93
    first = reply.predictions[0]
    assert len(first.probabilities) == 10
    assert abs(sum(first.probabilities) - 1) < 1e-4
    assert first.confidence == pytest.approx(max(first.probabilities))
    assert first.digit == int(np.argmax(first.probabilities))


@pytest.mark.parametrize("model", ["knn", "svm", "rf", "ensemble"])
def test_every_model_answers_by_name_with_probabilities(server, test_digits, model):
    images, labels = test_digits
    reply = server.stub.Predict(u8(images[:100], model))
    assert reply.model == model
    probabilities = np.array([p.probabilities for p in reply.predictions])
    assert probabilities.shape == (100, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert (probabilities.argmax(axis=1) == labels[:100]).mean() > 0.85


def test_float_encoding_gives_the_same_answer_as_bytes(server, test_digits):
    images = test_digits[0][:20]
    as_bytes = server.stub.Predict(u8(images))
    as_floats = server.stub.Predict(pb.PredictRequest(f32=pb.FloatPixels(values=images.ravel().astype(float))))
    assert [p.digit for p in as_bytes.predictions] == [p.digit for p in as_floats.predictions]


@pytest.mark.parametrize("request_, field, words", [
    (pb.PredictRequest(u8=b"\x00" * 1000), "u8", ["image 1 has 216 pixels", "expected 784"]),
    (pb.PredictRequest(u8=b""), "u8", ["empty"]),
    (pb.PredictRequest(), "pixels", ["no images"]),
    (pb.PredictRequest(f32=pb.FloatPixels(values=[0.0] * 783)), "f32.values", ["image 0 has 783 pixels"]),
    (pb.PredictRequest(f32=pb.FloatPixels(values=[0.0] * 784 + [0.0] * 300 + [256.0] + [0.0] * 483)),
     "f32.values", ["image 1 pixel 300", "256", "0 to 255"]),
    (pb.PredictRequest(f32=pb.FloatPixels(values=[float("nan")] * 784)), "f32.values", ["image 0 pixel 0"]),
    (pb.PredictRequest(f32=pb.FloatPixels(values=[-1.0] * 784)), "f32.values", ["-1"]),
])
def test_bad_pixels_are_invalid_argument_naming_field_and_image(server, request_, field, words):
    code, details = code_and_details(lambda: server.stub.Predict(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field)
    for word in words:
        assert word in details


def test_batch_over_the_maximum_is_refused(serve, models_copy):
    small = serve(models_copy, max_batch=4)
    code, details = code_and_details(lambda: small.stub.Predict(u8(np.zeros((5, 784)))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "5 images" in details and "maximum of 4" in details
    assert len(small.stub.Predict(u8(np.zeros((4, 784)))).predictions) == 4


def test_unknown_model_is_not_found_and_lists_the_models(server):
    code, details = code_and_details(lambda: server.stub.Predict(u8(np.zeros((1, 784)), "resnet")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "'resnet'" in details and "ensemble, knn, rf, svm" in details


def test_garbage_bytes_at_the_method_path_are_invalid_argument(server):
    raw = server.channel.unary_unary("/digitserve.v1.Digits/Predict")
    code, details = code_and_details(lambda: raw(b"\xff\xff\xff\xff garbage", timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf" in details
    assert len(server.stub.Predict(u8(np.zeros((1, 784)))).predictions) == 1


# --- PredictStream ---------------------------------------------------------------------------

def test_stream_answers_every_chunk_in_order(server, test_digits):
    images, labels = test_digits
    chunks = [images[i:i + 250] for i in range(0, 1000, 250)]
    requests = (pb.PredictRequest(u8=c.tobytes(), sequence=i) for i, c in enumerate(chunks))
    replies = list(server.stub.PredictStream(requests))
    assert [r.sequence for r in replies] == [0, 1, 2, 3]
    digits = np.array([p.digit for r in replies for p in r.predictions])
    assert len(digits) == 1000
    assert (digits == labels[:1000]).mean() > 0.93


def test_stream_refuses_chunks_out_of_order(server):
    requests = iter([pb.PredictRequest(u8=bytes(784), sequence=0), pb.PredictRequest(u8=bytes(784), sequence=2)])
    replies = server.stub.PredictStream(requests)
    assert next(replies).sequence == 0
    code, details = code_and_details(lambda: next(replies))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "sequence: chunk 1 has sequence 2, expected 1"


def test_stream_answers_a_client_that_waits_for_each_answer(server, test_digits):
    images, labels = test_digits
    replies = one_at_a_time(lambda requests: server.stub.PredictStream(requests, timeout=10),
                            [pb.PredictRequest(u8=images[i:i + 1].tobytes(), sequence=i) for i in range(4)])
    assert [r.sequence for r in replies] == [0, 1, 2, 3]
    assert [r.predictions[0].digit for r in replies] == labels[:4].tolist()


# --- ListModels ------------------------------------------------------------------------------

def test_list_models_describes_every_model(server, models_copy):
    reply = server.stub.ListModels(pb.ListModelsRequest())
    by_name = {m.name: m for m in reply.models}
    assert sorted(by_name) == ["ensemble", "knn", "rf", "svm"]
    assert reply.default_model == "ensemble" and by_name["ensemble"].default
    assert list(by_name["ensemble"].members) == ["knn", "svm", "rf"]
    manifest = json.loads((models_copy / "svm.manifest.json").read_text())
    svm = by_name["svm"]
    assert (svm.kind, svm.version, svm.sha256, svm.size_bytes) == (
        "svm", manifest["version"], manifest["sha256"], manifest["size_bytes"])
    assert svm.training_samples == TRAIN_LIMIT
    assert 0.9 < svm.test_accuracy <= 1
    assert svm.created.endswith("Z") and svm.state == pb.LOADED and svm.probabilities
    assert all(m.probabilities for m in reply.models)


# --- Reload ----------------------------------------------------------------------------------

def _retrain_svm(models_dir: Path, mnist_dir: Path, seed: int = 1) -> None:
    from trainer.main import main as train

    # A new version is all these tests need: few digits, and none redrawn or styled.
    assert train(["--mnist-dir", str(mnist_dir), "--out", str(models_dir), "--models", "svm", "--limit", "500",
                  "--seed", str(seed), *QUICK_TRAINING]) == 0


def test_reload_reports_added_updated_removed_and_unchanged(server, models_copy, mnist_dir):
    before = {m.name: m.version for m in server.stub.ListModels(pb.ListModelsRequest()).models}
    (models_copy / "rf.manifest.json").unlink()
    shutil.copy(models_copy / "knn.manifest.json", models_copy / "knn2.manifest.json")
    (models_copy / "knn2.manifest.json").write_text(
        (models_copy / "knn.manifest.json").read_text().replace('"name": "knn"', '"name": "knn2"'))
    _retrain_svm(models_copy, mnist_dir)
    reply = server.stub.Reload(pb.ReloadRequest())
    assert [c.name for c in reply.added] == ["knn2"]
    assert [(c.name, c.previous_version) for c in reply.updated] == [("svm", before["svm"])]
    assert reply.updated[0].version != before["svm"]
    assert [(c.name, c.previous_version) for c in reply.removed] == [("rf", before["rf"])]
    assert sorted(reply.unchanged) == ["ensemble", "knn"]
    assert not reply.failed
    assert server.stub.Predict(u8(np.zeros((1, 784)), "svm")).version == reply.updated[0].version
    code, _ = code_and_details(lambda: server.stub.Predict(u8(np.zeros((1, 784)), "rf")))
    assert code == grpc.StatusCode.NOT_FOUND


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_corrupt_artifact_is_reported_and_the_old_version_keeps_serving(server, models_copy, mnist_dir,
                                                                          test_digits):
    old_version = server.stub.Predict(u8(np.zeros((1, 784)), "svm")).version
    _retrain_svm(models_copy, mnist_dir, seed=3)
    manifest = json.loads((models_copy / "svm.manifest.json").read_text())
    _truncate(models_copy / manifest["artifact"])
    reply = server.stub.Reload(pb.ReloadRequest())
    assert [f.name for f in reply.failed] == ["svm"]
    assert "truncated" in reply.failed[0].reason and reply.failed[0].path.endswith(manifest["artifact"])
    answer = server.stub.Predict(u8(test_digits[0][:50], "svm"))
    assert answer.version == old_version
    listed = {m.name: m for m in server.stub.ListModels(pb.ListModelsRequest()).models}
    assert listed["svm"].state == pb.LOADED and "truncated" in listed["svm"].error


@pytest.mark.heavy
def test_reload_while_clients_predict_fails_no_request(server, models_copy, mnist_dir, test_digits):
    images = test_digits[0][:8]
    failures, answers, stop = [], [], threading.Event()

    def client(model: str) -> None:
        while not stop.is_set():
            try:
                answers.append(server.stub.Predict(u8(images, model), timeout=10).version)
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=client, args=(m,)) for m in ("", "svm", "svm", "knn")]
    for t in threads:
        t.start()
    versions = set()
    for seed in (5, 6):
        _retrain_svm(models_copy, mnist_dir, seed=seed)
        reply = server.stub.Reload(pb.ReloadRequest())
        assert not reply.failed
        versions.add(reply.updated[0].version)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert len(answers) > 50
    assert versions <= set(answers)


# --- no models, health, reflection, auth -----------------------------------------------------

def test_without_models_the_server_starts_not_serving_and_serves_after_reload(serve, tmp_path, trained_models):
    empty = tmp_path / "empty"
    empty.mkdir()
    serving = serve(empty)
    assert health_status(serving.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_status(serving.channel, "digitserve.v1.Digits") == health_pb2.HealthCheckResponse.NOT_SERVING
    code, details = code_and_details(lambda: serving.stub.Predict(u8(np.zeros((1, 784)))))
    assert code == grpc.StatusCode.UNAVAILABLE and "no model is loaded" in details
    for path in trained_models.iterdir():
        if path.is_file():
            shutil.copy(path, empty / path.name)
    reply = serving.stub.Reload(pb.ReloadRequest())
    assert sorted(c.name for c in reply.added) == ["ensemble", "knn", "rf", "svm"]
    assert health_status(serving.channel) == health_pb2.HealthCheckResponse.SERVING
    assert serving.stub.Predict(u8(np.zeros((1, 784)))).model == "ensemble"


def test_reflection_lists_the_services(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in reply.list_services_response.service}
    assert {"digitserve.v1.Digits", "grpc.health.v1.Health"} <= names


def test_reflection_serves_the_stubs_descriptors_with_their_comments(server):
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="digitserve.v1.PredictRequest")
    reply = next(stub.ServerReflectionInfo(iter([request])))
    served = descriptor_pb2.FileDescriptorProto.FromString(reply.file_descriptor_response.file_descriptor_proto[0])
    comments = {location.leading_comments for location in served.source_code_info.location}
    assert " The model to use; empty means the server's default model.\n" in comments
    served.ClearField("source_code_info")  # otherwise just what the stubs carry: JSON names and all
    assert served == descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)


def test_reload_needs_the_operator_token_when_one_is_set(serve, models_copy):
    guarded = serve(models_copy, token="s3cret")
    code, details = code_and_details(lambda: guarded.stub.Reload(pb.ReloadRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "authorization" in details
    code, _ = code_and_details(lambda: guarded.stub.Reload(pb.ReloadRequest(),
                                                           metadata=[("authorization", "Bearer nope")]))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert guarded.stub.Reload(pb.ReloadRequest(), metadata=[("authorization", "Bearer s3cret")]).unchanged
    assert guarded.stub.ListModels(pb.ListModelsRequest()).models
    assert guarded.stub.Predict(u8(np.zeros((1, 784)))).predictions


def test_protect_all_guards_predict_too(serve, models_copy):
    guarded = serve(models_copy, token="s3cret", protect_all=True)
    code, _ = code_and_details(lambda: guarded.stub.Predict(u8(np.zeros((1, 784)))))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    reply = guarded.stub.Predict(u8(np.zeros((1, 784))), metadata=[("authorization", "Bearer s3cret")])
    assert len(reply.predictions) == 1


# --- the generated stubs -----------------------------------------------------------------------

def test_generated_stubs_and_descriptor_set_match_the_protos(tmp_path):
    from grpc_tools import protoc

    protos = ["digitserve/v1/digits.proto", "digitserve/open_inference/grpc_service.proto"]
    descriptors = "digitserve/descriptors.binpb"
    # the same command as `make proto`
    args = ["protoc", f"-I{ROOT / 'protos'}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}", "--include_source_info", "--include_imports",
            f"--descriptor_set_out={tmp_path / descriptors}", *(str(ROOT / "protos" / proto) for proto in protos)]
    (tmp_path / "digitserve").mkdir()
    assert protoc.main(args) == 0
    generated = [proto.removesuffix(".proto") + suffix for proto in protos
                 for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]
    for path in [*generated, descriptors]:
        assert filecmp.cmp(tmp_path / path, ROOT / path, shallow=False), \
            f"{path} is out of date with protos/: run make proto"


@pytest.mark.heavy
def test_server_command_starts_serves_and_stops_on_sigterm(trained_models, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "server.main", "--models-dir", str(trained_models),
                             "--host", "127.0.0.1", "--port", "0", "--log-format", "json"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        started = json.loads(proc.stderr.readline())
        assert started["event"] == "server started"
        port = started["address"].rsplit(":", 1)[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            deadline = time.time() + 20
            while health_status(channel) != health_pb2.HealthCheckResponse.SERVING:
                assert time.time() < deadline
                time.sleep(0.05)
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        events = [json.loads(line)["event"] for line in proc.stderr.read().splitlines() if line.startswith("{")]
        assert "model loaded" in events and events[-2:] == ["shutting down", "server stopped"]
    finally:
        proc.kill()


def test_watch_reloads_when_the_trainer_writes(serve, models_copy, mnist_dir):
    watching = serve(models_copy, watch=0.2)
    before = watching.stub.Predict(u8(np.zeros((1, 784)), "svm")).version
    _retrain_svm(models_copy, mnist_dir, seed=9)
    deadline = time.time() + 10
    while watching.stub.Predict(u8(np.zeros((1, 784)), "svm")).version == before:
        assert time.time() < deadline, "the watcher did not reload"
        time.sleep(0.1)


THREADS_AFTER_A_PREDICTION = """
import json, sys
from pathlib import Path
import grpc
from threadpoolctl import threadpool_info
from digitserve.contract import PIXELS
from digitserve.v1 import digits_pb2 as pb, digits_pb2_grpc
from server.main import start
from server.settings import Settings
running = start(Settings(host="127.0.0.1", port=0, models_dir=Path(sys.argv[1]), numeric_threads=1))
with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
    digits_pb2_grpc.DigitsStub(channel).Predict(pb.PredictRequest(u8=bytes(PIXELS)), timeout=60)
running.stop(grace=1)
print(json.dumps(threadpool_info()))
"""


@pytest.mark.heavy
def test_numeric_thread_limit_reaches_the_libraries_the_models_load_later(trained_models):
    # A fresh interpreter: the server loads scikit-learn, and with it scipy's OpenBLAS and OpenMP,
    # only with the first model, after it has set its limit. Each library left at one thread per
    # core made concurrent stream chunks fight over the cores.
    out = subprocess.run([sys.executable, "-c", THREADS_AFTER_A_PREDICTION, str(trained_models)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    pools = {(pool["internal_api"], Path(pool["filepath"]).name): pool["num_threads"] for pool in json.loads(out)}
    assert {api for api, _ in pools} >= {"openblas", "openmp"}, pools
    assert set(pools.values()) == {1}, pools
