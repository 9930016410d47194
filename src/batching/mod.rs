//! Between the handlers and the worker: admission (the bounded queue's slots), the queue state and
//! the batcher task that closes batches and hands each to an idle model instance.

pub mod queue;
mod task;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry::Metrics;
use crate::worker::{Answer, Capacity, Job, WorkerError, WorkerHandle};

pub use queue::{BatchPolicy, Dropped, Entry, Limits, Queue};

/// What the batcher is started with.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub limits: Limits,
    /// Most inputs admitted and not yet handed to the worker.
    pub max_queue: usize,
    /// Most tokens admitted and not yet handed to the worker: the queue's bound on work, not count.
    pub max_queue_tokens: usize,
}

/// The request cannot be queued now: refused at once (503) with when to retry.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the queue is full")]
pub struct Overloaded {
    pub retry_after: Duration,
}

/// The batcher is gone (shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batcher has stopped")]
pub struct Closed;

/// One input's place in the queue: a slot of the count bound, and its tokens of the token bound,
/// held from admission until the input leaves the queue. The slots in use are
/// `pipeserve_queue_depth` and their tokens `pipeserve_queue_tokens`: this type is those gauges'
/// only writer.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    tokens: Option<OwnedSemaphorePermit>,
    /// Its request's work, which this input's tokens leave with it; its request's id and the
    /// tokens of the request's inputs before it (the queue's fair order).
    flow: Option<Arc<AtomicUsize>>,
    flow_id: u64,
    offset: usize,
    depth: IntGauge,
    queued_tokens: IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, batcher: &Batcher) -> Self {
        batcher.depth.inc();
        Self {
            _permit: permit,
            tokens: None,
            flow: None,
            flow_id: 0,
            offset: 0,
            depth: batcher.depth.clone(),
            queued_tokens: batcher.queued_tokens.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.depth.dec();
        if let Some(tokens) = &self.tokens {
            self.queued_tokens.sub(tokens.num_permits() as i64);
            if let Some(flow) = &self.flow {
                flow.fetch_sub(tokens.num_permits(), Ordering::AcqRel);
            }
        }
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
    tokens: Arc<Semaphore>,
    config: BatcherConfig,
    sender: mpsc::Sender<Entry<Queued>>,
    /// The model instances' measured rate, together.
    capacity: Arc<Capacity>,
    /// Every admitted request's work not yet handed to the worker ([`Flow`]).
    flows: Arc<Mutex<Vec<Weak<AtomicUsize>>>>,
    next_flow: Arc<AtomicU64>,
    depth: IntGauge,
    queued_tokens: IntGauge,
}

/// One admitted request's work not yet handed to the worker: an upper bound of its tokens while
/// it is tokenized, then its queued inputs' tokens (each leaves with its input). Admission reads
/// every request's, so work still being tokenized counts ahead of a newcomer, and so that it can
/// count what fair queuing would run before the newcomer (see [`Batcher::fair_wait`]).
pub struct Flow {
    id: u64,
    work: Arc<AtomicUsize>,
}

/// Longest `Retry-After` advised: past it the estimate says little.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Batcher {
    /// Starts the batcher task feeding `worker`'s instances; it stops once every `Batcher` clone is
    /// dropped and the queue is empty, then releases the worker.
    pub fn start(
        config: BatcherConfig,
        worker: WorkerHandle,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        // Slots bound the queue, so the channel (same capacity) never fills before admission refuses.
        let (sender, receiver) = mpsc::channel(config.max_queue);
        let slots = Arc::new(Semaphore::new(config.max_queue));
        let tokens = Arc::new(Semaphore::new(config.max_queue_tokens));
        let (depth, queued_tokens) = (metrics.queue_depth.clone(), metrics.queue_tokens.clone());
        let capacity = worker.capacity();
        let task = tokio::spawn(task::run(receiver, worker, config.limits, metrics));
        let (flows, next_flow) = (Arc::default(), Arc::default());
        (Self { slots, tokens, config, sender, capacity, flows, next_flow, depth, queued_tokens }, task)
    }

    /// True when no input can be admitted (checked before any parsing or tokenization).
    pub fn is_full(&self) -> bool {
        self.slots.available_permits() == 0 || self.tokens.available_permits() == 0
    }

    /// Inputs admitted and not yet handed to the worker.
    pub fn depth(&self) -> usize {
        self.config.max_queue - self.slots.available_permits()
    }

    /// Tokens admitted and not yet handed to the worker.
    pub fn queued_tokens(&self) -> usize {
        self.config.max_queue_tokens - self.tokens.available_permits()
    }

    pub fn config(&self) -> &BatcherConfig {
        &self.config
    }

    /// Every admitted request's work not yet handed to the worker, pruning finished requests.
    fn works(&self) -> Vec<usize> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        flows.retain(|f| f.strong_count() > 0);
        flows.iter().filter_map(Weak::upgrade).map(|w| w.load(Ordering::Acquire)).collect()
    }

    /// How long the work ahead should take at the instances' summed measured rate, when `ahead`
    /// tokens of the `admitted` ones run first: plus the batches running now and, under the length
    /// policy, up to [`queue::MAX_SKIPS`] batches of inputs later in the queue that may overtake
    /// (at most `max_batch_tokens` padded tokens each, and no more than is admitted). `None` until
    /// an instance has measured one.
    fn wait_for(&self, ahead: usize, admitted: usize) -> Option<Duration> {
        let limits = &self.config.limits;
        let overtaking = match limits.policy {
            BatchPolicy::Length if ahead > 0 => (queue::MAX_SKIPS as usize * limits.max_batch_tokens).min(admitted),
            _ => 0,
        };
        self.predicted_time(ahead + self.capacity.running_tokens() + overtaking)
    }

    /// How long everything admitted (queued, or still being tokenized) and running should take:
    /// the wait of a request behind all of it.
    pub fn predicted_wait(&self) -> Option<Duration> {
        let admitted = self.works().iter().sum();
        self.wait_for(admitted, admitted)
    }

    /// The wait of a new request of `own` tokens (at most `input` per input) under the queue's
    /// fair order: each request ahead runs at most about as much as the newcomer before the
    /// newcomer's last input starts (`own`, plus one input of it that started just before), so a
    /// small request is not charged the backlog of large ones.
    pub fn fair_wait(&self, own: usize, input: usize) -> Option<Duration> {
        let share = own.saturating_add(input);
        let works = self.works();
        self.wait_for(works.iter().map(|&w| w.min(share)).sum(), works.iter().sum())
    }

    /// How long `tokens` of work should take at the instances' summed measured rate.
    pub fn predicted_time(&self, tokens: usize) -> Option<Duration> {
        let rate = self.capacity.tokens_per_second()?;
        Some(Duration::from_secs_f64(tokens as f64 / rate))
    }

    /// A refusal whose `Retry-After` is the time until the queue should have drained enough for a
    /// request with `budget` of time left to finish within it (at least 1 s).
    pub fn overloaded(&self, budget: Duration) -> Overloaded {
        Self::refusal(self.predicted_wait().unwrap_or(Duration::ZERO), budget)
    }

    /// A refusal for a request that would wait `wait` with `budget` left.
    pub fn refusal(wait: Duration, budget: Duration) -> Overloaded {
        let retry_after = wait.saturating_sub(budget).max(Duration::from_secs(1)).min(MAX_RETRY_AFTER);
        Overloaded { retry_after: Duration::from_secs(retry_after.as_secs_f64().ceil() as u64) }
    }

    /// Registers an admitted request of at most `bound` tokens; its work counts until it is queued
    /// (then its inputs' tokens count until each leaves the queue).
    pub fn flow(&self, bound: usize) -> Flow {
        let work = Arc::new(AtomicUsize::new(bound));
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&work));
        Flow { id: self.next_flow.fetch_add(1, Ordering::Relaxed), work }
    }

    /// Reserves `n` queue slots, all or none.
    pub fn admit(&self, n: usize, budget: Duration) -> Result<Vec<Slot>, Overloaded> {
        (0..n)
            .map(|_| {
                self.slots.clone().try_acquire_owned().map(|p| Slot::new(p, self)).map_err(|_| self.overloaded(budget))
            })
            .collect()
    }

    /// Reserves each admitted input's tokens, all or none, for request `flow`, whose work is
    /// these tokens from now on. The caller has checked that the total fits the queue at all.
    pub fn reserve_tokens(
        &self,
        flow: &Flow,
        slots: &mut [Slot],
        tokens: &[usize],
        budget: Duration,
    ) -> Result<(), Overloaded> {
        let total: usize = tokens.iter().sum();
        let mut all = u32::try_from(total)
            .ok()
            .and_then(|t| self.tokens.clone().try_acquire_many_owned(t).ok())
            .ok_or_else(|| self.overloaded(budget))?;
        flow.work.store(total, Ordering::Release);
        let mut offset = 0;
        for (slot, &n) in slots.iter_mut().zip(tokens) {
            // `split` cannot fail: the reservation holds the total.
            slot.tokens = all.split(n);
            (slot.flow, slot.flow_id, slot.offset) = (Some(flow.work.clone()), flow.id, offset);
            offset += n;
            self.queued_tokens.add(n as i64);
        }
        Ok(())
    }

    /// Queues one tokenized input; the receiver yields the model's output for it. The current
    /// span (the request's) travels with the input, so the batch that runs it can link to it.
    pub fn submit(&self, slot: Slot, input: QueuedInput, expires: Instant) -> Result<Reply, Closed> {
        let (reply, receiver) = oneshot::channel();
        let QueuedInput { ids, type_ids, top_k } = input;
        let queue_span = tracing::debug_span!("queue_wait", tokens = ids.len() as i64);
        let job = Job { ids, type_ids, top_k, reply, span: tracing::Span::current(), queue_wait: Duration::ZERO };
        let (tokens, flow, offset) = (job.ids.len(), slot.flow_id, slot.offset);
        let payload = Queued { job, _slot: slot, _span: queue_span };
        let entry = Entry::new(tokens, Instant::now(), expires, flow, offset, payload);
        // Never full: the slot just admitted guarantees room. Closed only during shutdown.
        self.sender.try_send(entry).map_err(|_| Closed)?;
        Ok(receiver)
    }
}

/// What the worker will answer for a queued input.
pub type Reply = oneshot::Receiver<Result<Answer, WorkerError>>;

/// One tokenized input for the queue.
#[derive(Debug, Clone)]
pub struct QueuedInput {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// fill-mask: keep only this many candidates per mask on the worker.
    pub top_k: Option<usize>,
}
