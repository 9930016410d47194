//! Configuration: one typed struct, every setting a flag and a `PIPESERVE_<FLAG>` environment
//! variable, read once at start-up and passed down as typed sub-configs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::auth::AuthConfig;
use crate::batching::{self, BatcherConfig, ClassBudgets, ClassLimits, Limits, Priority};
use crate::infer::{Classes, InferSettings};
use crate::lifecycle::ConnectionLimits;
use crate::load::LoadConfig;
use crate::model::files::HubOptions;
use crate::model::gemm::{GemmChoice, Quantize};
use crate::model::{DTypeSpec, DeviceList, DeviceSpec, Task};
use crate::worker::WorkerConfig;

/// How the batcher picks the inputs of a batch (`--batch-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum BatchPolicy {
    /// Oldest first.
    Fifo,
    /// The oldest input plus those closest to it in length, to cut padding. The default: as fast
    /// as fifo on inputs of one length, faster on mixed lengths (docs/benchmarks.md). On an
    /// encoder that runs padding-free there is no padding to cut, and it takes inputs in fair
    /// order like fifo.
    #[default]
    Length,
}

impl From<BatchPolicy> for batching::BatchPolicy {
    fn from(p: BatchPolicy) -> Self {
        match p {
            BatchPolicy::Fifo => Self::Fifo,
            BatchPolicy::Length => Self::Length,
        }
    }
}

/// Inference server for Hugging Face encoder models.
#[derive(Debug, Clone, Parser)]
#[command(name = "pipeserve", version, about)]
pub struct Config {
    /// Model: a local folder in the Hugging Face layout, or a hub id (fetched when a network exists).
    #[arg(long, env = "PIPESERVE_MODEL")]
    pub model: String,

    /// Hub revision (branch, tag or commit) of a hub model id; pin a commit so every replica
    /// loads the same weights. Default: `main`.
    #[arg(long, env = "PIPESERVE_REVISION")]
    pub revision: Option<String>,

    /// Access token for private or gated hub models. `HUGGING_FACE_HUB_TOKEN` is read too.
    #[arg(long = "hf-token", env = "HF_TOKEN", hide_env_values = true)]
    pub hf_token: Option<ApiKey>,

    /// Fetch the model into the hub cache (`HF_HOME`) and exit without serving, e.g. in an init
    /// container that fills a volume the server then reads offline.
    #[arg(long, env = "PIPESERVE_DOWNLOAD_ONLY")]
    pub download_only: bool,

    /// The model's name towards clients (`/v1/models`, OpenAI responses, `/info`). Default: the
    /// last part of `--model`.
    #[arg(long, env = "PIPESERVE_SERVED_MODEL_NAME")]
    pub served_model_name: Option<String>,

    /// Pipeline task; default: from the model's config.json (`architectures`).
    #[arg(long, env = "PIPESERVE_TASK")]
    pub task: Option<Task>,

    /// Device the worker pins the model to: `cpu` or `cuda:N` (needs the `cuda` build), or a list
    /// of GPUs (`cuda:0,cuda:1`): each holds a copy of the weights and runs `--instances` instances.
    #[arg(long, env = "PIPESERVE_DEVICE", default_value = "cpu")]
    pub device: DeviceList,

    /// Weights and activations dtype: `auto` (bf16 on a CPU with AMX-BF16 where the build has MKL
    /// and the model runs on the packed encoder, f32 elsewhere and on GPUs), `f32`, `bf16` or
    /// `f16`. A dtype the CPU has no fast path for is refused at start-up, saying why.
    #[arg(long, env = "PIPESERVE_DTYPE", default_value = "auto")]
    pub dtype: DTypeSpec,

    /// Address to listen on.
    #[arg(long, env = "PIPESERVE_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PIPESERVE_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Port of the gRPC server (KServe's Open Inference Protocol v2, `inference.GRPCInferenceService`,
    /// and `grpc.health.v1`) on `--host`; unset: no gRPC server. 0 picks a free one and logs it.
    #[arg(long, env = "PIPESERVE_GRPC_PORT")]
    pub grpc_port: Option<u16>,

    /// Most inputs in one model batch.
    #[arg(long, env = "PIPESERVE_MAX_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_size: u64,

    /// Most padded tokens (longest input × inputs; the sum of the lengths on an encoder that runs
    /// padding-free, `/info`'s `packed`) in one batch; a longer single input still runs alone.
    /// Default: 2048 on CPU, where tokens/s flattens out and larger batches only add memory and
    /// latency (docs/benchmarks.md), 16384 on a GPU.
    #[arg(long, env = "PIPESERVE_MAX_BATCH_TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_tokens: Option<u64>,

    /// Longest wait for batch-mates, counted from the oldest queued input (0 = run what is queued).
    /// Batches gather while the worker is busy either way. Default: 0 on CPU, where waiting only
    /// added latency in the load benchmark (docs/benchmarks.md), 2ms on a GPU.
    #[arg(long, env = "PIPESERVE_MAX_WAIT", value_parser = humantime::parse_duration)]
    pub max_wait: Option<Duration>,

    /// Most inputs waiting in the queue; above it requests get 503 with Retry-After at once.
    #[arg(long, env = "PIPESERVE_MAX_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queue: u64,

    /// Most tokens waiting in the queue: the bound on queued work, with `--max-queue` bounding the
    /// count. A request with more tokens than this gets 413 (retrying cannot help). Default: 16
    /// batches' worth (16 × the token budget). Beyond it, and whenever the queued work would
    /// outlast a request's deadline at the measured model rate, requests get 503 with a
    /// `Retry-After` from that rate.
    #[arg(long, env = "PIPESERVE_MAX_QUEUE_TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queue_tokens: Option<u64>,

    /// Largest response one request may ask for, in bytes, estimated before the model runs
    /// (per-token states and fill-mask sentences grow with the input); 422 above it.
    #[arg(long, env = "PIPESERVE_MAX_RESPONSE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// End-to-end limit for one request (504 after it); expired inputs never reach the model.
    #[arg(long, env = "PIPESERVE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Most inputs in one request.
    #[arg(long, env = "PIPESERVE_MAX_CLIENT_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_client_batch_size: u64,

    /// Batch formation policy.
    #[arg(long, env = "PIPESERVE_BATCH_POLICY", value_enum, default_value_t = BatchPolicy::Length)]
    pub batch_policy: BatchPolicy,

    /// After SIGTERM: how long to keep serving while not ready, so load balancers stop sending.
    #[arg(long, env = "PIPESERVE_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,

    /// After the drain delay: the most time to finish accepted requests before exiting.
    #[arg(long, env = "PIPESERVE_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Input limit in tokens, below the model's own (default: the model's limit).
    #[arg(long, env = "PIPESERVE_MAX_INPUT_TOKENS")]
    pub max_input_tokens: Option<usize>,

    /// Pooling instead of the model's own (TEI's flag): mean, cls, max, mean_sqrt_len, or splade
    /// (a masked-LM's sparse embeddings, served on /embed_sparse; default: modules.json/1_Pooling).
    #[arg(long, env = "PIPESERVE_POOLING")]
    pub pooling: Option<crate::pipelines::Pooling>,

    /// The instruction of a yes/no reranker's prompt (Qwen3-Reranker served with `--task
    /// text-classification`); default: its model card's, "Given a web search query, retrieve
    /// relevant passages that answer the query".
    #[arg(long, env = "PIPESERVE_RERANK_INSTRUCTION")]
    pub rerank_instruction: Option<String>,

    /// Truncate over-long inputs unless a request says `truncate: false` (default: reject them).
    #[arg(long, env = "PIPESERVE_AUTO_TRUNCATE")]
    pub auto_truncate: bool,

    /// Largest request body in bytes (413 above it).
    #[arg(long, env = "PIPESERVE_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub body_limit: usize,

    /// Most bytes of request bodies held at once across all connections (a body holds its bytes
    /// from arrival until its request is answered); past it, requests get 503 and their connection
    /// closes. Default 256 MiB: 128 bodies at the default body limit.
    #[arg(long, env = "PIPESERVE_MAX_BUFFERED_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_buffered_body_bytes: usize,

    /// Require `Authorization: Bearer <key>` (or `x-api-key: <key>`) on the inference routes;
    /// health, metrics and info stay open. Unset: no authentication.
    #[arg(long, env = "PIPESERVE_API_KEY", hide_env_values = true)]
    pub api_key: Option<ApiKey>,

    /// A JSON file of API keys (SHA-256 hashes), each with its tenant, default priority class and
    /// optional token quota (README: "Tenants"); re-read within about a second when its contents
    /// change (a rotated Kubernetes Secret), a broken file keeps the last good keys. Works beside
    /// `--api-key` (tenant `default`).
    #[arg(long, env = "PIPESERVE_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,

    /// The priority class of requests that name none (`x-priority`, the body's `priority`) and
    /// whose tenant names none: `interactive` or `batch`.
    #[arg(long, env = "PIPESERVE_DEFAULT_PRIORITY", default_value = "interactive")]
    pub default_priority: Priority,

    /// Time budget of an interactive request (504 after it). Default: `--request-timeout`.
    #[arg(long, env = "PIPESERVE_INTERACTIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub interactive_timeout: Option<Duration>,

    /// Time budget of a batch-class request (504 after it). Default: `--request-timeout`.
    #[arg(long, env = "PIPESERVE_BATCH_TIMEOUT", value_parser = humantime::parse_duration)]
    pub batch_timeout: Option<Duration>,

    /// Most tokens of batch-class requests in the queue; the rest of `--max-queue-tokens` is
    /// headroom only interactive requests use, so under overload batch work is refused first.
    /// Default: three quarters of `--max-queue-tokens`.
    #[arg(long, env = "PIPESERVE_BATCH_QUEUE_TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_queue_tokens: Option<u64>,

    /// Most inputs of batch-class requests in the queue. Default: three quarters of `--max-queue`.
    #[arg(long, env = "PIPESERVE_BATCH_MAX_QUEUE", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_max_queue: Option<u64>,

    /// The least `Retry-After` an interactive request is told when refused (503).
    #[arg(long, env = "PIPESERVE_INTERACTIVE_RETRY_AFTER", default_value = "1s", value_parser = humantime::parse_duration)]
    pub interactive_retry_after: Duration,

    /// The least `Retry-After` a batch-class request is told when refused (503).
    #[arg(long, env = "PIPESERVE_BATCH_RETRY_AFTER", default_value = "5s", value_parser = humantime::parse_duration)]
    pub batch_retry_after: Duration,

    /// While both classes wait, at least one batch in this many is batch-class, so batch work
    /// never starves (1: batch work goes first).
    #[arg(long, env = "PIPESERVE_BATCH_FLOOR", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_floor: u32,

    /// Padded-token budget of a batch-class batch while interactive work waits or arrived in the
    /// last second, so an interactive input waits behind a small batch at most. Default: a
    /// quarter of `--max-batch-tokens`.
    #[arg(long, env = "PIPESERVE_INTERACTIVE_BATCH_TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub interactive_batch_tokens: Option<u64>,

    /// Most time a client may take to send the request line and headers; the connection is
    /// closed after it, so slow clients cannot hold connections open. hyper applies it to idle
    /// keep-alive connections too: the default stays above the 60s upstream idle timeout of
    /// common proxies and load balancers (nginx, AWS ALB), which would otherwise race our close.
    #[arg(long, env = "PIPESERVE_HEADER_READ_TIMEOUT", default_value = "65s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Most client connections open at once; more are closed as soon as they are accepted (and
    /// counted in `pipeserve_connections_rejected_total`). Keep it below the file descriptor limit.
    #[arg(long, env = "PIPESERVE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// Longest a response write may stay blocked on a client that does not read; the connection is
    /// closed after it.
    #[arg(long, env = "PIPESERVE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// Most time a client may take to send the request body, counted from its headers (408 after it).
    #[arg(long, env = "PIPESERVE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// Threads for the model's math on CPU, per instance (0: the cores split evenly between the
    /// `--instances`, at least one each). Sets `OMP_NUM_THREADS` (mkl build) or `RAYON_NUM_THREADS`
    /// where those are not set, and sizes each instance's thread pool; see src/threads.rs.
    #[arg(long, env = "PIPESERVE_MODEL_THREADS", default_value_t = 0)]
    pub model_threads: usize,

    /// Cores the server may use for the model (0: those the OS gives the process, a cgroup CPU
    /// limit included), split between the `--instances` when `--model-threads` is not set. The
    /// chart sets it to the pod's CPU request, which the OS does not report.
    #[arg(long, env = "PIPESERVE_CPUS", default_value_t = 0)]
    pub cpus: usize,

    /// Model instances per device (Triton's instance groups): batches that run at the same time,
    /// each on a view of its device's weights (loaded once per device and shared read-only, so
    /// memory grows by activations only). The batcher hands each batch to an idle instance; a panic in one fails only its own
    /// batch. Each instance gets `--model-threads` math threads (docs/benchmarks.md measures 1 vs 2).
    #[arg(long, env = "PIPESERVE_INSTANCES", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub instances: u64,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "PIPESERVE_JSON_LOGS")]
    pub json_logs: bool,

    /// OTLP collector to export traces to, e.g. `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318` (HTTP; `/v1/traces` is appended). Default: `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as is); with none, tracing is off.
    #[arg(long, env = "PIPESERVE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// OTLP protocol: `grpc` or `http-protobuf`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else grpc.
    #[arg(long, env = "PIPESERVE_OTLP_PROTOCOL", value_enum)]
    pub otlp_protocol: Option<OtlpProtocol>,

    /// Service name on exported traces. Default: `OTEL_SERVICE_NAME`, else `pipeserve`. Other
    /// resource attributes come from `OTEL_RESOURCE_ATTRIBUTES`.
    #[arg(long, env = "PIPESERVE_SERVICE_NAME")]
    pub service_name: Option<String>,

    /// GEMM library of the encoder's linear layers on CPU: `auto` (the fastest this build has for
    /// this CPU's vendor and ISA, docs/benchmarks.md), `candle`, `mkl`, `openblas` or `dnnl` (each
    /// native one needs its cargo feature).
    #[arg(long, env = "PIPESERVE_GEMM", default_value = "auto")]
    pub gemm: GemmChoice,

    /// `int8`: the encoder's linear layers in int8 (per-channel weight scales, per-row dynamic
    /// activation scales; CPU, f32, BERT/DistilBERT; needs the `dnnl` or `mkl` build). `none`: off.
    #[arg(long, env = "PIPESERVE_QUANTIZE", default_value = "none")]
    pub quantize: Quantize,
}

/// How traces reach the OTLP collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collector port 4317).
    Grpc,
    /// OTLP protobuf over HTTP POST to `/v1/traces` (collector port 4318).
    HttpProtobuf,
}

/// Trace export, resolved from the flags and the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans go; `None`: tracing is off (no exporter, no OpenTelemetry layer).
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    /// Resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (`service.name` aside).
    pub resource_attributes: Vec<(String, String)>,
}

/// A secret from the command line or environment; its `Debug` never shows it (the configuration
/// is logged at start-up).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("the API key must not be empty".into());
        }
        Ok(Self(s.to_string()))
    }
}

/// What the HTTP stack needs from the configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub body_limit: usize,
    pub max_buffered_body_bytes: usize,
    pub body_read_timeout: Duration,
    /// The API keys.
    pub auth: AuthConfig,
    /// The priority classes' defaults (the timeout layer's deadline per class).
    pub classes: Classes,
}

/// The batching policy, as the batcher and `/info` see it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchingConfig {
    pub max_batch_size: usize,
    pub max_batch_tokens: usize,
    #[serde(serialize_with = "as_millis")]
    pub max_wait: Duration,
    pub max_queue: usize,
    pub max_queue_tokens: usize,
    #[serde(serialize_with = "as_millis")]
    pub request_timeout: Duration,
    pub max_client_batch_size: usize,
    pub policy: batching::BatchPolicy,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The token budget per batch when `--max-batch-tokens` is not given, picked from the model-step
/// measurements in docs/benchmarks.md.
pub fn default_batch_tokens(device: DeviceSpec) -> usize {
    match device {
        DeviceSpec::Cpu => 2048,
        DeviceSpec::Cuda(_) => 16384,
    }
}

/// The batching deadline when `--max-wait` is not given, picked from the load benchmark in
/// docs/benchmarks.md.
pub fn default_max_wait(device: DeviceSpec) -> Duration {
    match device {
        DeviceSpec::Cpu => Duration::ZERO,
        DeviceSpec::Cuda(_) => Duration::from_millis(2),
    }
}

/// Shutdown timings and connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub connections: ConnectionLimits,
}

impl Config {
    /// What the loader needs. The hub token falls back to `HUGGING_FACE_HUB_TOKEN`, and
    /// `HF_HUB_OFFLINE=1` keeps the hub client off the network (read here, so nothing deeper looks
    /// at the environment).
    pub fn load(&self) -> LoadConfig {
        self.load_with(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`Config::load`] with the environment given as a lookup (for tests).
    pub fn load_with(&self, env: impl Fn(&str) -> Option<String>) -> LoadConfig {
        let token = self.hf_token.as_ref().map(|t| t.0.clone()).or_else(|| env("HUGGING_FACE_HUB_TOKEN"));
        LoadConfig {
            model: self.model.clone(),
            hub: HubOptions {
                revision: self.revision.clone(),
                token,
                offline: env("HF_HUB_OFFLINE")
                    .is_some_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True" | "yes")),
            },
            task: self.task,
            device: self.device.first(),
            more_devices: self.device.iter().skip(1).collect(),
            dtype: self.dtype,
            gemm: self.gemm,
            quantize: self.quantize,
            max_input_tokens: self.max_input_tokens,
            pooling: self.pooling,
            rerank_instruction: self.rerank_instruction.clone(),
        }
    }

    /// The name clients see: `--served-model-name`, else the last part of `--model`.
    pub fn served_model_name(&self) -> String {
        self.served_model_name.clone().unwrap_or_else(|| {
            let trimmed = self.model.trim_end_matches('/');
            trimmed.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(trimmed).to_string()
        })
    }

    /// The inference service's limits and batching.
    pub fn infer(&self) -> InferSettings {
        let b = self.batching();
        InferSettings {
            max_client_batch_size: b.max_client_batch_size,
            auto_truncate: self.auto_truncate,
            request_timeout: b.request_timeout,
            max_response_bytes: self.max_response_bytes,
            batcher: BatcherConfig {
                limits: Limits {
                    max_batch_size: b.max_batch_size,
                    max_batch_tokens: b.max_batch_tokens,
                    max_wait: b.max_wait,
                    policy: b.policy,
                    classes: ClassLimits {
                        batch_floor: self.batch_floor,
                        interactive_batch_tokens: self.interactive_batch_tokens.map_or_else(
                            || ClassLimits::for_budget(b.max_batch_tokens).interactive_batch_tokens,
                            |t| t as usize,
                        ),
                    },
                    // Known once the model is loaded (`Infer::start`).
                    padding_free: false,
                },
                max_queue: b.max_queue,
                max_queue_tokens: b.max_queue_tokens,
                classes: self.class_budgets(&b),
            },
            worker: self.worker(),
            classes: self.classes(),
        }
    }

    /// The batch class's share of the queue and each class's least `Retry-After`.
    fn class_budgets(&self, b: &BatchingConfig) -> ClassBudgets {
        let defaults = ClassBudgets::for_queue(b.max_queue, b.max_queue_tokens);
        ClassBudgets {
            batch_max_queue: self.batch_max_queue.map_or(defaults.batch_max_queue, |n| n as usize),
            batch_max_queue_tokens: self.batch_queue_tokens.map_or(defaults.batch_max_queue_tokens, |n| n as usize),
            retry_after: [self.interactive_retry_after, self.batch_retry_after],
        }
    }

    /// The classes' default and time budgets.
    pub fn classes(&self) -> Classes {
        Classes {
            default: self.default_priority,
            timeout: [
                self.interactive_timeout.unwrap_or(self.request_timeout),
                self.batch_timeout.unwrap_or(self.request_timeout),
            ],
        }
    }

    /// Math threads per model instance (`--model-threads`, else the cores split between instances).
    pub fn model_threads_per_instance(&self) -> usize {
        crate::threads::per_instance(self.model_threads, self.instances as usize, self.cpus)
    }

    /// The worker's instances and each one's math thread pool.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            instances: self.instances as usize,
            math_threads: crate::threads::pool_threads(self.model_threads_per_instance()),
        }
    }

    pub fn batching(&self) -> BatchingConfig {
        BatchingConfig {
            max_batch_size: self.max_batch_size as usize,
            max_batch_tokens: self
                .max_batch_tokens
                .map_or_else(|| default_batch_tokens(self.device.first()), |t| t as usize),
            max_wait: self.max_wait.unwrap_or_else(|| default_max_wait(self.device.first())),
            max_queue: self.max_queue as usize,
            max_queue_tokens: self.max_queue_tokens.map_or_else(
                || 16 * self.max_batch_tokens.map_or_else(|| default_batch_tokens(self.device.first()), |t| t as usize),
                |t| t as usize,
            ),
            request_timeout: self.request_timeout,
            max_client_batch_size: self.max_client_batch_size as usize,
            policy: self.batch_policy.into(),
        }
    }

    pub fn lifecycle(&self) -> LifecycleConfig {
        LifecycleConfig {
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
            connections: ConnectionLimits {
                header_read_timeout: self.header_read_timeout,
                max_connections: self.max_connections as usize,
                write_timeout: self.write_timeout,
            },
        }
    }

    pub fn http(&self) -> HttpConfig {
        HttpConfig {
            body_limit: self.body_limit,
            max_buffered_body_bytes: self.max_buffered_body_bytes,
            body_read_timeout: self.body_read_timeout,
            auth: AuthConfig {
                api_key: self.api_key.as_ref().map(|k| k.0.clone()),
                keys_file: self.api_keys_file.clone(),
                poll: Duration::from_secs(1),
            },
            classes: self.classes(),
        }
    }

    /// Trace export settings. The flags win; the OpenTelemetry SDK's standard variables fill in
    /// (read here, so nothing deeper in the code looks at the environment).
    pub fn tracing(&self) -> TracingConfig {
        self.tracing_with(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`Config::tracing`] with the environment given as a lookup (for tests).
    pub fn tracing_with(&self, env: impl Fn(&str) -> Option<String>) -> TracingConfig {
        let resource_attributes: Vec<(String, String)> =
            env("OTEL_RESOURCE_ATTRIBUTES").map(|s| parse_resource_attributes(&s)).unwrap_or_default();
        let service_name = self
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .or_else(|| resource_attributes.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()))
            .unwrap_or_else(|| "pipeserve".into());
        let resource_attributes = resource_attributes.into_iter().filter(|(k, _)| k != "service.name").collect();
        let protocol = self.otlp_protocol.unwrap_or_else(|| {
            match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL")).as_deref() {
                Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
                _ => OtlpProtocol::Grpc,
            }
        });
        // The SDK's own switches: off wins over any endpoint.
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        // A base endpoint gets the HTTP signal path; the per-signal variable is a full URL already.
        let base = |url: String| match protocol {
            OtlpProtocol::HttpProtobuf if !url.ends_with("/v1/traces") => {
                format!("{}/v1/traces", url.trim_end_matches('/'))
            }
            _ => url,
        };
        let endpoint = if disabled {
            None
        } else if let Some(url) = self.otlp_endpoint.clone().filter(|u| !u.is_empty()) {
            Some(base(url))
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url)
        } else {
            env("OTEL_EXPORTER_OTLP_ENDPOINT").map(base)
        };
        TracingConfig { endpoint, protocol, service_name, resource_attributes }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The gRPC server's address, when `--grpc-port` is set.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_port.map(|port| SocketAddr::new(self.host, port))
    }

    /// What the gRPC server needs: its messages bounded like HTTP bodies and responses.
    pub fn grpc(&self) -> crate::grpc::GrpcConfig {
        crate::grpc::GrpcConfig {
            max_request_bytes: self.body_limit,
            // The service refuses responses above --max-response-bytes from its estimate before the
            // model runs; the slack covers the message's framing.
            max_response_bytes: self.max_response_bytes.saturating_add(64 * 1024),
            classes: self.classes(),
        }
    }
}

/// `key1=value1,key2=value2`, values percent-decoded, as the OpenTelemetry spec writes them;
/// malformed pairs are skipped.
fn parse_resource_attributes(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%').then(|| s.get(i + 1..i + 3)).flatten();
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracing_of(args: &[&str], vars: &[(&str, &str)]) -> TracingConfig {
        let mut argv = vec!["pipeserve", "--model", "m"];
        argv.extend_from_slice(args);
        let c = Config::try_parse_from(argv).unwrap();
        c.tracing_with(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn tracing_is_off_without_an_endpoint() {
        let t = tracing_of(&[], &[("OTEL_SERVICE_NAME", "svc")]);
        assert_eq!(t.endpoint, None);
        assert_eq!(t.service_name, "svc");
        assert_eq!(tracing_of(&[], &[]).service_name, "pipeserve");
    }

    #[test]
    fn tracing_flags_win_over_the_otel_variables() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=x,team=ml%20infra,broken"),
        ];
        let t = tracing_of(&[], &vars);
        assert_eq!(t.endpoint.as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.service_name, "from-env");
        assert_eq!(
            t.resource_attributes,
            [("deployment.environment".to_string(), "prod".to_string()), ("team".into(), "ml infra".into())]
        );
        let t =
            tracing_of(&["--otlp-endpoint", "http://a:4317", "--otlp-protocol", "grpc", "--service-name", "s"], &vars);
        assert_eq!(t.endpoint.as_deref(), Some("http://a:4317"));
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.service_name, "s");
        // service.name from the resource attributes when nothing else names the service.
        assert_eq!(tracing_of(&[], &vars[3..]).service_name, "x");
        // The per-signal endpoint is a full URL; the SDK's off switches win.
        let t = tracing_of(&[], &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom")]);
        assert_eq!(t.endpoint.as_deref(), Some("http://c:4318/custom"));
        assert_eq!(tracing_of(&["--otlp-endpoint", "http://a:4317"], &[("OTEL_SDK_DISABLED", "true")]).endpoint, None);
        assert_eq!(tracing_of(&[], &[vars[0], ("OTEL_TRACES_EXPORTER", "none")]).endpoint, None);
    }

    #[test]
    fn the_token_budget_and_deadline_default_by_device() {
        let batching = |args: &[&str]| {
            let mut argv = vec!["pipeserve", "--model", "m"];
            argv.extend_from_slice(args);
            Config::try_parse_from(argv).unwrap().batching()
        };
        let cpu = batching(&[]);
        assert_eq!((cpu.max_batch_tokens, cpu.max_wait), (2048, Duration::ZERO));
        let gpu = batching(&["--device", "cuda:0"]);
        assert_eq!((gpu.max_batch_tokens, gpu.max_wait), (16384, Duration::from_millis(2)));
        let set = batching(&["--device", "cuda:0", "--max-batch-tokens", "512", "--max-wait", "0ms"]);
        assert_eq!((set.max_batch_tokens, set.max_wait), (512, Duration::ZERO));
        assert_eq!(batching(&["--max-wait", "7ms"]).max_wait, Duration::from_millis(7));
    }

    #[test]
    fn model_threads_are_per_instance() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["pipeserve", "--model", "m"];
            argv.extend_from_slice(args);
            Config::try_parse_from(argv).unwrap()
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let one = parse(&[]);
        assert_eq!((one.worker().instances, one.model_threads_per_instance()), (1, cores));
        let two = parse(&["--instances", "2"]);
        assert_eq!((two.worker().instances, two.model_threads_per_instance()), (2, (cores / 2).max(1)));
        assert_eq!(parse(&["--instances", "64"]).model_threads_per_instance(), 1, "at least one each");
        assert_eq!(parse(&["--instances", "2", "--model-threads", "3"]).model_threads_per_instance(), 3);
        // The chart's CPU request, split between the instances; --model-threads still wins.
        assert_eq!(parse(&["--cpus", "4"]).model_threads_per_instance(), 4);
        assert_eq!(parse(&["--cpus", "4", "--instances", "2"]).model_threads_per_instance(), 2);
        assert_eq!(parse(&["--cpus", "3", "--instances", "4"]).model_threads_per_instance(), 1);
        assert_eq!(parse(&["--cpus", "4", "--instances", "2", "--model-threads", "3"]).model_threads_per_instance(), 3);
        assert_eq!(two.infer().worker, two.worker());
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--instances", "0"]).is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let c = Config::try_parse_from(["pipeserve", "--model", "m", "--max-wait", "5ms", "--batch-policy", "length"])
            .unwrap();
        assert_eq!(c.batching().max_wait, Duration::from_millis(5));
        assert_eq!(c.batch_policy, BatchPolicy::Length);
        assert_eq!(c.port, 8000);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--max-batch-size", "0"]).is_err());
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--device", "tpu"]).is_err());
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--api-key", ""]).is_err());
        let c = Config::try_parse_from(["pipeserve", "--model", "m", "--api-key", "s3cret"]).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"), "the key never reaches the log");
    }

    #[test]
    fn hub_settings_and_the_served_name() {
        let c = Config::try_parse_from(["pipeserve", "--model", "org/repo", "--revision", "abc", "--hf-token", "hf_x"])
            .unwrap();
        let load = c.load_with(|_| Some("other".into()));
        assert_eq!((load.hub.revision.as_deref(), load.hub.token.as_deref()), (Some("abc"), Some("hf_x")));
        assert!(!format!("{c:?}{load:?}").contains("hf_x"), "the token never reaches the log");
        assert_eq!(c.served_model_name(), "repo");
        let c = Config::try_parse_from(["pipeserve", "--model", "/models/minilm/"]).unwrap();
        assert_eq!(
            c.load_with(|n| (n == "HUGGING_FACE_HUB_TOKEN").then(|| "hf_y".into())).hub.token.as_deref(),
            Some("hf_y")
        );
        assert_eq!(c.served_model_name(), "minilm");
        assert!(c.load_with(|n| (n == "HF_HUB_OFFLINE").then(|| "1".into())).hub.offline);
        assert!(!c.load_with(|_| None).hub.offline);
        let c = Config::try_parse_from(["pipeserve", "--model", "m", "--served-model-name", "prod-embedder"]).unwrap();
        assert_eq!(c.served_model_name(), "prod-embedder");
    }
}
