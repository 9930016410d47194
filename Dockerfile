# syntax=docker/dockerfile:1
#
# pipeserve container images. One Dockerfile, five knobs (all build arguments):
#
#   VARIANT        cpu (default) | cuda    which toolchain builds the binary and which base runs it
#   MKL            1 (default) | 0         cpu on x86-64: link Intel MKL for the matmuls (faster;
#                                          docs/benchmarks.md)
#   DNNL           1 (default) | 0         cpu on x86-64: link oneDNN, whose bf16 matmul `--dtype
#                                          auto` serves on CPUs with AVX512-BF16 or AMX (the image
#                                          then carries libdnnl.so.3, ~55 MB, next to the binary)
#   BINARY_SOURCE  build (default) | prebuilt
#                  build: compile inside the builder image (what users run);
#                  prebuilt: copy PREBUILT_BINARY from the build context instead (CI builds on the
#                  host, e.g. where the rust image cannot be pulled). The binary must be built for
#                  the runtime base's glibc (Debian 12 for cpu, Ubuntu 22.04 for cuda) or older.
#   PREBUILT_BINARY  path of that binary inside the context (default target/release/pipeserve;
#                  .dockerignore lets through only it and target/release/libdnnl.so.3, which a
#                  binary built with the `dnnl` feature needs: put a copy there and it is shipped
#                  next to the binary, where the binary's rpath `$ORIGIN` finds it)
#   MODEL_NAME     model baked in by the `runtime-model` target (a name scripts/fetch_models.py knows)
#
# Targets:
#   runtime (default, last stage)  no model inside: mount one at /models and set PIPESERVE_MODEL,
#                                  or give a hub id and let the server fetch it at start
#   runtime-model                  the same image with models/${MODEL_NAME} baked into /models
#
# Examples:
#   docker build -t pipeserve:0.1.0 .
#   docker build -t pipeserve:0.1.0-cuda --build-arg VARIANT=cuda --build-arg CUDA_COMPUTE_CAP=90 .
#   docker build -t pipeserve:0.1.0-minilm --target runtime-model .
#   cargo build --release && docker build -t pipeserve:ci --build-arg BINARY_SOURCE=prebuilt .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" \
#       -e PIPESERVE_MODEL=/models/all-MiniLM-L6-v2 pipeserve:0.1.0
#   docker run --rm -p 8000:8000 pipeserve:0.1.0          # fetches the default hub model

ARG VARIANT=cpu
ARG BINARY_SOURCE=build
ARG RUST_VERSION=1.95
ARG CUDA_VERSION=12.4.1
ARG CUDA_UBUNTU=ubuntu22.04
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------------
# Builders. Only the one that VARIANT/BINARY_SOURCE select is built (BuildKit and buildah skip
# unused stages).
# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build-cpu
# On x86-64 the binary links Intel MKL statically (the `mkl` feature) and oneDNN as a shared
# library (the `dnnl` feature): what scripts/serve.sh builds. scripts/mkl.sh and scripts/onednn.sh
# fetch pinned, sha256-checked wheels from PyPI, so the build needs PyPI as well as crates.io.
# MKL=0 DNNL=0, or any other architecture, builds with candle's own matmul. Every builder leaves
# its files in /dist: the binary, and libdnnl.so.3 where it links it.
ARG MKL=1
ARG DNNL=1
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY scripts/mkl.sh scripts/onednn.sh scripts/
COPY src ./src
# Cache mounts keep the registry and incremental objects between builds; the binary is copied
# out because the target dir lives only in the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    features=(); mkdir -p /dist; \
    if [[ "${TARGETARCH:-amd64}" == amd64 ]]; then \
        if [[ "$MKL" == 1 ]]; then eval "$(scripts/mkl.sh)" && features+=(mkl); fi; \
        if [[ "$DNNL" == 1 ]]; then eval "$(scripts/onednn.sh)" && features+=(dnnl) \
            && cp "$PIPESERVE_DNNL_DIR/lib/libdnnl.so.3" /dist/; fi; \
    fi \
    && cargo build --release --locked --features "$(IFS=,; echo "${features[*]}")" \
    && cp target/release/pipeserve /dist/pipeserve

FROM nvidia/cuda:${CUDA_VERSION}-devel-${CUDA_UBUNTU} AS build-cuda
ARG RUST_VERSION
# candle compiles its kernels for one compute capability: 80 = A100, 89 = L4/L40S, 90 = H100/H200.
ARG CUDA_COMPUTE_CAP=80
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP}
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features cuda \
    && mkdir -p /dist && cp target/release/pipeserve /dist/pipeserve

# A binary built outside (CI): no toolchain image needed at all. The library is optional: a
# pattern that matches nothing copies nothing while the binary is there.
FROM scratch AS build-prebuilt
ARG PREBUILT_BINARY=target/release/pipeserve
COPY ${PREBUILT_BINARY} target/release/libdnnl.so.[3] /dist/

# Stage names chosen by build arguments (hadolint cannot see they are stages, not images).
# hadolint ignore=DL3006
FROM build-${VARIANT} AS binary-build
FROM build-prebuilt AS binary-prebuilt
# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---------------------------------------------------------------------------------------------
# Runtime bases: glibc, libstdc++ and CA certificates (for hub downloads); on cpu also GNU
# OpenMP (libgomp1, ~0.3 MB), which oneDNN's threads run on.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime-base-cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# The CUDA runtime image carries cuBLAS, cuRAND and NVRTC, which candle loads.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${CUDA_UBUNTU} AS runtime-base-cuda
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
# Model baked in at build time (optional target). Needs PyPI at build time.
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS model-fetch
ARG MODEL_NAME=all-MiniLM-L6-v2
WORKDIR /src
COPY scripts/fetch_models.py scripts/
RUN python3 scripts/fetch_models.py --only "${MODEL_NAME}" \
        --models-dir /models --cache-dir /tmp/fetch-cache \
    && rm -rf /tmp/fetch-cache

# ---------------------------------------------------------------------------------------------
# The runtime image.
# ---------------------------------------------------------------------------------------------
# hadolint ignore=DL3006
FROM runtime-base-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="pipeserve" \
      org.opencontainers.image.description="Inference server for Hugging Face encoder models" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/pipeserve/pipeserve" \
      io.pipeserve.variant="${VARIANT}"
# The binary and what it links beside it (its rpath `$ORIGIN`), on PATH through a link.
COPY --from=binary --chmod=0755 /dist/ /usr/local/lib/pipeserve/
RUN ln -s /usr/local/lib/pipeserve/pipeserve /usr/local/bin/pipeserve
# Nothing is written outside /tmp (logs go to stdout); the hub cache, used only when --model is
# a hub id, lives there too. Kubernetes mounts emptyDirs over both (readOnlyRootFilesystem).
ENV HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    PIPESERVE_HOST=0.0.0.0 \
    PIPESERVE_PORT=8000 \
    PIPESERVE_MODEL=sentence-transformers/all-MiniLM-L6-v2
# 65532 is the conventional "nonroot" uid/gid (distroless); no passwd entry is needed.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000
# The server handles SIGTERM itself (turns not-ready, drains, exits 0): run it as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pipeserve"]

FROM runtime AS runtime-model
ARG MODEL_NAME=all-MiniLM-L6-v2
COPY --from=model-fetch /models/${MODEL_NAME} /models/${MODEL_NAME}
ENV PIPESERVE_MODEL=/models/${MODEL_NAME}

# Default target: the model-less runtime image.
FROM runtime
