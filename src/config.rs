//! Configuration: one typed struct, every setting a flag and a `PIPESERVE_<FLAG>` environment
//! variable, read once at start-up and passed down as typed sub-configs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::engine::EngineConfig;
use crate::model::{DTypeSpec, DeviceSpec, Task};

/// How the batcher picks the inputs of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchPolicy {
    /// Oldest first.
    #[default]
    Fifo,
    /// The oldest input plus those closest to it in length, to cut padding.
    Length,
}

/// Inference server for Hugging Face encoder models.
#[derive(Debug, Clone, Parser)]
#[command(name = "pipeserve", version, about)]
pub struct Config {
    /// Model: a local folder in the Hugging Face layout, or a hub id (fetched when a network exists).
    #[arg(long, env = "PIPESERVE_MODEL")]
    pub model: String,

    /// Pipeline task; default: from the model's config.json (`architectures`).
    #[arg(long, env = "PIPESERVE_TASK")]
    pub task: Option<Task>,

    /// Device the worker pins the model to: `cpu` or `cuda:N` (needs the `cuda` build).
    #[arg(long, env = "PIPESERVE_DEVICE", default_value = "cpu")]
    pub device: DeviceSpec,

    /// Weights and activations dtype: f32, f16 or bf16.
    #[arg(long, env = "PIPESERVE_DTYPE", default_value = "f32")]
    pub dtype: DTypeSpec,

    /// Address to listen on.
    #[arg(long, env = "PIPESERVE_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PIPESERVE_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Most inputs in one model batch.
    #[arg(long, env = "PIPESERVE_MAX_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_size: u64,

    /// Most padded tokens (longest input × inputs) in one batch; a longer single input still runs alone.
    #[arg(long, env = "PIPESERVE_MAX_BATCH_TOKENS", default_value_t = 16384, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_tokens: u64,

    /// Longest wait for batch-mates, counted from the oldest queued input (0 = run what is queued).
    #[arg(long, env = "PIPESERVE_MAX_WAIT", default_value = "2ms", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,

    /// Most inputs waiting in the queue; above it requests get 503 with Retry-After at once.
    #[arg(long, env = "PIPESERVE_MAX_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_queue: u64,

    /// End-to-end limit for one request (504 after it); expired inputs never reach the model.
    #[arg(long, env = "PIPESERVE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Most inputs in one request.
    #[arg(long, env = "PIPESERVE_MAX_CLIENT_BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_client_batch_size: u64,

    /// Batch formation policy.
    #[arg(long, env = "PIPESERVE_BATCH_POLICY", value_enum, default_value_t = BatchPolicy::Fifo)]
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

    /// Truncate over-long inputs unless a request says `truncate: false` (default: reject them).
    #[arg(long, env = "PIPESERVE_AUTO_TRUNCATE")]
    pub auto_truncate: bool,

    /// Largest request body in bytes (413 above it).
    #[arg(long, env = "PIPESERVE_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub body_limit: usize,

    /// Threads for the model's math on CPU (0: one per core). Sets `OMP_NUM_THREADS` (mkl build) or
    /// `RAYON_NUM_THREADS` where those are not set; see src/threads.rs.
    #[arg(long, env = "PIPESERVE_MODEL_THREADS", default_value_t = 0)]
    pub model_threads: usize,

    /// Log as JSON lines instead of text.
    #[arg(long, env = "PIPESERVE_JSON_LOGS")]
    pub json_logs: bool,

    /// Test-only fault injection: a batch holding this token id panics inside the model step.
    #[arg(long, env = "PIPESERVE_TEST_PANIC_TOKEN", hide = true)]
    pub test_panic_token: Option<u32>,
}

/// The batching policy, as the batcher and `/info` see it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchingConfig {
    pub max_batch_size: usize,
    pub max_batch_tokens: usize,
    #[serde(serialize_with = "as_millis")]
    pub max_wait: Duration,
    pub max_queue: usize,
    #[serde(serialize_with = "as_millis")]
    pub request_timeout: Duration,
    pub max_client_batch_size: usize,
    pub policy: BatchPolicy,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Shutdown timings.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
}

impl Config {
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            model: self.model.clone(),
            task: self.task,
            device: self.device,
            dtype: self.dtype,
            max_input_tokens: self.max_input_tokens,
        }
    }

    pub fn batching(&self) -> BatchingConfig {
        BatchingConfig {
            max_batch_size: self.max_batch_size as usize,
            max_batch_tokens: self.max_batch_tokens as usize,
            max_wait: self.max_wait,
            max_queue: self.max_queue as usize,
            request_timeout: self.request_timeout,
            max_client_batch_size: self.max_client_batch_size as usize,
            policy: self.batch_policy,
        }
    }

    pub fn lifecycle(&self) -> LifecycleConfig {
        LifecycleConfig { drain_delay: self.drain_delay, shutdown_timeout: self.shutdown_timeout }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let c = Config::try_parse_from(["pipeserve", "--model", "m", "--max-wait", "5ms", "--batch-policy", "length"])
            .unwrap();
        assert_eq!(c.max_wait, Duration::from_millis(5));
        assert_eq!(c.batch_policy, BatchPolicy::Length);
        assert_eq!(c.port, 8000);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--max-batch-size", "0"]).is_err());
        assert!(Config::try_parse_from(["pipeserve", "--model", "m", "--device", "tpu"]).is_err());
    }
}
