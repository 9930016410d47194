//! Shared state of the HTTP side: the tokenizer and pipeline metadata, the batcher handle, health.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::batching::Batcher;
use crate::config::BatchingConfig;
use crate::model::ModelMeta;
use crate::pipelines::PipelineInfo;
use crate::telemetry::Metrics;
use crate::tokenize::TextTokenizer;
use crate::worker::WorkerStatus;

/// Readiness and liveness, with Kubernetes semantics.
pub struct Health {
    /// Model loaded and warmed.
    loaded: AtomicBool,
    /// SIGTERM received: stay up, but tell load balancers to stop sending.
    draining: AtomicBool,
    worker: Arc<WorkerStatus>,
    metrics: Arc<Metrics>,
}

impl Health {
    pub fn new(worker: Arc<WorkerStatus>, metrics: Arc<Metrics>) -> Self {
        Self { loaded: AtomicBool::new(false), draining: AtomicBool::new(false), worker, metrics }
    }

    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
        self.publish();
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.publish();
    }

    /// Process and worker alive.
    pub fn is_live(&self) -> bool {
        self.worker.is_alive()
    }

    /// Loaded, warmed, worker alive and not draining.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire) && self.worker.is_alive()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Refreshes the `ready` and `worker_alive` gauges.
    pub fn publish(&self) {
        self.metrics.ready.set(i64::from(self.is_ready()));
        self.metrics.worker_alive.set(i64::from(self.worker.is_alive()));
    }
}

/// Everything a handler needs. Cloned per request as an `Arc`.
pub struct AppState {
    pub model_name: String,
    pub meta: ModelMeta,
    pub tokenizer: Arc<TextTokenizer>,
    pub info: Arc<PipelineInfo>,
    pub batcher: Batcher,
    pub batching: BatchingConfig,
    pub auto_truncate: bool,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}
