//! The worker: ONE named OS thread that owns the model on its device and runs batches. A panic in a
//! batch is caught (that batch's requests get an error, the thread lives on); if the thread ends
//! anyway, liveness fails.
//!
//! The model is a seam ([`BatchModel`]): the server gives the worker a loaded [`Model`], the
//! batcher and worker tests a fake that records, blocks or panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::model::{Model, ModelInput, RawOutput};
use crate::telemetry::{traces, Metrics};

/// What the worker runs: one padded batch in, one raw output per input out, in order.
pub trait BatchModel: Send + 'static {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>>;
}

impl BatchModel for Model {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        Model::forward(self, inputs)
    }
}

/// Why a job got no output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerError {
    #[error("model step panicked: {0}")]
    Panicked(String),
    #[error("model step failed: {0}")]
    Model(String),
    #[error("request timed out in the queue")]
    Expired,
}

/// One input for the model, with the channel its answer goes back on.
pub struct Job {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// fill-mask: keep only this many candidates per mask (probabilities), so a vocabulary-wide
    /// row per mask never leaves the worker.
    pub top_k: Option<usize>,
    pub reply: oneshot::Sender<Result<Answer, WorkerError>>,
    /// The request's span: the batch span links to it.
    pub span: tracing::Span,
    /// Time spent queued, set by the batcher when the input joins a batch.
    pub queue_wait: Duration,
}

/// The model's output for one input, and how it got there (for the request's log line).
#[derive(Debug)]
pub struct Answer {
    pub output: RawOutput,
    pub queue_wait: Duration,
    /// Inputs in the model batch that carried this one.
    pub batch_size: usize,
}

impl Job {
    /// True when nobody waits for the answer any more (request timed out or client left).
    pub fn is_cancelled(&self) -> bool {
        self.reply.is_closed()
    }
}

/// A batch handed to the worker.
pub struct Batch {
    pub jobs: Vec<Job>,
}

/// The batcher's end of the worker: hands batches over and learns when the worker is idle.
/// Dropping it closes the channel; the thread ends after the batch in hand.
pub struct WorkerHandle {
    sender: mpsc::Sender<Batch>,
    idle: Arc<Notify>,
    throughput: Arc<Throughput>,
}

/// The worker's measured rate in real (unpadded) tokens per second of model step, for admission to
/// predict how long queued work will take: decayed sums of tokens and seconds over recent batches,
/// so a batch weighs by its size (the warm-up's tiny batch, mostly overhead, barely counts once
/// real batches ran).
#[derive(Debug, Default)]
pub struct Throughput {
    /// Decayed sum of tokens, f64 bits (only the worker thread writes).
    tokens: AtomicU64,
    /// Decayed sum of seconds, f64 bits.
    seconds: AtomicU64,
    /// Tokens of the batch running now (0 while idle): work ahead of anything queued.
    running: AtomicUsize,
}

impl Throughput {
    /// How much of the history each new batch keeps.
    const DECAY: f64 = 0.9;

    pub fn tokens_per_second(&self) -> Option<f64> {
        let tokens = f64::from_bits(self.tokens.load(Ordering::Relaxed));
        let seconds = f64::from_bits(self.seconds.load(Ordering::Relaxed));
        (seconds > 0.0 && tokens > 0.0).then(|| tokens / seconds)
    }

    /// Tokens of the batch on the model now.
    pub fn running_tokens(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Folds in one batch of `tokens` that took `seconds`.
    pub fn record(&self, tokens: usize, seconds: f64) {
        if tokens == 0 || seconds <= 0.0 {
            return;
        }
        let t = f64::from_bits(self.tokens.load(Ordering::Relaxed)) * Self::DECAY + tokens as f64;
        let s = f64::from_bits(self.seconds.load(Ordering::Relaxed)) * Self::DECAY + seconds;
        self.tokens.store(t.to_bits(), Ordering::Relaxed);
        self.seconds.store(s.to_bits(), Ordering::Relaxed);
    }
}

/// Liveness of the worker thread, shared with the health routes.
pub struct WorkerStatus {
    alive: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Starts the worker thread with the model it will own.
pub fn spawn<M: BatchModel>(model: M, metrics: Arc<Metrics>) -> std::io::Result<(WorkerHandle, Arc<WorkerStatus>)> {
    // Capacity 1: the batcher only sends when the worker said it is idle.
    let (sender, receiver) = mpsc::channel::<Batch>(1);
    let idle = Arc::new(Notify::new());
    let alive = Arc::new(AtomicBool::new(true));
    let throughput = Arc::new(Throughput::default());
    let thread = std::thread::Builder::new().name("pipeserve-worker".into()).spawn({
        let (idle, alive, throughput) = (idle.clone(), alive.clone(), throughput.clone());
        move || run(&model, receiver, &idle, &alive, &metrics, &throughput)
    })?;
    idle.notify_one();
    let status = WorkerStatus { alive, thread: Mutex::new(Some(thread)) };
    Ok((WorkerHandle { sender, idle, throughput }, Arc::new(status)))
}

impl WorkerHandle {
    /// Waits until the worker can take a batch.
    pub async fn until_idle(&self) {
        self.idle.notified().await
    }

    /// The worker's measured rate.
    pub fn throughput(&self) -> Arc<Throughput> {
        self.throughput.clone()
    }

    /// Hands a batch over; gives it back only when the worker thread is gone.
    pub async fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.sender.send(batch).await.map_err(|e| e.0)
    }
}

impl WorkerStatus {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Waits for the thread to end (once the batcher dropped its handle).
    pub fn join(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// Marks the worker dead however the thread ends.
struct AliveGuard<'a>(&'a AtomicBool, &'a Metrics);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
        self.1.worker_alive.set(0);
    }
}

fn run(
    model: &dyn BatchModel,
    mut receiver: mpsc::Receiver<Batch>,
    idle: &Notify,
    alive: &AtomicBool,
    metrics: &Metrics,
    throughput: &Throughput,
) {
    let _guard = AliveGuard(alive, metrics);
    metrics.worker_alive.set(1);
    while let Some(batch) = receiver.blocking_recv() {
        run_batch(model, batch, metrics, throughput);
        idle.notify_one();
    }
    tracing::info!("worker stopped");
}

fn run_batch(model: &dyn BatchModel, batch: Batch, metrics: &Metrics, throughput: &Throughput) {
    // Last check before compute: a client may have left while the batch was handed over.
    let (jobs, gone): (Vec<Job>, Vec<Job>) = batch.jobs.into_iter().partition(|j| !j.is_cancelled());
    metrics.cancelled.inc_by(gone.len() as u64);
    if jobs.is_empty() {
        return;
    }
    let inputs: Vec<ModelInput<'_>> = jobs.iter().map(|j| ModelInput { ids: &j.ids, type_ids: &j.type_ids }).collect();
    let longest = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
    let real: usize = inputs.iter().map(|i| i.ids.len()).sum();
    let padded = longest * inputs.len();
    metrics.batch_size.observe(inputs.len() as f64);
    metrics.batch_tokens.observe(padded as f64);
    let padding_ratio = if padded == 0 { 0.0 } else { 1.0 - real as f64 / padded as f64 };
    metrics.padding_ratio.observe(padding_ratio);
    // One span per batch, a root of its own, linked to every request it serves. (Counts as i64:
    // OpenTelemetry has no unsigned attributes.)
    let span = tracing::debug_span!(
        parent: None, "batch",
        batch.size = inputs.len() as i64, batch.tokens = padded as i64, batch.real_tokens = real as i64,
        batch.padding_ratio = padding_ratio,
        otel.status_code = tracing::field::Empty,
    );
    traces::link_all(&span, jobs.iter().map(|j| &j.span));
    let _batch = span.enter();
    throughput.running.store(real, Ordering::Relaxed);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _forward = tracing::debug_span!("model.forward").entered();
        model.forward(&inputs)
    }));
    let seconds = started.elapsed().as_secs_f64();
    throughput.running.store(0, Ordering::Relaxed);
    metrics.inference_duration.observe(seconds);
    if matches!(result, Ok(Ok(_))) {
        throughput.record(real, seconds);
        metrics.throughput.set(throughput.tokens_per_second().unwrap_or(0.0) as i64);
    }
    drop(inputs);
    let outcome: Result<Vec<RawOutput>, WorkerError> = match result {
        Ok(Ok(outputs)) if outputs.len() == jobs.len() => Ok(outputs),
        Ok(Ok(outputs)) => Err(WorkerError::Model(format!("{} outputs for {} inputs", outputs.len(), jobs.len()))),
        Ok(Err(e)) => Err(WorkerError::Model(e.to_string())),
        Err(panic) => {
            metrics.worker_panics.inc();
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(WorkerError::Panicked(text))
        }
    };
    let batch_size = jobs.len();
    match outcome {
        Ok(outputs) => {
            for (job, output) in jobs.into_iter().zip(outputs) {
                let output = match job.top_k {
                    Some(k) => output.keep_top_k(k),
                    None => output,
                };
                // A receiver gone by now just drops the answer.
                let _ = job.reply.send(Ok(Answer { output, queue_wait: job.queue_wait, batch_size }));
            }
        }
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            tracing::error!(error = %e, batch = jobs.len(), "batch failed");
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Throughput;

    #[test]
    fn the_rate_weighs_batches_by_their_size() {
        let t = Throughput::default();
        assert_eq!(t.tokens_per_second(), None);
        // A tiny warm-up batch, mostly overhead, then real batches at 2,500 tokens/s.
        t.record(10, 0.02);
        for _ in 0..3 {
            t.record(2048, 2048.0 / 2500.0);
        }
        let rate = t.tokens_per_second().unwrap();
        assert!((rate - 2500.0).abs() < 25.0, "{rate}");
    }
}
