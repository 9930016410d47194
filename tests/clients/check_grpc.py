#!/usr/bin/env python3
"""Drives a running pipeserve's gRPC port with real clients: tritonclient's gRPC client on KServe's
Open Inference Protocol v2 (`inference.GRPCInferenceService`), Triton's own generated stubs for the
typed-contents path, and grpcio-health-checking's `grpc.health.v1` stub (kserve's client is in
check_kserve_grpc.py: both packages register `inference.*` in protobuf's one descriptor pool);
every answer is compared with the references recorded from transformers / sentence-transformers (tests/fixtures/golden/),
the same the REST v2 checks use. Run by tests/server/grpc.rs with the repo's .venv; exits non-zero
on any mismatch.

    check_grpc.py embeddings GRPC_ADDR HTTP_BASE NAME        # all-MiniLM-L6-v2
    check_grpc.py classification GRPC_ADDR HTTP_BASE NAME    # tiny-bert-sentiment
    check_grpc.py api-key GRPC_ADDR HTTP_BASE NAME KEY       # a server with --api-key KEY
    check_grpc.py shed GRPC_ADDR HTTP_BASE NAME              # --max-wait 3s --max-queue 4
    check_grpc.py deadline GRPC_ADDR HTTP_BASE NAME          # --max-wait 1s --request-timeout 300ms
    check_grpc.py health GRPC_ADDR HTTP_BASE EXPECTED        # SERVING or NOT_SERVING
    check_grpc.py one GRPC_ADDR HTTP_BASE NAME               # one embedding call (the drain test's)
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_clients import CHECKS, golden, same_vector  # noqa: E402


def infer(client, name: str, texts: list[str], **kwargs):
    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))
    return client.infer(name, [tensor], outputs=[grpcclient.InferRequestedOutput("output-0")], **kwargs)


def grpc_error(what: str, call, code: str, needle: str = ""):
    """Runs `call`, which must fail with gRPC status `code` (its message naming `needle`)."""
    try:
        call()
    except InferenceServerException as e:
        assert e.status() == f"StatusCode.{code}", f"{what}: expected {code}, got {e.status()} ({e})"
        assert needle in e.message(), f"{what}: {needle!r} not in {e.message()!r}"
        CHECKS.append(f"{what}: {code} {e.message()[:60]!r}")
        return e
    except grpc.RpcError as e:
        assert e.code().name == code, f"{what}: expected {code}, got {e.code()} ({e.details()})"
        assert needle in (e.details() or ""), f"{what}: {needle!r} not in {e.details()!r}"
        CHECKS.append(f"{what}: {code} {e.details()[:60]!r}")
        return e
    raise AssertionError(f"{what}: expected {code}, got a success")


def health(addr: str, service: str = "") -> str:
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def check_embeddings(addr: str, name: str) -> None:
    client = grpcclient.InferenceServerClient(url=addr)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    assert client.get_server_metadata().name == "pipeserve"
    meta = client.get_model_metadata(name)
    assert meta.name == name and meta.versions == ["1"], meta
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("text", "BYTES", [-1])], meta
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("output-0", "FP32", [-1, 384])], meta
    CHECKS.append(f"tritonclient grpc: live, ready, model {name} ready, metadata")
    assert health(addr) == "SERVING" and health(addr, "inference.GRPCInferenceService") == "SERVING"
    grpc_error("health of another service", lambda: health(addr, "other.Service"), "NOT_FOUND")
    CHECKS.append("grpc.health.v1: SERVING")

    # The sentence embeddings sentence-transformers makes, as FP32 [n, dim] (raw contents).
    cases = [c for c in golden("minilm-sentence-embeddings")["cases"]
             if c["parameters"] == {"normalize": True} and isinstance(c["inputs"], str)]
    assert len(cases) >= 2
    result = infer(client, name, [c["inputs"] for c in cases], request_id="my-id")
    vectors = result.as_numpy("output-0")
    assert vectors.dtype == np.float32 and vectors.shape == (len(cases), 384), (vectors.dtype, vectors.shape)
    for case, vector in zip(cases, vectors):
        same_vector(f"tritonclient grpc infer FP32 {case['inputs'][:30]!r}", vector, case["output"])
    assert result.get_response().id == "my-id"
    # Pipeline parameters ride in the request's parameters.
    tensor = grpcclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["Hello world."], dtype=object))
    short = client.infer(name, [tensor], parameters={"dimensions": 8, "normalize": False}).as_numpy("output-0")
    assert short.shape == (1, 8), short.shape

    # Typed contents in, typed contents out (Triton's stubs: another client's path); the request
    # id comes back in the metadata.
    with grpc.insecure_channel(addr) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=name)
        text = request.inputs.add(name="text", datatype="BYTES", shape=[len(cases)])
        text.contents.bytes_contents.extend([c["inputs"].encode() for c in cases])
        answer, call = stub.ModelInfer.with_call(request, metadata=[("x-request-id", "req-42")], timeout=30)
        metadata = dict(call.initial_metadata())
        assert metadata.get("x-request-id") == "req-42", metadata
        assert answer.id == "req-42" and not answer.raw_output_contents, answer.id
        out = answer.outputs[0]
        assert (out.name, out.datatype, list(out.shape)) == ("output-0", "FP32", [len(cases), 384])
        values = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(len(cases), 384)
        for case, vector in zip(cases, values):
            same_vector(f"typed contents FP32 {case['inputs'][:30]!r}", vector, case["output"])

    # Errors: each decided once, the same as over REST.
    grpc_error("another model", lambda: infer(client, "other", ["a"]), "NOT_FOUND", "not served")
    fp32 = grpcclient.InferInput("x", [1], "FP32")
    fp32.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    grpc_error("an FP32 tensor", lambda: client.infer(name, [fp32]), "INVALID_ARGUMENT", "BYTES")
    grpc_error("an empty text", lambda: infer(client, name, [""]), "INVALID_ARGUMENT", "empty")
    grpc_error("pooling", lambda: client.infer(name, [tensor], parameters={"pooling": "cls"}),
               "INVALID_ARGUMENT", "pooling")
    grpc_error("another output",
               lambda: client.infer(name, [tensor], outputs=[grpcclient.InferRequestedOutput("logits")]),
               "INVALID_ARGUMENT", "output-0")
    with grpc.insecure_channel(addr) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=name)
        request.inputs.add(name="text", datatype="BYTES", shape=[1])
        request.raw_input_contents.append(b"\x09\x00\x00\x00abc")
        grpc_error("raw contents cut short", lambda: stub.ModelInfer(request, timeout=10),
                   "INVALID_ARGUMENT", "inside an element")
        big = service_pb2.ModelInferRequest(model_name=name)
        big.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"a" * (3 << 20))
        # tonic refuses a message over its decode limit as OUT_OF_RANGE before any handler runs.
        grpc_error("a message over --body-limit", lambda: stub.ModelInfer(big, timeout=10), "OUT_OF_RANGE", "too large")


def check_classification(addr: str, base: str, name: str) -> None:
    import httpx

    client = grpcclient.InferenceServerClient(url=addr)
    labels = httpx.get(f"{base}/info").json()["labels"]
    cases = [c for c in golden("tiny-bert-sentiment-text-classification")["cases"]
             if c["parameters"] == {} and isinstance(c["inputs"], str)]
    assert cases
    ids = infer(client, name, [c["inputs"] for c in cases]).as_numpy("output-0")
    expected = [labels.index(c["output"][0]["label"]) for c in cases]
    assert ids.dtype == np.int64 and ids.tolist() == expected, (ids, expected)
    CHECKS.append(f"tritonclient grpc infer INT64 class ids {expected} as transformers' labels")
    meta = client.get_model_metadata(name)
    assert [t.name for t in meta.inputs] == ["text", "text_pair"], meta
    # A text pair as a second tensor: /predict's best label for the pair.
    text, pair = grpcclient.InferInput("text", [1], "BYTES"), grpcclient.InferInput("text_pair", [1], "BYTES")
    text.set_data_from_numpy(np.array(["A man is eating."], dtype=object))
    pair.set_data_from_numpy(np.array(["Someone eats."], dtype=object))
    got = client.infer(name, [text, pair]).as_numpy("output-0").tolist()
    predicted = httpx.post(f"{base}/predict",
                           json={"inputs": {"text": "A man is eating.", "text_pair": "Someone eats."}}).json()
    assert got == [labels.index(predicted[0][0]["label"])], (got, predicted)
    CHECKS.append(f"text pair: class {got} as /predict")


def check_api_key(addr: str, name: str, key: str) -> None:
    client = grpcclient.InferenceServerClient(url=addr)
    # Probes and server metadata stay open; the model's metadata, readiness and infer need the key.
    assert client.is_server_live() and client.is_server_ready() and health(addr) == "SERVING"
    grpc_error("infer without a key", lambda: infer(client, name, ["a"]), "UNAUTHENTICATED", "API key")
    grpc_error("metadata without a key", lambda: client.get_model_metadata(name), "UNAUTHENTICATED")
    grpc_error("a wrong key", lambda: infer(client, name, ["a"], headers={"x-api-key": "nope"}),
               "UNAUTHENTICATED", "invalid")
    for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
        assert infer(client, name, ["a"], headers=headers).as_numpy("output-0").shape[0] == 1
        assert client.is_model_ready(name, headers=headers)
    CHECKS.append("API key: Bearer and x-api-key accepted")


def check_shed(addr: str, base: str, name: str) -> None:
    import httpx

    client = grpcclient.InferenceServerClient(url=addr)
    results: list[object] = []

    def waiting(i: int) -> None:
        try:
            results.append(infer(grpcclient.InferenceServerClient(url=addr), name, [f"q {i}"]).as_numpy("output-0").shape)
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results.append(e)

    threads = [threading.Thread(target=waiting, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while "pipeserve_queue_depth 4" not in httpx.get(f"{base}/metrics").text:
        assert time.monotonic() < deadline, "the queue never filled"
        time.sleep(0.01)
    with grpc.insecure_channel(addr) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name=name)
        request.inputs.add(name="text", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"one more")
        started = time.monotonic()
        e = grpc_error("a full queue", lambda: stub.ModelInfer(request, timeout=10), "UNAVAILABLE", "overloaded")
        assert time.monotonic() - started < 1, "shed at once"
        trailers = dict(e.trailing_metadata())
        assert int(trailers["retry-after"]) >= 1, trailers
        assert "grpc-status-details-bin" in trailers, "google.rpc.RetryInfo in the details"
    assert health(addr) == "SERVING" and client.is_model_ready(name), "probes are not shed"
    for t in threads:
        t.join()
    assert results == [(1, 384)] * 4, results
    CHECKS.append("queued calls complete")


def check_deadline(addr: str, base: str, name: str) -> None:
    import httpx

    client = grpcclient.InferenceServerClient(url=addr)
    started = time.monotonic()
    # No client deadline: --request-timeout (300ms) is the call's, and the server answers it.
    grpc_error("--request-timeout", lambda: infer(client, name, ["too slow"]), "DEADLINE_EXCEEDED")
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.9, f"answered after {elapsed:.2f}s"
    # A client deadline shorter than it, once the expired input has left the queue (with it ahead,
    # admission would rightly refuse a 100ms call at once).
    deadline = time.monotonic() + 5
    while "pipeserve_queue_depth 0" not in httpx.get(f"{base}/metrics").text:
        assert time.monotonic() < deadline, "the expired input never left the queue"
        time.sleep(0.02)
    grpc_error("grpc-timeout", lambda: infer(client, name, ["too slow"], client_timeout=0.1), "DEADLINE_EXCEEDED")


def main() -> int:
    check, addr, base = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
    if check == "embeddings":
        check_embeddings(addr, sys.argv[4])
    elif check == "classification":
        check_classification(addr, base, sys.argv[4])
    elif check == "api-key":
        check_api_key(addr, sys.argv[4], sys.argv[5])
    elif check == "shed":
        check_shed(addr, base, sys.argv[4])
    elif check == "deadline":
        check_deadline(addr, base, sys.argv[4])
    elif check == "one":
        vectors = infer(grpcclient.InferenceServerClient(url=addr), sys.argv[4], ["in flight"]).as_numpy("output-0")
        assert vectors.shape == (1, 384), vectors.shape
        CHECKS.append("the call in flight was answered")
    elif check == "health":
        status = health(addr)
        assert status == sys.argv[4], f"health: {status}, expected {sys.argv[4]}"
        CHECKS.append(f"grpc.health.v1: {status}")
    else:
        raise SystemExit(f"unknown check {check}")
    for line in CHECKS:
        print("ok:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
