//! Assembling the server: the router (and the gRPC services) and health exist before the model does, so the process
//! answers probes and scrapes while it loads; [`App::load`] then loads and warms the model, starts
//! the worker and the batcher, and hands the inference service to the routes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;

use crate::config::Config;
use crate::http::state::AppState;
use crate::infer::{self, Backend, Infer, InferError, InferRequest};
use crate::lifecycle::health::Health;
use crate::load::{self, LoadConfig};
use crate::model::LoadError;
use crate::pipelines::Params;
use crate::telemetry::Metrics;

/// Why the server could not start serving its model.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the model loading task failed: {0}")]
    LoaderFailed(String),
    #[error("cannot start the worker thread: {0}")]
    WorkerThread(std::io::Error),
    #[error("warm-up failed: {0}")]
    WarmUp(InferError),
}

/// The server before its model: the router (answering probes, scrapes, and 503 on inference
/// routes), its health, and the loader that brings the model in.
pub struct App {
    pub router: Router,
    pub health: Arc<Health>,
    pub loader: Loader,
    pub metrics: Arc<Metrics>,
    /// The gRPC services, when `--grpc-port` is set.
    pub grpc: Option<crate::grpc::GrpcServer>,
}

/// Loads the model into a built [`App`].
pub struct Loader {
    state: Arc<AppState>,
    load: LoadConfig,
    settings: infer::InferSettings,
}

impl App {
    pub fn new(config: &Config) -> Self {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(metrics.clone()));
        let state = Arc::new(AppState::new(
            config.model.clone(),
            config.served_model_name(),
            config.batching(),
            health.clone(),
            metrics.clone(),
        ));
        let http = config.http();
        // One set of keys (and one thread re-reading the keys file) for both transports.
        let keys = crate::auth::Keys::start(&http.auth);
        metrics.declare_tenants(&keys.tenant_names(), &["interactive", "batch"]);
        let router = crate::http::router(state.clone(), &http, keys.clone());
        let grpc = config.grpc_port.map(|_| crate::grpc::GrpcServer::new(state.clone(), config.grpc(), keys));
        let loader = Loader { state, load: config.load(), settings: config.infer() };
        Self { router, health, loader, metrics, grpc }
    }
}

impl Loader {
    /// Loads the model (off the async runtime), starts worker and batcher, warms the whole path
    /// up, then marks the server ready. Returns the running parts for the shutdown sequence.
    pub async fn load(self) -> Result<Backend, StartError> {
        let Self { state, load, settings } = self;
        let started = Instant::now();
        let loaded = with_progress("loading the model", tokio::task::spawn_blocking(move || load::load(&load)))
            .await
            .map_err(|e| StartError::LoaderFailed(e.to_string()))??;
        let meta = loaded.meta.clone();
        tracing::info!(
            model = %state.model_name, task = %meta.task, model_type = %meta.model_type,
            device = %meta.device, dtype = %meta.dtype, gemm = %meta.gemm, packed = meta.packed, seconds = started.elapsed().as_secs_f64(), "model loaded"
        );
        state.metrics.set_build_info(
            &state.model_name,
            meta.task.as_str(),
            &meta.device.to_string(),
            &meta.dtype.to_string(),
            &meta.gemm.to_string(),
        );
        let (infer, backend) =
            Infer::start(loaded, settings, state.metrics.clone()).map_err(StartError::WorkerThread)?;
        let warm_start = Instant::now();
        with_progress("warming up", warm_up(&infer)).await.map_err(StartError::WarmUp)?;
        state.metrics.reset_after_warm_up();
        tracing::info!(seconds = warm_start.elapsed().as_secs_f64(), "model warmed up");
        state.set_infer(infer);
        state.health.set_loaded(backend.worker.clone());
        tracing::info!("ready");
        Ok(backend)
    }
}

/// Time the warm-up may take whatever `--request-timeout` says: a first step on a new device can
/// be slow (kernels compile, memory pools grow), and no client waits for it.
const WARM_UP_BUDGET: Duration = Duration::from_secs(600);

/// Requests through the whole service so the first client does not pay for lazy set-up: one per
/// warm-up input, at once (so they still batch), each bounded by the limits a client's one-input
/// request meets (two SPLADE inputs estimate more response bytes than a small
/// `--max-response-bytes` lets one request have, one does not).
pub async fn warm_up(infer: &Infer) -> Result<(), InferError> {
    let deadline = tokio::time::Instant::now() + WARM_UP_BUDGET.max(infer.settings().request_timeout);
    let inputs = infer::warm_up_inputs(infer.info().task, infer.tokenizer());
    let run = |inputs: Vec<String>, params: Params| {
        let request = InferRequest::new(inputs, params);
        infer.run(InferRequest { deadline: Some(deadline), ..request })
    };
    futures_util::future::try_join_all(inputs.iter().map(|input| run(vec![input.clone()], Params::default()))).await?;
    // Then one full batch, so admission's first rate is what queued work runs at
    // (`worker::Throughput`). Best effort: a request this size may be over the server's own
    // limits (--max-response-bytes, a short model), which the inputs above already proved.
    let long = format!("{} {}", "Warm-up: the quick brown fox jumps over the lazy dog.".repeat(4), inputs[0]);
    let full = Params { truncate: Some(true), ..Params::default() };
    if let Err(e) = run(vec![long; 8], full).await {
        tracing::debug!(error = %e, "warm-up: no full batch");
    }
    Ok(())
}

/// How often a long start-up step says it is still at work.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Awaits `work`, logging every [`PROGRESS_EVERY`] that it still runs, so a long model fetch or
/// load shows progress instead of silence.
async fn with_progress<T>(what: &str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at((started + PROGRESS_EVERY).into(), PROGRESS_EVERY);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => tracing::info!(seconds = started.elapsed().as_secs(), "{what}: still at it"),
        }
    }
}
