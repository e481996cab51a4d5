"""Prometheus metrics: a real server, real traffic, and /metrics scraped over HTTP before and after."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from digitserve.v1 import digits_pb2 as pb
from server.settings import parse_settings
from tests.conftest import free_port

DIGITS = "digitserve.v1.Digits"


def scrape(port: int) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def metered(serve, models_copy):
    port = free_port()
    serving = serve(models_copy, metrics_port=port)
    serving.metrics_port = port
    return serving


def images(n: int, model: str = "") -> pb.PredictRequest:
    return pb.PredictRequest(u8=bytes(784 * n), model=model)


def test_counters_move_by_exactly_the_traffic_sent(metered, test_digits):
    stub, port = metered.stub, metered.metrics_port
    before = scrape(port)
    for _ in range(5):
        stub.Predict(images(1, "svm"))
    for _ in range(3):
        stub.Predict(images(2))  # the default model, the ensemble
    for bad, code in ((images(1, "nope"), grpc.StatusCode.NOT_FOUND),
                      (pb.PredictRequest(u8=b"\x00" * 10), grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(bad)
        assert caught.value.code() == code
    chunks = [pb.PredictRequest(u8=test_digits[0][i * 10:(i + 1) * 10].tobytes(), model="knn") for i in range(3)]
    assert sum(len(r.predictions) for r in stub.PredictStream(iter(chunks))) == 30
    stub.ListModels(pb.ListModelsRequest())
    after = scrape(port)

    for (method, code), count in {("Predict", "OK"): 8, ("Predict", "NOT_FOUND"): 1,
                                  ("Predict", "INVALID_ARGUMENT"): 1, ("PredictStream", "OK"): 1,
                                  ("ListModels", "OK"): 1}.items():
        assert moved(before, after, "digits_rpcs_total", service=DIGITS, method=method, code=code) == count, code
    # The undecodable pixels asked for the default model, like the 3 requests that name none.
    for (method, model), count in {("Predict", "svm"): 5, ("Predict", "ensemble"): 4, ("Predict", "unknown"): 1,
                                   ("PredictStream", "knn"): 1, ("ListModels", ""): 1}.items():
        assert moved(before, after, "digits_rpc_duration_seconds_count", service=DIGITS, method=method,
                     model=model) == count, model
    assert moved(before, after, "digits_rpc_duration_seconds_bucket", service=DIGITS, method="Predict",
                 model="svm", le="+Inf") == 5

    predicted = "digits_images_predicted_total"
    assert moved(before, after, predicted, model="svm") == 5
    assert moved(before, after, predicted, model="ensemble") == 6
    assert moved(before, after, predicted, model="knn") == 30
    # One client, one request at a time: every svm request was a model call of its own.
    assert moved(before, after, "digits_batch_size_images_count", model="svm") == 5
    assert moved(before, after, "digits_batch_size_images_sum", model="svm") == 5
    assert moved(before, after, "digits_batch_size_requests_sum", model="svm") == 5
    # Stream chunks run two at a time and may share a call; the images add up either way.
    assert moved(before, after, "digits_batch_size_images_sum", model="knn") == 30
    assert 2 <= moved(before, after, "digits_batch_size_images_count", model="knn") <= 3

    assert value(after, "digits_rpcs_in_flight", service=DIGITS, method="Predict") == 0
    assert value(after, "digits_rpcs_in_flight", service=DIGITS, method="PredictStream") == 0
    assert value(after, "process_resident_memory_bytes") > 10e6
    assert value(after, "process_cpu_seconds_total") > 0


def test_open_inference_calls_are_counted_by_the_model_they_name(metered, test_digits):
    from digitserve.open_inference import grpc_service_pb2_grpc
    from tests.test_open_inference import infer_request

    infer = grpc_service_pb2_grpc.GRPCInferenceServiceStub(metered.channel).ModelInfer
    before = scrape(metered.metrics_port)
    for _ in range(3):
        infer(infer_request(test_digits[0][:2], model="knn"))
    after = scrape(metered.metrics_port)
    labels = {"service": "inference.GRPCInferenceService", "method": "ModelInfer"}
    assert moved(before, after, "digits_rpcs_total", **labels, code="OK") == 3
    assert moved(before, after, "digits_rpc_duration_seconds_count", **labels, model="knn") == 3
    assert moved(before, after, "digits_images_predicted_total", model="knn") == 6


def test_a_running_stream_is_counted_in_flight(metered):
    stub, port = metered.stub, metered.metrics_port
    seen: list[float] = []

    def chunks():
        yield images(1)
        # The server has the first chunk and waits for more: the call is in flight until the stream ends.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            count = value(scrape(port), "digits_rpcs_in_flight", service=DIGITS, method="PredictStream")
            if count:
                seen.append(count)
            time.sleep(0.01)
        yield images(1)

    assert len(list(stub.PredictStream(chunks()))) == 2
    assert seen == [1]
    assert value(scrape(port), "digits_rpcs_in_flight", service=DIGITS, method="PredictStream") == 0


def test_streams_that_fail_or_are_cancelled_are_counted_with_their_code(metered):
    stub, port = metered.stub, metered.metrics_port
    before = scrape(port)
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.PredictStream(iter([images(1), pb.PredictRequest(u8=b"\x00" * 10)])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    hold = threading.Event()

    def chunks():
        yield images(1)
        hold.wait(10)

    call = stub.PredictStream(chunks())
    deadline = time.monotonic() + 10
    while value(scrape(port), "digits_rpcs_in_flight", service=DIGITS, method="PredictStream") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    call.cancel()
    while value(after := scrape(port), "digits_rpcs_in_flight", service=DIGITS, method="PredictStream") != 0:
        assert time.monotonic() < deadline, "the cancelled stream never ended"
        time.sleep(0.01)
    hold.set()
    counted = {code: moved(before, after, "digits_rpcs_total", service=DIGITS, method="PredictStream", code=code)
               for code in ("INVALID_ARGUMENT", "CANCELLED", "OK")}
    # A cancel that comes while the server waits for the next request reaches the
    # handler, now and then, as the end of the requests: grpcio's synchronous server
    # gives the handler no way to tell the two apart, and the call counts as OK.
    assert counted["INVALID_ARGUMENT"] == 1 and counted["CANCELLED"] + counted["OK"] == 1, counted


def test_model_loads_failures_and_loaded_versions(metered):
    stub, port, folder = metered.stub, metered.metrics_port, metered.settings.models_dir
    start = scrape(port)
    versions = {m.name: m.version for m in stub.ListModels(pb.ListModelsRequest()).models}
    for name, version in versions.items():
        assert value(start, "digits_model_loads_total", model=name) == 1
        info = [labels for (metric, labels), v in start.items() if metric == "digits_model_info"
                and dict(labels)["model"] == name]
        assert len(info) == 1 and dict(info[0])["version"] == version
    assert dict(next(labels for (metric, labels) in start if metric == "digits_model_info"
                     and dict(labels)["default"] == "true"))["model"] == "ensemble"
    assert value(start, "digits_reloads_total") == 1

    # A damaged svm manifest: the load fails, the old version keeps serving and stays in the info metric.
    manifest = folder / "svm.manifest.json"
    good = manifest.read_text()
    manifest.write_text(json.dumps({**json.loads(good), "sha256": "0" * 64}))
    stub.Reload(pb.ReloadRequest())
    damaged = scrape(port)
    assert moved(start, damaged, "digits_model_load_failures_total", model="svm") == 1
    assert moved(start, damaged, "digits_model_loads_total", model="svm") == 0
    assert (("digits_model_info", (("default", "false"), ("kind", "svm"), ("model", "svm"),
                                   ("sha256", json.loads(good)["sha256"]), ("version", versions["svm"]))) in damaged)

    # The knn model removed, then put back: it leaves the info metric, then loads once more.
    knn = (folder / "knn.manifest.json").read_text()
    (folder / "knn.manifest.json").unlink()
    stub.Reload(pb.ReloadRequest())
    assert not any(m == "digits_model_info" and dict(labels)["model"] == "knn" for m, labels in scrape(port))
    (folder / "knn.manifest.json").write_text(knn)
    manifest.write_text(good)
    stub.Reload(pb.ReloadRequest())
    end = scrape(port)
    assert moved(start, end, "digits_model_loads_total", model="knn") == 1
    assert moved(start, end, "digits_model_loads_total", model="svm") == 0  # same sha256: nothing to load
    assert moved(start, end, "digits_reloads_total") == 3


def test_refused_calls_are_counted_with_their_code(serve, models_copy):
    port = free_port()
    server = serve(models_copy, metrics_port=port, token="s3cret")
    for metadata, code in (((), "UNAUTHENTICATED"), ((("authorization", "Bearer wrong"),), "PERMISSION_DENIED")):
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Reload(pb.ReloadRequest(), metadata=metadata)
        assert caught.value.code().name == code
    server.stub.Reload(pb.ReloadRequest(), metadata=(("authorization", "Bearer s3cret"),))
    after = scrape(port)
    for code in ("UNAUTHENTICATED", "PERMISSION_DENIED", "OK"):
        assert value(after, "digits_rpcs_total", service=DIGITS, method="Reload", code=code) == 1, code
    assert value(after, "digits_reloads_total") == 2  # at start, and the one allowed


@pytest.mark.heavy
def test_a_taken_metrics_port_stops_the_server_at_start(models_copy):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "digits-server"), "--models-dir", str(models_copy),
             "--host", "127.0.0.1", "--port", "0", "--metrics-port", str(port), "--log-format", "text"],
            capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert f"127.0.0.1:{port} (--metrics-port)" in done.stderr
    assert "Traceback" not in done.stderr and "server started" not in done.stderr


def test_metrics_are_off_unless_asked_for(server):
    assert server.running.metrics is None
    assert server.stub.Predict(images(1)).predictions


@pytest.mark.parametrize("flag, value_", [("--metrics-port", "-1"), ("--max-connection-age", "-5"),
                                           ("--max-connection-age-grace", "-1")])
def test_negative_fleet_settings_are_usage_errors(flag, value_, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_settings([flag, value_], environ={})
    assert exited.value.code == 2
    assert f"argument {flag}: must be 0 (" in capsys.readouterr().err


def test_model_label_values_stay_bounded_whatever_names_clients_send(metered):
    for name in (f"made-up-{k}" for k in range(20)):
        with pytest.raises(grpc.RpcError):
            metered.stub.Predict(images(1, name))
    models = {dict(labels).get("model") for name, labels in scrape(metered.metrics_port)
              if name.startswith("digits_rpc_duration_seconds")}
    assert models == {"unknown"}
    assert value(scrape(metered.metrics_port), "digits_rpcs_total", service=DIGITS, method="Predict",
                 code="NOT_FOUND") == 20
