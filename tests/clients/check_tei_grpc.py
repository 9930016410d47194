#!/usr/bin/env python3
"""Drives a running pipeserve's gRPC port with text-embeddings-inference's own API (`tei.v1`),
through Python stubs generated at run time (grpcio-tools) from the vendored proto/tei.proto into a
temporary directory. Answers are compared with the references recorded from transformers /
sentence-transformers (tests/fixtures/golden/) and with the REST routes' answers; errors with the
gRPC code each maps to once. Run by tests/server/grpc.rs with the repo's .venv; exits non-zero on
any mismatch.

    check_tei_grpc.py embeddings GRPC_ADDR HTTP_BASE NAME       # all-MiniLM-L6-v2
    check_tei_grpc.py classification GRPC_ADDR HTTP_BASE NAME   # tiny-bert-sentiment
    check_tei_grpc.py reranker GRPC_ADDR HTTP_BASE NAME         # tiny-bert-reranker
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import grpc
import httpx
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from check_clients import CHECKS, close, golden, same_vector  # noqa: E402
from check_grpc import grpc_error  # noqa: E402

PROTO = HERE.parent.parent / "proto"


def stubs():
    """tei_pb2 and tei_pb2_grpc, generated from the vendored proto into a temporary directory."""
    out = tempfile.mkdtemp(prefix="tei-stubs-")
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    code = protoc.main(["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(PROTO / "tei.proto")])
    assert code == 0, f"grpc_tools.protoc failed ({code})"
    sys.path.insert(0, out)
    return importlib.import_module("tei_pb2"), importlib.import_module("tei_pb2_grpc")


pb, rpc = stubs()


def channel(addr: str):
    return grpc.insecure_channel(addr)


def check_embeddings(addr: str, base: str, name: str) -> None:
    cases = golden("minilm-sentence-embeddings")["cases"]
    normalized = [c for c in cases if c["parameters"] == {"normalize": True}]
    raw = [c for c in cases if c["parameters"] == {"normalize": False}]
    assert len(normalized) >= 3 and raw
    http = httpx.Client(base_url=base, timeout=30)
    with channel(addr) as ch:
        info = rpc.InfoStub(ch).Info(pb.InfoRequest(), timeout=10)
        assert info.model_type == pb.MODEL_TYPE_EMBEDDING and info.model_id.endswith(name), info
        rest = http.get("/info").json()
        assert (info.max_input_length, info.max_client_batch_size, info.max_batch_tokens) == \
            (rest["max_input_length"], rest["max_client_batch_size"], rest["max_batch_tokens"]), (info, rest)
        CHECKS.append(f"Info: {info.model_id} EMBEDDING, max_input_length {info.max_input_length}")

        embed = rpc.EmbedStub(ch)
        for c in normalized:
            answer = embed.Embed(pb.EmbedRequest(inputs=c["inputs"]), timeout=30)
            same_vector(f"Embed {c['inputs'][:30]!r}", answer.embeddings, c["output"])
            assert answer.metadata.compute_tokens == len(c["input_ids"]), answer.metadata
        c = raw[0]
        answer = embed.Embed(pb.EmbedRequest(inputs=c["inputs"], normalize=False), timeout=30)
        same_vector("Embed normalize=false", answer.embeddings, c["output"])
        assert abs(sum(x * x for x in answer.embeddings) - sum(x * x for x in c["output"])) < 1e-3, "not normalized"
        short = embed.Embed(pb.EmbedRequest(inputs="Hello world.", dimensions=8), timeout=30).embeddings
        rest = http.post("/embed", json={"inputs": "Hello world.", "dimensions": 8}).json()[0]
        assert len(short) == 8 and max(abs(a - b) for a, b in zip(short, rest)) < 1e-6, (short, rest)
        CHECKS.append("Embed dimensions=8: REST /embed's vector")

        states = embed.EmbedAll(pb.EmbedAllRequest(inputs="Hello world."), timeout=30).token_embeddings
        rest = http.post("/embed_all", json={"inputs": "Hello world."}).json()[0]
        assert len(states) == len(rest) == 5 and all(len(s.embeddings) == 384 for s in states), len(states)
        for got, want in zip(states, rest):
            same_vector("EmbedAll token", got.embeddings, want)

        # One stream of several messages: one answer each, in request order.
        requests = [pb.EmbedRequest(inputs=c["inputs"]) for c in normalized]
        answers = list(embed.EmbedStream(iter(requests), timeout=60))
        assert len(answers) == len(normalized), len(answers)
        for c, answer in zip(normalized, answers):
            same_vector(f"EmbedStream {c['inputs'][:30]!r}", answer.embeddings, c["output"])
        CHECKS.append(f"EmbedStream: {len(answers)} answers in request order")
        # A bad message ends the stream with its code, after the answers before it.
        mixed = [pb.EmbedRequest(inputs="a"), pb.EmbedRequest(inputs=""), pb.EmbedRequest(inputs="b")]
        got = []
        grpc_error("EmbedStream with an empty text", lambda: got.extend(embed.EmbedStream(iter(mixed), timeout=30)),
                   "INVALID_ARGUMENT", "empty")
        assert len(got) == 1, got

        tokenize = rpc.TokenizeStub(ch)
        for c in normalized[:3]:
            tokens = tokenize.Tokenize(pb.EncodeRequest(inputs=c["inputs"], add_special_tokens=True), timeout=10).tokens
            assert [t.id for t in tokens] == c["input_ids"], (tokens, c["input_ids"])
            assert tokens[0].special and tokens[0].text == "[CLS]", tokens[0]
            rest = http.post("/tokenize", json={"inputs": c["inputs"]}).json()[0]
            assert [(t.id, t.text, t.start, t.stop) for t in tokens[1:-1]] == \
                [(t["id"], t["text"], t["start"], t["stop"]) for t in rest[1:-1]], (tokens, rest)
            text = tokenize.Decode(pb.DecodeRequest(ids=c["input_ids"], skip_special_tokens=True), timeout=10).text
            assert text == http.post("/decode", json={"ids": c["input_ids"]}).json()[0], text
            assert text == c["inputs"].lower() or c["inputs"] != c["inputs"].encode("ascii", "ignore").decode(), text
        CHECKS.append("Tokenize: the golden input ids and REST's offsets; Decode round trip as REST /decode")
        bare = tokenize.Tokenize(pb.EncodeRequest(inputs="Hello world."), timeout=10).tokens
        assert [t.id for t in bare] == normalized[0]["input_ids"][1:-1], bare
        ids = [c["input_ids"] for c in normalized[:3]]
        texts = [a.text for a in tokenize.DecodeStream(iter(pb.DecodeRequest(ids=i) for i in ids), timeout=30)]
        assert texts == [http.post("/decode", json={"ids": i, "skip_special_tokens": False}).json()[0] for i in ids], texts
        CHECKS.append("DecodeStream: in order")

        # Errors: each decided once, the same as over REST.
        grpc_error("Embed an empty text", lambda: embed.Embed(pb.EmbedRequest(inputs=""), timeout=10),
                   "INVALID_ARGUMENT", "empty")
        grpc_error("an unknown truncation_direction",
                   lambda: embed.Embed(pb.EmbedRequest(inputs="a", truncation_direction=7), timeout=10),
                   "INVALID_ARGUMENT", "truncation_direction")
        grpc_error("an unknown prompt_name", lambda: embed.Embed(pb.EmbedRequest(inputs="a", prompt_name="nope"), timeout=10),
                   "INVALID_ARGUMENT", "nope")
        grpc_error("dimensions above the width",
                   lambda: embed.Embed(pb.EmbedRequest(inputs="a", dimensions=999), timeout=10),
                   "INVALID_ARGUMENT", "dimensions")
        grpc_error("too long without truncate", lambda: embed.Embed(pb.EmbedRequest(inputs="word " * 600), timeout=10),
                   "INVALID_ARGUMENT")
        cut = embed.Embed(pb.EmbedRequest(inputs="word " * 600, truncate=True), timeout=30)
        assert len(cut.embeddings) == 384 and cut.metadata.compute_tokens == info.max_input_length, cut.metadata
        grpc_error("a token id out of the vocabulary",
                   lambda: tokenize.Decode(pb.DecodeRequest(ids=[10**8]), timeout=10), "INVALID_ARGUMENT", "vocabulary")
        grpc_error("Predict on an embedding model",
                   lambda: rpc.PredictStub(ch).Predict(pb.PredictRequest(inputs="a"), timeout=10),
                   "FAILED_PRECONDITION", "classifier")
        grpc_error("Rerank on an embedding model",
                   lambda: rpc.RerankStub(ch).Rerank(pb.RerankRequest(query="q", texts=["a"]), timeout=10),
                   "FAILED_PRECONDITION", "re-ranker")
        grpc_error("EmbedSparse on a dense model",
                   lambda: embed.EmbedSparse(pb.EmbedSparseRequest(inputs="a"), timeout=10),
                   "FAILED_PRECONDITION", "SPLADE")
        r = http.post("/rerank", json={"query": "q", "texts": ["a"]})
        assert r.status_code == 424, r.status_code
        CHECKS.append("unsupported task: FAILED_PRECONDITION, as REST's 424")


def check_classification(addr: str, base: str, name: str) -> None:
    fx = golden("tiny-bert-sentiment-text-classification")["cases"]
    every = [c for c in fx if c["parameters"] == {"top_k": None} and isinstance(c["inputs"], str)]
    raw = [c for c in fx if c["parameters"] == {"top_k": None, "function_to_apply": "none"}]
    assert every and raw
    http = httpx.Client(base_url=base, timeout=30)
    with channel(addr) as ch:
        assert rpc.InfoStub(ch).Info(pb.InfoRequest(), timeout=10).model_type == pb.MODEL_TYPE_CLASSIFIER
        predict = rpc.PredictStub(ch)
        for cases, raw_scores in ((every, False), (raw, True)):
            for c in cases:
                got = predict.Predict(pb.PredictRequest(inputs=c["inputs"], raw_scores=raw_scores), timeout=30)
                assert [p.label for p in got.predictions] == [e["label"] for e in c["output"]], (got, c["output"])
                for p, e in zip(got.predictions, c["output"]):
                    close(f"Predict raw_scores={raw_scores} {c['inputs'][:20]!r}", p.score, e["score"])
            CHECKS.append(f"Predict raw_scores={raw_scores}: transformers' labels and scores within 1e-4")
        pair = ["A man is eating.", "Someone eats."]
        got = predict.PredictPair(pb.PredictPairRequest(inputs=pair), timeout=30).predictions
        rest = http.post("/predict", json={"inputs": {"text": pair[0], "text_pair": pair[1]},
                                           "parameters": {"top_k": None}}).json()[0]
        assert [p.label for p in got] == [r["label"] for r in rest], (got, rest)
        for p, r in zip(got, rest):
            close("PredictPair", p.score, r["score"])
        CHECKS.append("PredictPair: REST /predict's labels and scores for the pair")
        answers = list(predict.PredictStream(iter(pb.PredictRequest(inputs=c["inputs"]) for c in every), timeout=60))
        assert [a.predictions[0].label for a in answers] == [c["output"][0]["label"] for c in every], answers
        pairs = list(predict.PredictPairStream(iter([pb.PredictPairRequest(inputs=pair)] * 3), timeout=60))
        assert [a.predictions[0].label for a in pairs] == [got[0].label] * 3, pairs
        CHECKS.append(f"PredictStream: {len(answers)} answers in request order; PredictPairStream")
        grpc_error("PredictPair with three texts",
                   lambda: predict.PredictPair(pb.PredictPairRequest(inputs=["a", "b", "c"]), timeout=10),
                   "INVALID_ARGUMENT", "two texts")
        grpc_error("Embed on a classifier", lambda: rpc.EmbedStub(ch).Embed(pb.EmbedRequest(inputs="a"), timeout=10),
                   "FAILED_PRECONDITION", "embedding")


def check_reranker(addr: str, base: str, name: str) -> None:
    rr = golden("tiny-bert-pairs")["rerank"]
    with channel(addr) as ch:
        assert rpc.InfoStub(ch).Info(pb.InfoRequest(), timeout=10).model_type == pb.MODEL_TYPE_RERANKER
        rerank = rpc.RerankStub(ch)
        for raw in (False, True):
            expected = rr["raw_scores" if raw else "scores"]
            order = sorted(range(len(expected)), key=lambda i: -expected[i])
            request = pb.RerankRequest(query=rr["query"], texts=rr["texts"], raw_scores=raw, return_text=True)
            ranks = rerank.Rerank(request, timeout=30).ranks
            assert [r.index for r in ranks] == order, ranks
            for r in ranks:
                close(f"Rerank raw_scores={raw} [{r.index}]", r.score, expected[r.index])
                assert r.text == rr["texts"][r.index], r
            CHECKS.append(f"Rerank raw_scores={raw}: CrossEncoder's order and scores within 1e-4")
            stream = (pb.RerankStreamRequest(query=rr["query"], text=t, raw_scores=raw) for t in rr["texts"])
            ranks = rerank.RerankStream(stream, timeout=30).ranks
            assert [r.index for r in ranks] == order and not any(r.HasField("text") for r in ranks), ranks
            for r in ranks:
                close(f"RerankStream raw_scores={raw} [{r.index}]", r.score, expected[r.index])
        CHECKS.append("RerankStream: the same order and scores")
        grpc_error("Rerank without texts", lambda: rerank.Rerank(pb.RerankRequest(query="q"), timeout=10),
                   "INVALID_ARGUMENT")
        grpc_error("RerankStream without messages", lambda: rerank.RerankStream(iter([]), timeout=10),
                   "INVALID_ARGUMENT")


def main() -> int:
    check, addr, base, name = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/"), sys.argv[4]
    if check == "embeddings":
        check_embeddings(addr, base, name)
    elif check == "classification":
        check_classification(addr, base, name)
    elif check == "reranker":
        check_reranker(addr, base, name)
    else:
        raise SystemExit(f"unknown check {check}")
    for line in CHECKS:
        print("ok:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
