//! Between the handlers and the worker: admission (the bounded queue's slots), the queue state and
//! the batcher task that closes batches and hands them to the worker.

pub mod queue;
mod task;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry::Metrics;
use crate::worker::{Answer, Job, WorkerError, WorkerHandle};

pub use queue::{BatchPolicy, Dropped, Entry, Limits, Queue};

/// What the batcher is started with.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub limits: Limits,
    /// Most inputs admitted and not yet handed to the worker.
    pub max_queue: usize,
}

/// The queue is full: the request is refused at once (503 + Retry-After).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the queue is full")]
pub struct Overloaded;

/// The batcher is gone (shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batcher has stopped")]
pub struct Closed;

/// One queue slot, held from admission until the input leaves the queue. The slots in use are
/// `pipeserve_queue_depth`: this type is that gauge's only writer.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    depth: IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, depth: &IntGauge) -> Self {
        depth.inc();
        Self { _permit: permit, depth: depth.clone() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.depth.dec();
    }
}

/// A queued input: the worker's job plus the slot it occupies and its `queue_wait` span, both
/// released when the input leaves the queue.
pub struct Queued {
    pub job: Job,
    _slot: Slot,
    _span: tracing::Span,
}

/// The handlers' side of the batcher: admits inputs and queues them. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    slots: Arc<Semaphore>,
    max_queue: usize,
    sender: mpsc::Sender<Entry<Queued>>,
    depth: IntGauge,
}

impl Batcher {
    /// Starts the batcher task feeding `worker`; it stops once every `Batcher` clone is dropped and
    /// the queue is empty, then releases the worker.
    pub fn start(
        config: BatcherConfig,
        worker: WorkerHandle,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        // Slots bound the queue, so the channel (same capacity) never fills before admission refuses.
        let (sender, receiver) = mpsc::channel(config.max_queue);
        let slots = Arc::new(Semaphore::new(config.max_queue));
        let depth = metrics.queue_depth.clone();
        let task = tokio::spawn(task::run(receiver, worker, config.limits, metrics));
        (Self { slots, max_queue: config.max_queue, sender, depth }, task)
    }

    /// True when no input can be admitted (checked before any parsing or tokenization).
    pub fn is_full(&self) -> bool {
        self.slots.available_permits() == 0
    }

    /// Inputs admitted and not yet handed to the worker.
    pub fn depth(&self) -> usize {
        self.max_queue - self.slots.available_permits()
    }

    /// Reserves `n` queue slots, all or none.
    pub fn admit(&self, n: usize) -> Result<Vec<Slot>, Overloaded> {
        (0..n)
            .map(|_| self.slots.clone().try_acquire_owned().map(|p| Slot::new(p, &self.depth)).map_err(|_| Overloaded))
            .collect()
    }

    /// Queues one tokenized input; the receiver yields the model's output for it. The current
    /// span (the request's) travels with the input, so the batch that runs it can link to it.
    pub fn submit(
        &self,
        slot: Slot,
        ids: Vec<u32>,
        type_ids: Vec<u32>,
        expires: Instant,
    ) -> Result<oneshot::Receiver<Result<Answer, WorkerError>>, Closed> {
        let (reply, receiver) = oneshot::channel();
        let queue_span = tracing::debug_span!("queue_wait", tokens = ids.len() as i64);
        let job = Job { ids, type_ids, reply, span: tracing::Span::current(), queue_wait: Duration::ZERO };
        let entry = Entry {
            tokens: job.ids.len(),
            enqueued: Instant::now(),
            expires,
            payload: Queued { job, _slot: slot, _span: queue_span },
        };
        // Never full: the slot just admitted guarantees room. Closed only during shutdown.
        self.sender.try_send(entry).map_err(|_| Closed)?;
        Ok(receiver)
    }
}
