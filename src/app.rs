//! Assembling the server: load and warm the engine, start the worker and the batcher, build the
//! router; and the graceful shutdown that takes them down in order.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;

use crate::batching::Batcher;
use crate::config::Config;
use crate::engine::Engine;
use crate::http::state::{AppState, Health};
use crate::model::{LoadError, Task};
use crate::pipelines::Params;
use crate::telemetry::Metrics;
use crate::worker::{self, WorkerStatus};

/// A built server: the router to serve, and what shutdown needs.
pub struct App {
    pub router: Router,
    pub health: Arc<Health>,
    pub worker: Arc<WorkerStatus>,
    pub batcher_task: tokio::task::JoinHandle<()>,
}

impl App {
    /// Loads the model (off the async runtime), warms it, and starts worker and batcher.
    pub async fn build(config: &Config) -> Result<Self, LoadError> {
        let metrics = Arc::new(Metrics::new());
        let started = Instant::now();
        let engine_config = config.engine();
        let engine = with_progress("loading the model", tokio::task::spawn_blocking(move || Engine::load(&engine_config)))
            .await
            .map_err(|e| LoadError::WarmUp(e.to_string()))??;
        tracing::info!(
            model = %config.model, task = %engine.meta.task, model_type = %engine.meta.model_type,
            device = %engine.meta.device, dtype = %engine.meta.dtype,
            seconds = started.elapsed().as_secs_f64(), "model loaded"
        );
        let warm_start = Instant::now();
        let engine = with_progress("warming up", tokio::task::spawn_blocking(move || warm_up(&engine).map(|()| engine)))
            .await
            .map_err(|e| LoadError::WarmUp(e.to_string()))??;
        tracing::info!(seconds = warm_start.elapsed().as_secs_f64(), "model warmed up");

        let Engine { model, tokenizer, info, meta } = engine;
        metrics.set_build_info(&config.model, meta.task.as_str(), &meta.device.to_string(), &meta.dtype.to_string());
        let (worker_handle, worker) = worker::spawn(model, metrics.clone(), config.test_panic_token)
            .map_err(|e| LoadError::WarmUp(format!("cannot start the worker thread: {e}")))?;
        let batching = config.batching();
        let (batcher, batcher_task) = Batcher::start(&batching, worker_handle, metrics.clone());
        let health = Arc::new(Health::new(worker.clone(), metrics.clone()));
        let state = Arc::new(AppState {
            model_name: config.model.clone(),
            meta,
            tokenizer,
            info,
            batcher,
            batching,
            auto_truncate: config.auto_truncate,
            health: health.clone(),
            metrics,
        });
        let router = crate::http::router(state, &config.http());
        health.set_loaded();
        Ok(Self { router, health, worker, batcher_task })
    }
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

/// Runs one batch through the whole pipeline so the first request does not pay for lazy set-up.
fn warm_up(engine: &Engine) -> Result<(), LoadError> {
    // Two inputs of different lengths, so the padding path runs too.
    let texts = match (engine.meta.task, engine.tokenizer.mask()) {
        (Task::FillMask, Some((mask, _))) => [format!("The capital of France is {mask}."), format!("{mask} world")],
        _ => ["Warm-up: the quick brown fox jumps over the lazy dog.".to_string(), "hello".to_string()],
    };
    engine
        .run(&[texts[0].as_str(), texts[1].as_str()], &Params::default())
        .map(|_| ())
        .map_err(|e| LoadError::WarmUp(e.to_string()))
}
