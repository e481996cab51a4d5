"""What the Open Inference Protocol costs: ModelInfer next to digitserve.v1 Predict and the in-process floor.

One server process (as users run it) answers both protocols; the same
artifact is called in this process as the floor, with the numeric libraries
pinned to the same thread count. Single images are timed interleaved, floor,
Predict and ModelInfer one after another, so all three see the same noise, and
ModelInfer's cost is the median of its paired differences with Predict. Then
1,000-image requests, the same way. Results go to bench/results-open-inference.json.

    python -m bench.open_inference [--models-dir models] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, data_arguments, machine, mnist, model_manifest
from bench.process import ServerProcess
from digitserve.artifacts import load_estimator
from digitserve.open_inference import grpc_service_pb2 as oip
from digitserve.open_inference import grpc_service_pb2_grpc
from digitserve.threads import limit_numeric_threads
from digitserve.v1 import digits_pb2 as pb

TARGET_ADDED_MS = 0.2  # ModelInfer over Predict, per single image


def model_infer_request(images: np.ndarray, model: str) -> oip.ModelInferRequest:
    tensor = oip.ModelInferRequest.InferInputTensor(name="pixels", datatype="UINT8", shape=images.shape)
    return oip.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[images.tobytes()])


def elapsed_ms(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def paired(calls: dict, repeats: int) -> dict[str, np.ndarray]:
    """Milliseconds of each call, the calls taken in turn ``repeats`` times."""
    times = {name: np.empty(repeats) for name in calls}
    for k in range(repeats):
        for name, call in calls.items():
            times[name][k] = elapsed_ms(lambda: call(k))
    return times


def summary(times: dict[str, np.ndarray]) -> dict:
    p50 = {name: round(float(np.median(t)), 3) for name, t in times.items()}
    return {
        "p50_ms": p50,
        "p95_ms": {name: round(float(np.percentile(t, 95)), 3) for name, t in times.items()},
        "model_infer_over_predict_ms": round(float(np.median(times["model_infer"] - times["predict"])), 3),
        "predict_over_floor_ms": round(float(np.median(times["predict"] - times["floor"])), 3),
    }


def measure(server: ServerProcess, estimator, model: str, images: np.ndarray, size: int, repeats: int) -> dict:
    """Floor, Predict and ModelInfer on requests of ``size`` images, checked to agree."""
    stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(server.channel)
    batches = [images[i * size:(i + 1) * size] for i in range(max(1, min(64, len(images) // size)))]
    predicts = [pb.PredictRequest(model=model, u8=b.tobytes()) for b in batches]
    infers = [model_infer_request(b, model) for b in batches]

    served = np.frombuffer(stub.ModelInfer(infers[0]).raw_output_contents[1], "<i8")
    assert (served == [p.digit for p in server.stub.Predict(predicts[0]).predictions]).all()
    assert (served == np.asarray(estimator.predict_proba(batches[0])).argmax(axis=1)).all()

    calls = {
        "floor": lambda k: estimator.predict_proba(batches[k % len(batches)]),
        "predict": lambda k: server.stub.Predict(predicts[k % len(batches)]),
        "model_infer": lambda k: stub.ModelInfer(infers[k % len(batches)]),
    }
    paired(calls, min(repeats, 50))  # warm-up
    return {"images_per_request": size, "requests": repeats, **summary(paired(calls, repeats))}


def main(argv: list[str] | None = None) -> int:
    parser = data_arguments(argparse.ArgumentParser(prog="bench.open_inference",
                                                    description=__doc__.split("\n\n")[0]))
    parser.add_argument("--model", default="ensemble", help="the model to measure")
    parser.add_argument("--threads", type=int, default=1, help="numeric threads, server and floor alike")
    parser.add_argument("--requests", type=int, default=1500, help="single-image requests of each kind")
    parser.add_argument("--batch-requests", type=int, default=30, help="1,000-image requests of each kind")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-open-inference.json")
    args = parser.parse_args(argv)

    manifest = model_manifest(args.models_dir, args.model, "bench.open_inference")
    if manifest is None:
        return 2
    images, _ = mnist(args.mnist_dir, "t10k")
    results: dict = {"machine": machine(args.threads), "model": args.model,
                     "version": manifest.version}
    with limit_numeric_threads(args.threads):
        estimator = load_estimator(args.models_dir, manifest)
        server = ServerProcess(args.models_dir, env={"DIGITS_NUMERIC_THREADS": str(args.threads)})
        try:
            print("bench.open_inference: single images ...", file=sys.stderr)
            results["single"] = measure(server, estimator, args.model, images, 1, args.requests)
            print("bench.open_inference: 1,000-image requests ...", file=sys.stderr)
            results["batch_1000"] = measure(server, estimator, args.model, images, 1000, args.batch_requests)
        finally:
            server.stop()
    results["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]
    added = results["single"]["model_infer_over_predict_ms"]
    results["targets"] = {f"ModelInfer adds <= {TARGET_ADDED_MS} ms per single image over Predict":
                          added <= TARGET_ADDED_MS}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
