//! Between the handlers and the worker: admission (the bounded queue's slots), the queue state and
//! the batcher task that closes batches and hands each to an idle model instance.

pub mod queue;
mod task;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry::Metrics;
use crate::worker::{Answer, Capacity, Job, WorkerError, WorkerHandle};

pub use queue::{BatchPolicy, ClassLimits, Dropped, Entry, Limits, Priority, Queue, UnknownPriority};

/// What the batcher is started with.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    pub limits: Limits,
    /// Most inputs admitted and not yet handed to the worker.
    pub max_queue: usize,
    /// Most tokens admitted and not yet handed to the worker: the queue's bound on work, not count.
    pub max_queue_tokens: usize,
    /// What the batch class may hold of those, and each class's advice to retry.
    pub classes: ClassBudgets,
}

/// The per-class part of admission. Interactive work may use the whole queue; batch work at most
/// its own budget (below the whole), so the rest is headroom only interactive work can take:
/// under overload, batch requests are refused first (criticality-aware shedding).
#[derive(Debug, Clone, Copy)]
pub struct ClassBudgets {
    /// Most inputs of batch-class requests queued.
    pub batch_max_queue: usize,
    /// Most tokens of batch-class requests queued.
    pub batch_max_queue_tokens: usize,
    /// The least `Retry-After` advised to each class (interactive, batch).
    pub retry_after: [Duration; 2],
}

impl ClassBudgets {
    /// Batch work gets three quarters of the queue; interactive is told to retry after 1 s,
    /// batch after 5 s.
    pub fn for_queue(max_queue: usize, max_queue_tokens: usize) -> Self {
        Self {
            batch_max_queue: (max_queue * 3 / 4).max(1),
            batch_max_queue_tokens: (max_queue_tokens * 3 / 4).max(1),
            retry_after: [Duration::from_secs(1), Duration::from_secs(5)],
        }
    }
}

/// Who a request is for, as the queue sees it: its class and its tenant's id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin {
    pub class: Priority,
    /// 0: requests without a tenant.
    pub tenant: u32,
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
    /// The batch class's own slot and tokens, held beside the queue's.
    _class_permit: Option<OwnedSemaphorePermit>,
    _class_tokens: Option<OwnedSemaphorePermit>,
    tokens: Option<OwnedSemaphorePermit>,
    /// Its request's work, which this input's tokens leave with it; its request's id and the
    /// tokens of the request's inputs before it (the queue's fair order).
    flow: Option<Arc<Work>>,
    flow_id: u64,
    origin: Origin,
    offset: usize,
    depth: IntGauge,
    queued_tokens: IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, class_permit: Option<OwnedSemaphorePermit>, batcher: &Batcher) -> Self {
        batcher.depth.inc();
        Self {
            _permit: permit,
            _class_permit: class_permit,
            _class_tokens: None,
            tokens: None,
            flow: None,
            flow_id: 0,
            origin: Origin::default(),
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
                flow.tokens.fetch_sub(tokens.num_permits(), Ordering::AcqRel);
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
    /// The batch class's budgets, taken beside the queue's.
    batch_slots: Arc<Semaphore>,
    batch_tokens: Arc<Semaphore>,
    config: BatcherConfig,
    sender: mpsc::Sender<Entry<Queued>>,
    /// The model instances' measured rate, together.
    capacity: Arc<Capacity>,
    /// Every admitted request's work not yet handed to the worker ([`Flow`]).
    flows: Arc<Mutex<Vec<Weak<Work>>>>,
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
    work: Arc<Work>,
}

/// A request's work not yet handed to the worker, with whom it is for.
pub struct Work {
    tokens: AtomicUsize,
    origin: Origin,
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
        let batch_slots = Arc::new(Semaphore::new(config.classes.batch_max_queue));
        let batch_tokens = Arc::new(Semaphore::new(config.classes.batch_max_queue_tokens));
        let (depth, queued_tokens) = (metrics.queue_depth.clone(), metrics.queue_tokens.clone());
        let capacity = worker.capacity();
        let task = tokio::spawn(task::run(receiver, worker, config.limits, metrics));
        let (flows, next_flow) = (Arc::default(), Arc::default());
        let batcher = Self {
            slots,
            tokens,
            batch_slots,
            batch_tokens,
            config,
            sender,
            capacity,
            flows,
            next_flow,
            depth,
            queued_tokens,
        };
        (batcher, task)
    }

    /// True when no input of `class` can be admitted (checked before any parsing or tokenization).
    pub fn is_full(&self, class: Priority) -> bool {
        let batch_full = self.batch_slots.available_permits() == 0 || self.batch_tokens.available_permits() == 0;
        self.slots.available_permits() == 0
            || self.tokens.available_permits() == 0
            || (class == Priority::Batch && batch_full)
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
    fn works(&self) -> Vec<(Origin, usize)> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        flows.retain(|f| f.strong_count() > 0);
        flows.iter().filter_map(Weak::upgrade).map(|w| (w.origin, w.tokens.load(Ordering::Acquire))).collect()
    }

    /// How long the work ahead should take at the instances' summed measured rate, when `ahead`
    /// tokens of the `admitted` ones run first: plus the batches running now and, under the length
    /// policy, up to [`queue::MAX_SKIPS`] batches of inputs later in the queue that may overtake
    /// (at most `max_batch_tokens` padded tokens each, and no more than is admitted). `None` until
    /// an instance has measured one.
    fn wait_for(&self, ahead: usize, admitted: usize) -> Option<Duration> {
        let limits = &self.config.limits;
        let overtaking = match limits.by_length() && ahead > 0 {
            true => (queue::MAX_SKIPS as usize * limits.max_batch_tokens).min(admitted),
            false => 0,
        };
        self.predicted_time(ahead + self.capacity.running_tokens() + overtaking)
    }

    /// How long everything admitted (queued, or still being tokenized) and running should take:
    /// the wait of a request behind all of it.
    pub fn predicted_wait(&self) -> Option<Duration> {
        let admitted = self.works().iter().map(|(_, w)| w).sum();
        self.wait_for(admitted, admitted)
    }

    /// The wait of a new request of `own` tokens (at most `input` per input) from `origin` under
    /// the queue's fair order. Of its own class, each other tenant runs at most about as much as
    /// the newcomer before the newcomer's last input starts (`own`, plus one input of it that
    /// started just before), and each request of its own tenant about as much plus one quantum
    /// ([`Limits::request_quantum`]), so a small request is not charged the backlog of large ones. An interactive request is charged no batch work but
    /// the floor's one batch-class batch; a batch request all interactive work.
    pub fn fair_wait(&self, own: usize, input: usize, origin: Origin) -> Option<Duration> {
        let share = own.saturating_add(input);
        let quantum = self.config.limits.request_quantum();
        let works = self.works();
        let mut ahead = 0usize;
        let mut tenants: HashMap<u32, usize> = HashMap::new();
        let mut batch_work = 0usize;
        for &(o, w) in &works {
            if o.class != origin.class {
                match o.class {
                    Priority::Interactive => ahead += w,
                    Priority::Batch => batch_work += w,
                }
            } else if o.tenant == origin.tenant {
                ahead += w.min(own.saturating_add(input.max(quantum)));
            } else {
                *tenants.entry(o.tenant).or_default() += w;
            }
        }
        ahead += tenants.values().map(|&w| w.min(share)).sum::<usize>();
        if origin.class == Priority::Interactive {
            ahead += batch_work.min(self.config.limits.classes.interactive_batch_tokens);
        }
        self.wait_for(ahead, works.iter().map(|(_, w)| w).sum())
    }

    /// How long `tokens` of work should take at the instances' summed measured rate.
    pub fn predicted_time(&self, tokens: usize) -> Option<Duration> {
        let rate = self.capacity.tokens_per_second()?;
        Some(Duration::from_secs_f64(tokens as f64 / rate))
    }

    /// A refusal whose `Retry-After` is the time until the queue should have drained enough for a
    /// request of `class` with `budget` of time left to finish within it (at least the class's
    /// least `Retry-After`).
    pub fn overloaded(&self, class: Priority, budget: Duration) -> Overloaded {
        self.refusal(class, self.predicted_wait().unwrap_or(Duration::ZERO), budget)
    }

    /// A refusal for a request of `class` that would wait `wait` with `budget` left.
    pub fn refusal(&self, class: Priority, wait: Duration, budget: Duration) -> Overloaded {
        let least = self.config.classes.retry_after[class as usize].max(Duration::from_secs(1));
        let retry_after = wait.saturating_sub(budget).max(least).min(MAX_RETRY_AFTER.max(least));
        Overloaded { retry_after: Duration::from_secs(retry_after.as_secs_f64().ceil() as u64) }
    }

    /// Registers an admitted request of at most `bound` tokens from `origin`; its work counts
    /// until it is queued (then its inputs' tokens count until each leaves the queue).
    pub fn flow(&self, bound: usize, origin: Origin) -> Flow {
        let work = Arc::new(Work { tokens: AtomicUsize::new(bound), origin });
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&work));
        Flow { id: self.next_flow.fetch_add(1, Ordering::Relaxed), work }
    }

    /// Reserves `n` queue slots for a request of `class`, all or none.
    pub fn admit(&self, n: usize, budget: Duration, class: Priority) -> Result<Vec<Slot>, Overloaded> {
        (0..n)
            .map(|_| {
                let class_permit = match class {
                    Priority::Batch => Some(self.batch_slots.clone().try_acquire_owned().ok()),
                    Priority::Interactive => None,
                };
                match (class_permit, self.slots.clone().try_acquire_owned()) {
                    (Some(None), _) | (_, Err(_)) => Err(self.overloaded(class, budget)),
                    (class_permit, Ok(p)) => Ok(Slot::new(p, class_permit.flatten(), self)),
                }
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
        let origin = flow.work.origin;
        let acquire = |semaphore: &Arc<Semaphore>| {
            u32::try_from(total)
                .ok()
                .and_then(|t| semaphore.clone().try_acquire_many_owned(t).ok())
                .ok_or_else(|| self.overloaded(origin.class, budget))
        };
        let mut class_all = match origin.class {
            Priority::Batch => Some(acquire(&self.batch_tokens)?),
            Priority::Interactive => None,
        };
        let mut all = acquire(&self.tokens)?;
        flow.work.tokens.store(total, Ordering::Release);
        let mut offset = 0;
        for (slot, &n) in slots.iter_mut().zip(tokens) {
            // `split` cannot fail: the reservation holds the total.
            slot.tokens = all.split(n);
            slot._class_tokens = class_all.as_mut().and_then(|c| c.split(n));
            slot.origin = origin;
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
        let (tokens, flow, offset, origin) = (job.ids.len(), slot.flow_id, slot.offset, slot.origin);
        let payload = Queued { job, _slot: slot, _span: queue_span };
        let entry = Entry::new(tokens, Instant::now(), expires, flow, offset, payload).of(origin.class, origin.tenant);
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
