#!/usr/bin/env python3
"""Drives a running pipeserve's gRPC port with kserve's `InferenceGRPCClient` (KServe's Open
Inference Protocol v2) as its docs show it: numpy tensors, which it sends as raw contents. Its own
process, apart from check_grpc.py: kserve and tritonclient both register the `inference.*` messages
in protobuf's one descriptor pool, so one process cannot import both. Answers are compared with the
references recorded from transformers / sentence-transformers (tests/fixtures/golden/). Run by
tests/server/grpc.rs with the repo's .venv; exits non-zero on any mismatch.

    check_kserve_grpc.py embeddings GRPC_ADDR HTTP_BASE NAME       # all-MiniLM-L6-v2
    check_kserve_grpc.py classification GRPC_ADDR HTTP_BASE NAME   # tiny-bert-sentiment
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_clients import CHECKS, golden, same_vector  # noqa: E402


def tensor(name: str, values: list[str]) -> InferInput:
    t = InferInput(name=name, shape=[len(values)], datatype="BYTES")
    t.set_data_from_numpy(np.array(values, dtype=object))
    return t


async def infer(client: InferenceGRPCClient, name: str, texts: list[str], pairs: list[str] | None = None):
    inputs = [tensor("text", texts)] + ([tensor("text_pair", pairs)] if pairs else [])
    answer = await client.infer(InferRequest(model_name=name, infer_inputs=inputs, request_id="k-1"))
    assert answer.id == "k-1", answer.id
    return answer.outputs[0].as_numpy()


async def check(check: str, addr: str, base: str, name: str) -> None:
    async with InferenceGRPCClient(addr, retries=0) as client:
        assert await client.is_server_live() and await client.is_server_ready()
        assert await client.is_model_ready(name)
        CHECKS.append(f"kserve InferenceGRPCClient: live, ready, model {name} ready")
        if check == "embeddings":
            cases = [c for c in golden("minilm-sentence-embeddings")["cases"]
                     if c["parameters"] == {"normalize": True} and isinstance(c["inputs"], str)]
            vectors = await infer(client, name, [c["inputs"] for c in cases])
            assert vectors.dtype == np.float32 and vectors.shape == (len(cases), 384), (vectors.dtype, vectors.shape)
            for case, vector in zip(cases, vectors):
                same_vector(f"kserve InferenceGRPCClient infer FP32 {case['inputs'][:30]!r}", vector, case["output"])
            try:
                await infer(client, "other", ["a"])
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
                CHECKS.append("another model: NOT_FOUND")
            else:
                raise AssertionError("another model: expected NOT_FOUND, got a success")
        elif check == "classification":
            labels = httpx.get(f"{base}/info").json()["labels"]
            cases = [c for c in golden("tiny-bert-sentiment-text-classification")["cases"]
                     if c["parameters"] == {} and isinstance(c["inputs"], str)]
            ids = await infer(client, name, [c["inputs"] for c in cases])
            expected = [labels.index(c["output"][0]["label"]) for c in cases]
            assert ids.dtype == np.int64 and ids.tolist() == expected, (ids, expected)
            CHECKS.append(f"kserve InferenceGRPCClient infer INT64 class ids {expected} as transformers' labels")
            predicted = httpx.post(f"{base}/predict",
                                   json={"inputs": {"text": "A man is eating.", "text_pair": "Someone eats."}}).json()
            got = (await infer(client, name, ["A man is eating."], pairs=["Someone eats."])).tolist()
            assert got == [labels.index(predicted[0][0]["label"])], (got, predicted)
            CHECKS.append(f"kserve InferenceGRPCClient text pair: class {got} as /predict")
        else:
            raise SystemExit(f"unknown check {check}")


def main() -> int:
    asyncio.run(check(sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/"), sys.argv[4]))
    for line in CHECKS:
        print("ok:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
