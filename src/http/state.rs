//! Shared state of the HTTP side: the inference service once the model is loaded, health, metrics.

use std::sync::{Arc, OnceLock};

use crate::config::BatchingConfig;
use crate::http::error::ApiError;
use crate::infer::Infer;
use crate::lifecycle::health::Health;
use crate::telemetry::Metrics;

/// Everything a handler needs. Shared as an `Arc`; the router exists (and answers probes and
/// scrapes) before the model is loaded.
pub struct AppState {
    /// `--model` as given.
    pub model_name: String,
    /// The model's name towards clients (`/info`, `/v1/models`, OpenAI responses).
    pub served_model_name: String,
    /// The batching settings, as `/info` shows them.
    pub batching: BatchingConfig,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    infer: OnceLock<Infer>,
}

impl AppState {
    pub fn new(
        model_name: String,
        served_model_name: String,
        batching: BatchingConfig,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { model_name, served_model_name, batching, health, metrics, infer: OnceLock::new() }
    }

    /// The inference service; `Loading` until the model is loaded and warmed.
    pub fn infer(&self) -> Result<&Infer, ApiError> {
        self.infer.get().ok_or(ApiError::Loading)
    }

    /// Hands the loaded service to the routes (once).
    pub fn set_infer(&self, infer: Infer) {
        let _ = self.infer.set(infer);
    }
}
