//! The worker: N model instances (`--instances`), each ONE named OS thread that runs one batch at a
//! time on the same weights (shared read-only, so an instance costs its activations, not a copy of
//! the model). The batcher hands each closed batch to an idle instance. A panic in a batch is
//! caught (that batch's requests get an error, the instance lives on and the others never notice);
//! if an instance thread ends anyway, liveness fails.
//!
//! The model is a seam ([`BatchModel`]): the server gives the instances views of one loaded
//! [`Model`] (`Arc<Model>`), the batcher and worker tests a fake that records, blocks or panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::model::{Model, ModelInput, RawOutput};
use crate::telemetry::{traces, Metrics};

/// What an instance runs: one padded batch in, one raw output per input out, in order. `Sync`:
/// every instance runs on a shared view of the same model.
pub trait BatchModel: Send + Sync + 'static {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>>;
}

impl BatchModel for Model {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        Model::forward(self, inputs)
    }
}

/// A shared view: N instances of one loaded model hold the same weights (candle tensors and our
/// native GEMM weights are only read during a forward pass).
impl<M: BatchModel> BatchModel for Arc<M> {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        M::forward(self, inputs)
    }
}

/// How the worker's instances run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Model instances: batches that run at the same time (`--instances`).
    pub instances: usize,
    /// Threads of each instance's own rayon pool, where candle's CPU matmul and element-wise ops
    /// run (src/threads.rs); 0: no pool of its own (the forward pass runs on the caller's pool).
    pub math_threads: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { instances: 1, math_threads: 0 }
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

/// The batcher's end of the worker: hands batches to idle instances and learns when one is idle.
/// Dropping it closes every instance's channel; each thread ends after the batch in hand.
pub struct WorkerHandle {
    /// One channel per instance, capacity 1: the batcher only sends to an instance that said it
    /// is idle.
    senders: Vec<mpsc::Sender<Batch>>,
    /// Instances that finished a batch (or just started), by index. Capacity N and one message per
    /// instance at a time, so an instance never blocks on it.
    idle: mpsc::Receiver<usize>,
    capacity: Arc<Capacity>,
}

/// One instance's measured rate in real (unpadded) tokens per second of model step, for admission
/// to predict how long queued work will take: decayed sums of tokens and seconds over recent
/// batches of at least [`Throughput::FULL_TOKENS`], so a batch weighs by its size. Queued work runs
/// in such batches; a small batch is mostly per-batch overhead, so once one full batch was measured
/// small ones (idle traffic, the warm-up's single inputs) no longer count: 3-token requests had
/// measured ~150 tokens/s, and a burst of large requests after them was shed at once.
#[derive(Debug, Default)]
pub struct Throughput {
    /// Decayed sum of tokens, f64 bits (only the instance's thread writes).
    tokens: AtomicU64,
    /// Decayed sum of seconds, f64 bits.
    seconds: AtomicU64,
    /// Whether a batch of at least `FULL_TOKENS` was measured (only those count from then on).
    full: std::sync::atomic::AtomicBool,
    /// Tokens of the batch running now (0 while idle): work ahead of anything queued.
    running: AtomicUsize,
}

impl Throughput {
    /// How much of the history each new batch keeps.
    const DECAY: f64 = 0.9;
    /// The least tokens of a batch whose rate stands for queued work.
    pub const FULL_TOKENS: usize = 256;

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
        let full = tokens >= Self::FULL_TOKENS;
        let history = match (full, self.full.load(Ordering::Relaxed)) {
            (false, true) => return,
            // The first full batch replaces what small batches measured.
            (true, false) => {
                self.full.store(true, Ordering::Relaxed);
                0.0
            }
            _ => Self::DECAY,
        };
        let t = f64::from_bits(self.tokens.load(Ordering::Relaxed)) * history + tokens as f64;
        let s = f64::from_bits(self.seconds.load(Ordering::Relaxed)) * history + seconds;
        self.tokens.store(t.to_bits(), Ordering::Relaxed);
        self.seconds.store(s.to_bits(), Ordering::Relaxed);
    }
}

/// What the instances together get through: the rate admission predicts waits from.
#[derive(Debug)]
pub struct Capacity {
    instances: Vec<Throughput>,
}

impl Capacity {
    /// Room for `instances` rates, none measured yet.
    pub fn new(instances: usize) -> Self {
        Self { instances: (0..instances.max(1)).map(|_| Throughput::default()).collect() }
    }

    /// One instance's rate.
    pub fn instance(&self, i: usize) -> &Throughput {
        &self.instances[i]
    }

    /// The instances' summed rate, with any instance not yet measured counted at the mean of
    /// those that were (the warm-up runs on one instance only; all run the same model on equal
    /// threads, and each one's rate is measured while the others compete for the cores, so the
    /// sum already holds what parallel instances cost each other). `None` until one is measured.
    pub fn tokens_per_second(&self) -> Option<f64> {
        // Runs on every admission check: no allocation.
        let (sum, measured) = self
            .instances
            .iter()
            .filter_map(Throughput::tokens_per_second)
            .fold((0.0, 0usize), |(sum, n), rate| (sum + rate, n + 1));
        (measured > 0).then(|| sum / measured as f64 * self.instances.len() as f64)
    }

    /// Tokens of the batches on the instances now.
    pub fn running_tokens(&self) -> usize {
        self.instances.iter().map(Throughput::running_tokens).sum()
    }
}

/// Liveness of the instance threads, shared with the health routes.
pub struct WorkerStatus {
    alive: Vec<Arc<AtomicBool>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Starts one thread per model in `instances` (each takes one batch at a time), each with its own
/// math thread pool when `math_threads` asks for one.
pub fn spawn<M: BatchModel>(
    instances: Vec<M>,
    math_threads: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<(WorkerHandle, Arc<WorkerStatus>)> {
    let n = instances.len();
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no model instance to run"));
    }
    let (idle_sender, idle) = mpsc::channel::<usize>(n);
    let capacity = Arc::new(Capacity::new(n));
    metrics.worker_instances.set(n as i64);
    let (mut senders, mut alive, mut threads) = (Vec::new(), Vec::new(), Vec::new());
    for (i, model) in instances.into_iter().enumerate() {
        let pool = (math_threads > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(math_threads)
                    .thread_name(move |t| format!("pipeserve-math-{i}.{t}"))
                    .build()
                    .map_err(std::io::Error::other)
            })
            .transpose()?;
        let (sender, receiver) = mpsc::channel::<Batch>(1);
        let instance = Instance {
            index: i,
            pool,
            idle: idle_sender.clone(),
            alive: Arc::new(AtomicBool::new(true)),
            // Exported at 0 from the start, so a rate over an idle instance is 0, not absent.
            batches: metrics.worker_batches.with_label_values(&[i.to_string()]),
            metrics: metrics.clone(),
            capacity: capacity.clone(),
        };
        alive.push(instance.alive.clone());
        // The first instance keeps the name a single worker always had.
        let name = if i == 0 { "pipeserve-worker".to_string() } else { format!("pipeserve-worker-{i}") };
        threads.push(std::thread::Builder::new().name(name).spawn(move || instance.run(&model, receiver))?);
        senders.push(sender);
    }
    // Every instance starts idle; the channel holds one message per instance.
    for i in 0..n {
        let _ = idle_sender.try_send(i);
    }
    let status = WorkerStatus { alive, threads: Mutex::new(threads) };
    Ok((WorkerHandle { senders, idle, capacity }, Arc::new(status)))
}

impl WorkerHandle {
    /// Model instances, busy or not.
    pub fn instances(&self) -> usize {
        self.senders.len()
    }

    /// Waits until an instance can take a batch and returns its index; `None` once every instance
    /// thread is gone. Cancel-safe: a `select!` may drop it without losing an idle instance.
    pub async fn next_idle(&mut self) -> Option<usize> {
        self.idle.recv().await
    }

    /// The instances' measured rate.
    pub fn capacity(&self) -> Arc<Capacity> {
        self.capacity.clone()
    }

    /// Hands a batch to `instance` (one [`WorkerHandle::next_idle`] returned); gives it back only
    /// when that instance's thread is gone.
    pub async fn send(&self, instance: usize, batch: Batch) -> Result<(), Batch> {
        match self.senders.get(instance) {
            Some(sender) => sender.send(batch).await.map_err(|e| e.0),
            None => Err(batch),
        }
    }
}

impl WorkerStatus {
    /// Every instance thread runs (one that ended is a bug: the process should be restarted).
    pub fn is_alive(&self) -> bool {
        self.alive.iter().all(|a| a.load(Ordering::Acquire))
    }

    /// Waits for the threads to end (once the batcher dropped its handle).
    pub fn join(&self) {
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Marks the worker dead however an instance thread ends.
struct AliveGuard<'a>(&'a AtomicBool, &'a Metrics);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
        self.1.worker_alive.set(0);
    }
}

/// One instance's thread state.
struct Instance {
    index: usize,
    /// The instance's own math threads (`--model-threads`), so instances do not queue their
    /// matmuls behind each other on one shared pool.
    pool: Option<rayon::ThreadPool>,
    idle: mpsc::Sender<usize>,
    alive: Arc<AtomicBool>,
    /// This instance's series of `pipeserve_worker_batches_total`.
    batches: prometheus::IntCounter,
    metrics: Arc<Metrics>,
    capacity: Arc<Capacity>,
}

impl Instance {
    fn run(&self, model: &dyn BatchModel, mut receiver: mpsc::Receiver<Batch>) {
        let _guard = AliveGuard(&self.alive, &self.metrics);
        self.metrics.worker_alive.set(1);
        while let Some(batch) = receiver.blocking_recv() {
            self.metrics.worker_instances_busy.inc();
            run_batch(model, batch, self);
            self.metrics.worker_instances_busy.dec();
            // Gone only when the batcher stopped; the receiver then ends this loop too.
            let _ = self.idle.blocking_send(self.index);
        }
        tracing::info!(instance = self.index, "worker stopped");
    }

    /// Runs the forward pass on the instance's own math threads.
    fn forward(&self, model: &dyn BatchModel, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        match &self.pool {
            Some(pool) => pool.install(|| model.forward(inputs)),
            None => model.forward(inputs),
        }
    }
}

fn run_batch(model: &dyn BatchModel, batch: Batch, instance: &Instance) {
    let metrics = &instance.metrics;
    let throughput = instance.capacity.instance(instance.index);
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
        batch.padding_ratio = padding_ratio, batch.instance = instance.index as i64,
        otel.status_code = tracing::field::Empty,
    );
    traces::link_all(&span, jobs.iter().map(|j| &j.span));
    let _batch = span.enter();
    throughput.running.store(real, Ordering::Relaxed);
    let started = Instant::now();
    instance.batches.inc();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _forward = tracing::debug_span!("model.forward").entered();
        instance.forward(model, &inputs)
    }));
    let seconds = started.elapsed().as_secs_f64();
    throughput.running.store(0, Ordering::Relaxed);
    metrics.inference_duration.observe(seconds);
    if matches!(result, Ok(Ok(_))) {
        throughput.record(real, seconds);
        metrics.throughput.set(instance.capacity.tokens_per_second().unwrap_or(0.0) as i64);
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
            tracing::error!(error = %e, batch = jobs.len(), instance = instance.index, "batch failed");
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Capacity, Throughput};

    #[test]
    fn the_capacity_counts_every_instance() {
        let c = Capacity::new(3);
        assert_eq!(c.tokens_per_second(), None);
        // Measured: 1,000 and 2,000 tokens/s; the third, not yet measured, counts at their mean.
        c.instance(0).record(1000, 1.0);
        c.instance(2).record(4000, 2.0);
        assert_eq!(c.tokens_per_second(), Some(4500.0));
        assert_eq!(Capacity::new(1).tokens_per_second(), None);
    }

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
        assert!((rate - 2500.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn small_batches_stand_in_only_until_a_full_one_is_measured() {
        let t = Throughput::default();
        // Idle traffic: 3-token requests at 20 ms each, mostly overhead.
        t.record(3, 0.02);
        assert_eq!(t.tokens_per_second(), Some(150.0), "the only measure there is");
        t.record(Throughput::FULL_TOKENS, Throughput::FULL_TOKENS as f64 / 2500.0);
        for _ in 0..100 {
            t.record(3, 0.02);
        }
        let rate = t.tokens_per_second().unwrap();
        assert!((rate - 2500.0).abs() < 1.0, "a full batch's rate, kept through idle traffic: {rate}");
    }
}
