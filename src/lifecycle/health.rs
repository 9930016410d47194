//! Readiness and liveness with Kubernetes semantics, owned by the lifecycle: the process is live
//! from the moment it listens (loading included) for as long as its worker thread runs; it is ready
//! once the model is loaded and warmed, until the drain starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::telemetry::Metrics;
use crate::worker::WorkerStatus;

/// The server's health, shared by the probes, `/metrics` and the shutdown sequence.
pub struct Health {
    /// Set once the model is loaded and warmed, with the worker that then serves it.
    worker: OnceLock<Arc<WorkerStatus>>,
    /// SIGTERM received: stay up, but tell load balancers to stop sending.
    draining: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Health {
    /// Health while the model loads: live, not ready.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let health = Self { worker: OnceLock::new(), draining: AtomicBool::new(false), metrics };
        health.publish();
        health
    }

    /// The model is loaded and warmed; `worker` now decides liveness.
    pub fn set_loaded(&self, worker: Arc<WorkerStatus>) {
        let _ = self.worker.set(worker);
        self.publish();
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.publish();
    }

    pub fn is_loaded(&self) -> bool {
        self.worker.get().is_some()
    }

    /// The process is up and, once loaded, its worker thread alive.
    pub fn is_live(&self) -> bool {
        self.worker.get().is_none_or(|w| w.is_alive())
    }

    /// Loaded, warmed, worker alive and not draining.
    pub fn is_ready(&self) -> bool {
        self.worker.get().is_some_and(|w| w.is_alive()) && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Refreshes the `ready`, `model_loaded` and `worker_alive` gauges.
    pub fn publish(&self) {
        self.metrics.ready.set(i64::from(self.is_ready()));
        self.metrics.model_loaded.set(i64::from(self.is_loaded()));
        self.metrics.worker_alive.set(i64::from(self.worker.get().is_some_and(|w| w.is_alive())));
    }
}
