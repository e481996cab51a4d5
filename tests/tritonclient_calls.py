"""Drive a digitserve server with Triton's own Python client and print what it saw, as JSON.

Run as ``python -m tests.tritonclient_calls ADDRESS IMAGES.npy`` by tests/test_open_inference.py.
It runs in a process of its own because tritonclient registers its own
``inference.*`` messages in protobuf's default descriptor pool, where the
server's (digitserve/open_inference/grpc_service_pb2.py) would clash with them.
"""

from __future__ import annotations

import json
import queue
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def pixels(images: np.ndarray, datatype: str = "UINT8") -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(images.shape), datatype)
    tensor.set_data_from_numpy(images)
    return tensor


def refusal(call) -> dict:
    try:
        call()
    except InferenceServerException as exc:
        return {"status": exc.status(), "message": exc.message()}
    return {"status": "OK"}


def outputs_of(result: triton.InferResult) -> dict:
    return {o.name: {"datatype": o.datatype, "shape": list(o.shape), "value": result.as_numpy(o.name).tolist()}
            for o in result.get_response().outputs}


def stream(client: triton.InferenceServerClient, images: np.ndarray) -> list[dict]:
    """Three requests over ModelStreamInfer, the middle one to a model that does not exist."""
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    for k, model in enumerate(["svm", "no-such-model", "svm"]):
        client.async_stream_infer(model, [pixels(images[k:k + 1])], request_id=str(k))
    seen = []
    for _ in range(3):
        result, error = answers.get(timeout=30)
        seen.append({"error": str(error)} if error else
                    {"id": result.get_response().id, "digit": result.as_numpy("digit").tolist()})
    client.stop_stream()
    return seen


def main(address: str, images_file: str) -> dict:
    images = np.load(images_file)
    client = triton.InferenceServerClient(address)
    uint8 = client.infer("ensemble", [pixels(images)], request_id="u8")
    fp32 = client.infer("ensemble", [pixels(images.reshape(-1, 28, 28).astype(np.float32), "FP32")])
    digit_only = client.infer("svm", [pixels(images[:5])], outputs=[triton.InferRequestedOutput("digit")])
    top3 = client.infer("svm", [pixels(images[:5])],
                        outputs=[triton.InferRequestedOutput("probabilities", class_count=3)])
    too_bright = images[:2].astype(np.float32)
    too_bright[1, 300] = 300.0
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": {name: client.is_model_ready(name) for name in ("ensemble", "svm", "no-such-model")},
        "server_metadata": client.get_server_metadata(as_json=True),
        "model_metadata": client.get_model_metadata("ensemble", as_json=True),
        "uint8": {"model": uint8.get_response().model_name, "version": uint8.get_response().model_version,
                  "id": uint8.get_response().id, **outputs_of(uint8)},
        "fp32": outputs_of(fp32),
        "digit_only": outputs_of(digit_only),
        "top3": outputs_of(top3),
        "stream": stream(client, images),
        "unknown_model": refusal(lambda: client.infer("no-such-model", [pixels(images[:1])])),
        "wrong_shape": refusal(lambda: client.infer("svm", [pixels(images[:2, :783])])),
        "wrong_datatype": refusal(lambda: client.infer("svm", [pixels(images[:2].astype(np.int32), "INT32")])),
        "out_of_range": refusal(lambda: client.infer("svm", [pixels(too_bright, "FP32")])),
    }


if __name__ == "__main__":
    json.dump(main(*sys.argv[1:3]), sys.stdout, default=bytes.decode)  # BYTES elements as text
