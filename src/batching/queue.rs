//! The batching decisions as plain state: push inputs, drop the ones nobody waits for, and close a
//! batch under a size cap, a padded-token budget and ONE deadline counted from the oldest input.
//! No runtime, no model: the async loop in `task.rs` only drives it.
//!
//! Two priority classes, each its own lane ([`Priority`]): the next batch comes from the
//! interactive lane whenever it has work, except that while both lanes wait at least one batch in
//! every [`ClassLimits::batch_floor`] comes from the batch lane (so batch work never starves).
//! While interactive work waits, or arrived within [`INTERACTIVE_RECENT`], batch-class batches
//! close under a smaller token budget ([`ClassLimits::interactive_batch_tokens`]): an interactive
//! input arriving then waits behind at most one such batch.
//!
//! Within a lane the order is start-time fair queuing (Goyal et al., SFQ) on two levels, tokens as
//! the cost. Tenants first: a tenant's inputs start where the lane's virtual time is when it
//! arrives with nothing queued, each next one where its previous one ends, so a tenant that floods
//! is interleaved with the others instead of holding the model. Then requests within a tenant, in
//! quanta of [`Limits::request_quantum`] tokens (a quarter of a batch): a request's inputs in its
//! first quantum start at the tenant's request virtual time, those in its next quantum one quantum
//! later, and so on. A request that fits in a quantum is thus served whole in arrival order (so a
//! tenant's closed-loop clients get their answers, and send their next requests, a batch sooner
//! than if every request were spread over every batch: that kept a backlogged tenant's share at a
//! third, docs/reliability.md), and a larger one interleaves with the tenant's others: a small
//! request waits for about one quantum of every request ahead, not for their whole backlog.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
// tokio's clock, so the batcher can be tested with paused time; outside a runtime it is the
// system's monotonic clock.
use tokio::time::Instant;

/// How the inputs of a batch are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchPolicy {
    /// Oldest first.
    Fifo,
    /// The oldest input plus those closest to it in length, to cut padding.
    #[default]
    Length,
}

/// A request's priority class. Triton's priority levels and vLLM's `priority` map onto it as
/// numbers: `1` (Triton's highest level) or any negative value (vLLM: lower runs sooner) is
/// interactive, `2` and above is batch, `0` means "the default" (the tenant's, else the server's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A person waits: served first, shed last.
    #[default]
    Interactive,
    /// Bulk work: fills the capacity interactive work leaves, with a floor, and is shed first.
    Batch,
}

impl Priority {
    /// Both classes, interactive first (the lanes' order).
    pub const ALL: [Priority; 2] = [Priority::Interactive, Priority::Batch];

    /// The label value and the name clients send.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Batch => "batch",
        }
    }

    fn lane(self) -> usize {
        self as usize
    }

    /// Parses `interactive`, `batch` or a numeric level; `Ok(None)` for `0` (the default level).
    pub fn parse(s: &str) -> Result<Option<Self>, UnknownPriority> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("interactive") {
            return Ok(Some(Self::Interactive));
        }
        if s.eq_ignore_ascii_case("batch") {
            return Ok(Some(Self::Batch));
        }
        s.parse::<i64>().map(Self::from_level).map_err(|_| UnknownPriority(s.chars().take(32).collect()))
    }

    /// A numeric level (Triton's, vLLM's): `0` is the default, `1` or below zero interactive,
    /// `2` and above batch.
    pub fn from_level(level: i64) -> Option<Self> {
        match level {
            0 => None,
            1 | i64::MIN..=-1 => Some(Self::Interactive),
            _ => Some(Self::Batch),
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = UnknownPriority;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)?.ok_or_else(|| UnknownPriority(s.into()))
    }
}

/// A priority that is neither a class name nor a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0:?}: use interactive, batch or a number (1 interactive, 2 or more batch, 0 default)")]
pub struct UnknownPriority(pub String);

/// A queued input.
#[derive(Debug)]
pub struct Entry<T> {
    /// Tokens of this input (its padded cost is the batch's longest × count).
    pub tokens: usize,
    /// When it was queued; the batch deadline counts from the oldest of these.
    pub enqueued: Instant,
    /// When its request times out; after it the input is dropped before it costs compute.
    pub expires: Instant,
    /// Batches that took an input later in the queue's order and not this one (the length
    /// policy's overtaking).
    pub skipped: u32,
    /// Its priority class (its lane).
    pub class: Priority,
    /// Its tenant (an id; 0 for requests without one).
    pub tenant: u32,
    /// The request it belongs to, and the tokens of that request's inputs before it.
    flow: u64,
    offset: usize,
    /// Its virtual start among its tenant's requests (set when queued).
    start: u64,
    /// Its virtual start among the lane's tenants: the lane's order.
    fair: u64,
    /// Arrival order, the tie-break.
    seq: u64,
    pub payload: T,
}

impl<T> Entry<T> {
    /// Input `tokens` of request `flow`, after `offset` tokens of the same request's inputs; an
    /// interactive input of tenant 0 unless [`Entry::of`] says otherwise.
    pub fn new(tokens: usize, enqueued: Instant, expires: Instant, flow: u64, offset: usize, payload: T) -> Self {
        Self {
            tokens,
            enqueued,
            expires,
            skipped: 0,
            class: Priority::Interactive,
            tenant: 0,
            flow,
            offset,
            start: 0,
            fair: 0,
            seq: 0,
            payload,
        }
    }

    /// The same entry in `class`, for `tenant`.
    pub fn of(mut self, class: Priority, tenant: u32) -> Self {
        (self.class, self.tenant) = (class, tenant);
        self
    }
}

/// Batches that may overtake an input before the length policy builds the next batch around it:
/// bounds how much later than its arrival order an input runs, which admission's wait prediction
/// (in arrival order) relies on.
pub const MAX_SKIPS: u32 = 1;

/// The length policy keeps a batch's lengths within this ratio (longest ≤ 2 × shortest), so padding
/// is at most half of any input's cost: a short input is not padded into a batch of long ones (on
/// mixed traffic that padding was 43% of the tokens the model ran, docs/benchmarks.md, round 4);
/// it waits for the next batch instead, overtaken at most [`MAX_SKIPS`] times.
pub const MAX_LENGTH_RATIO: usize = 2;

/// Batch-class batches stay small for this long after the latest interactive arrival, so the next
/// interactive input (arriving while one runs) waits behind a small batch, not a full one.
pub const INTERACTIVE_RECENT: Duration = Duration::from_secs(1);

/// Why an entry left the queue without being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Expired,
    Cancelled,
}

/// How the two classes share the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimits {
    /// While both classes wait, at least one batch in this many is batch-class (1: every batch
    /// is, when batch work waits).
    pub batch_floor: u32,
    /// The padded-token budget of a batch-class batch while interactive work is queued or arrived
    /// within [`INTERACTIVE_RECENT`] (never more than the batch token budget).
    pub interactive_batch_tokens: usize,
}

impl ClassLimits {
    /// The defaults for a batch token budget of `max_batch_tokens`: one batch-class batch in 4,
    /// batch-class batches of a quarter of the budget while interactive work is about.
    pub fn for_budget(max_batch_tokens: usize) -> Self {
        Self { batch_floor: 4, interactive_batch_tokens: (max_batch_tokens / 4).max(1) }
    }
}

/// The limits a batch closes under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_size: usize,
    pub max_batch_tokens: usize,
    pub max_wait: Duration,
    pub policy: BatchPolicy,
    pub classes: ClassLimits,
    /// The encoder runs a batch's tokens end to end (the packed encoder): a batch costs the sum
    /// of its lengths, not its longest × its size, and with no padding to cut the length policy
    /// takes inputs in fair order like fifo (docs/benchmarks.md, round 5: equal within noise on
    /// mixed lengths, and the fair order keeps tenants' shares).
    pub padding_free: bool,
}

impl Limits {
    /// Whether batches are built by closeness in length (the length policy, on a padded encoder).
    pub fn by_length(&self) -> bool {
        self.policy == BatchPolicy::Length && !self.padding_free
    }

    /// The tokens of a request that run before the same tenant's other requests get a turn: a
    /// quarter of the batch token budget (512 of the CPU's 2048), at least one token.
    pub fn request_quantum(&self) -> usize {
        (self.max_batch_tokens / 4).max(1)
    }
}

/// Inputs waiting for the model: one lane per class, each in fair order.
#[derive(Debug)]
pub struct Queue<T> {
    lanes: [Lane<T>; 2],
    limits: Limits,
    /// Interactive batches taken in a row while batch work waited.
    streak: u32,
    /// The latest interactive arrival.
    last_interactive: Option<Instant>,
    next_seq: u64,
}

impl<T> Queue<T> {
    pub fn new(limits: Limits) -> Self {
        Self { lanes: [Lane::new(limits), Lane::new(limits)], limits, streak: 0, last_interactive: None, next_seq: 0 }
    }

    /// Queues `entry` in its class's lane, in fair order.
    pub fn push(&mut self, mut entry: Entry<T>) {
        if entry.class == Priority::Interactive {
            self.last_interactive = Some(self.last_interactive.map_or(entry.enqueued, |t| t.max(entry.enqueued)));
        }
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.lanes[entry.class.lane()].push(entry);
    }

    pub fn len(&self) -> usize {
        self.lanes.iter().map(Lane::len).sum()
    }

    /// Inputs queued in `class`.
    pub fn len_of(&self, class: Priority) -> usize {
        self.lanes[class.lane()].len()
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(Lane::is_empty)
    }

    /// Removes entries whose request expired or whose client is gone, and returns them.
    pub fn drop_stale(&mut self, now: Instant, cancelled: impl Fn(&T) -> bool) -> Vec<(Entry<T>, Dropped)> {
        let mut dropped = self.lanes[0].drop_stale(now, &cancelled);
        dropped.extend(self.lanes[1].drop_stale(now, &cancelled));
        dropped
    }

    /// When the oldest entry's wait for batch-mates ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.lanes.iter().filter_map(Lane::deadline).min()
    }

    /// The class the next batch comes from: interactive, unless only batch work waits or the
    /// batch class's floor is due.
    pub fn next_class(&self) -> Option<Priority> {
        let (interactive, batch) = (!self.lanes[0].is_empty(), !self.lanes[1].is_empty());
        match (interactive, batch) {
            (false, false) => None,
            (true, false) => Some(Priority::Interactive),
            (false, true) => Some(Priority::Batch),
            (true, true) if self.streak + 1 >= self.limits.classes.batch_floor => Some(Priority::Batch),
            (true, true) => Some(Priority::Interactive),
        }
    }

    /// The token budget of a batch of `class` now: smaller for batch-class batches while
    /// interactive work is about.
    pub fn budget(&self, class: Priority, now: Instant) -> usize {
        let interactive_about = !self.lanes[0].is_empty()
            || self.last_interactive.is_some_and(|t| now.saturating_duration_since(t) < INTERACTIVE_RECENT);
        match class {
            Priority::Batch if interactive_about => {
                self.limits.classes.interactive_batch_tokens.min(self.limits.max_batch_tokens)
            }
            _ => self.limits.max_batch_tokens,
        }
    }

    /// Whether a batch should close now: the deadline of the next class's oldest input passed, or
    /// waiting cannot make its batch bigger (the size cap is reached, or the next input would
    /// break the token budget).
    pub fn is_ready(&mut self, now: Instant) -> bool {
        let Some(class) = self.next_class() else { return false };
        let budget = self.budget(class, now);
        self.lanes[class.lane()].is_ready(now, budget)
    }

    /// Takes the next batch if one is ready.
    pub fn next_batch(&mut self, now: Instant) -> Option<Vec<Entry<T>>> {
        if !self.is_ready(now) {
            return None;
        }
        Some(self.take_at(now))
    }

    /// Takes a batch now, whatever the deadline (used when draining).
    pub fn take(&mut self) -> Vec<Entry<T>> {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Vec<Entry<T>> {
        let Some(class) = self.next_class() else {
            return Vec::new();
        };
        let budget = self.budget(class, now);
        let batch = self.lanes[class.lane()].take(budget);
        let batch_waits = !self.lanes[Priority::Batch.lane()].is_empty();
        self.streak = if class == Priority::Interactive && batch_waits { self.streak + 1 } else { 0 };
        batch
    }
}

/// One tenant's place in a lane.
#[derive(Debug, Default)]
struct TenantLane {
    /// The lane-level start of the tenant's next input to run.
    base: u64,
    /// Where a newly arriving request of this tenant starts.
    request_time: u64,
    /// Requests with inputs queued: their virtual start and how many inputs are queued.
    flows: HashMap<u64, (u64, usize)>,
    /// Inputs queued.
    queued: usize,
}

/// One class's inputs in two-level fair order (tenants, then requests).
#[derive(Debug)]
struct Lane<T> {
    entries: VecDeque<Entry<T>>,
    limits: Limits,
    /// The lane-level start of the latest batch's first input: where a tenant arriving with
    /// nothing queued starts.
    virtual_time: u64,
    tenants: HashMap<u32, TenantLane>,
    /// The order needs recomputing (an entry came or left).
    dirty: bool,
}

impl<T> Lane<T> {
    fn new(limits: Limits) -> Self {
        Self { entries: VecDeque::new(), limits, virtual_time: 0, tenants: HashMap::new(), dirty: false }
    }

    /// Queues `entry` at its request's start (the tenant's request virtual time when the request's
    /// first queued input came) plus the whole quanta of the request's inputs before it.
    fn push(&mut self, mut entry: Entry<T>) {
        let quantum = self.limits.request_quantum();
        let virtual_time = self.virtual_time;
        let tenant =
            self.tenants.entry(entry.tenant).or_insert_with(|| TenantLane { base: virtual_time, ..Default::default() });
        tenant.queued += 1;
        let request_time = tenant.request_time;
        let flow = tenant.flows.entry(entry.flow).or_insert((request_time, 0));
        flow.1 += 1;
        entry.start = flow.0 + (entry.offset / quantum * quantum) as u64;
        self.entries.push_back(entry);
        self.dirty = true;
    }

    /// Sorts the entries into fair order: within each tenant by request start (arrival order
    /// between equals), each starting at the tenant's base plus the tokens of its inputs before
    /// it; then all by that lane-level start.
    fn reorder(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let entries = self.entries.make_contiguous();
        entries.sort_by_key(|e| (e.tenant, e.start, e.seq));
        let mut i = 0;
        while i < entries.len() {
            let tenant = entries[i].tenant;
            let mut at = self.tenants.get(&tenant).map_or(self.virtual_time, |t| t.base);
            while i < entries.len() && entries[i].tenant == tenant {
                entries[i].fair = at;
                at += entries[i].tokens as u64;
                i += 1;
            }
        }
        entries.sort_by_key(|e| (e.fair, e.seq));
    }

    /// Forgets a request once none of its inputs is queued, and a tenant likewise.
    fn left(&mut self, tenant: u32, flow: u64) {
        let Some(t) = self.tenants.get_mut(&tenant) else { return };
        if let Some(f) = t.flows.get_mut(&flow) {
            f.1 -= 1;
            if f.1 == 0 {
                t.flows.remove(&flow);
            }
        }
        t.queued -= 1;
        if t.queued == 0 {
            self.tenants.remove(&tenant);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn drop_stale(&mut self, now: Instant, cancelled: impl Fn(&T) -> bool) -> Vec<(Entry<T>, Dropped)> {
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            // Expiry first: a timed-out request also drops its receiver, and counts as expired.
            if e.expires <= now {
                dropped.push((e, Dropped::Expired));
            } else if cancelled(&e.payload) {
                dropped.push((e, Dropped::Cancelled));
            } else {
                kept.push_back(e);
            }
        }
        self.entries = kept;
        for (e, _) in &dropped {
            self.dirty = true;
            self.left(e.tenant, e.flow);
        }
        dropped
    }

    fn deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.enqueued).min().map(|oldest| oldest + self.limits.max_wait)
    }

    fn is_ready(&mut self, now: Instant, budget: usize) -> bool {
        self.reorder();
        match self.deadline() {
            None => false,
            Some(deadline) if deadline <= now => true,
            Some(_) => {
                let picked = self.pick(budget);
                picked.len() >= self.limits.max_batch_size || picked.len() < self.entries.len()
            }
        }
    }

    fn take(&mut self, budget: usize) -> Vec<Entry<T>> {
        self.reorder();
        let mut picked = self.pick(budget);
        picked.sort_unstable();
        // Tenants arriving from now on start where this batch starts.
        if let Some(&first) = picked.first() {
            self.virtual_time = self.virtual_time.max(self.entries[first].fair);
        }
        // Every input before the last one taken, and not taken, was overtaken once more.
        if let Some(&youngest) = picked.last() {
            for (i, e) in self.entries.iter_mut().enumerate().take(youngest) {
                if picked.binary_search(&i).is_err() {
                    e.skipped += 1;
                }
            }
        }
        // Remove from the back so earlier indices stay valid.
        let mut batch: Vec<Entry<T>> = picked.iter().rev().filter_map(|&i| self.entries.remove(i)).collect();
        batch.reverse();
        let mut seen = Vec::new();
        for e in &batch {
            if let Some(t) = self.tenants.get_mut(&e.tenant) {
                // The tenant's remaining inputs keep their lane-level starts.
                t.base += e.tokens as u64;
                // Its requests arriving from now on start where its first input taken started.
                if !seen.contains(&e.tenant) {
                    t.request_time = t.request_time.max(e.start);
                    seen.push(e.tenant);
                }
            }
        }
        for e in &batch {
            self.left(e.tenant, e.flow);
        }
        self.dirty = true;
        batch
    }

    /// Indices of the entries the next batch would hold (in fair order, which `take` sorts them
    /// into first); always includes the oldest entry, so a single input over the token budget
    /// still runs (alone).
    fn pick(&self, budget: usize) -> Vec<usize> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let by_length = self.limits.by_length();
        let order: Vec<usize> = match by_length {
            false => (0..self.entries.len()).collect(),
            true => {
                // Built around the oldest input, or around the oldest one overtaken too often.
                let anchor = self.entries.iter().position(|e| e.skipped >= MAX_SKIPS).unwrap_or(0);
                let tokens = self.entries[anchor].tokens;
                let mut by_closeness: Vec<usize> = (0..self.entries.len()).filter(|&i| i != anchor).collect();
                by_closeness.sort_by_key(|&i| (self.entries[i].tokens.abs_diff(tokens), i));
                std::iter::once(anchor).chain(by_closeness).collect()
            }
        };
        let mut picked = Vec::new();
        let (mut longest, mut shortest, mut total) = (0, usize::MAX, 0);
        for i in order {
            if picked.len() == self.limits.max_batch_size {
                break;
            }
            let tokens = self.entries[i].tokens;
            let cost = match self.limits.padding_free {
                true => total + tokens,
                false => longest.max(tokens) * (picked.len() + 1),
            };
            if !picked.is_empty() && cost > budget {
                // The fair order is kept: stop at the first input that does not fit.
                if !by_length {
                    break;
                }
                continue;
            }
            let ratio_kept = longest.max(tokens) <= MAX_LENGTH_RATIO * shortest.min(tokens).max(1);
            if !picked.is_empty() && by_length && !ratio_kept {
                continue;
            }
            longest = longest.max(tokens);
            shortest = shortest.min(tokens);
            total += tokens;
            picked.push(i);
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(size: usize, tokens: usize, wait_ms: u64, policy: BatchPolicy) -> Limits {
        Limits {
            max_batch_size: size,
            max_batch_tokens: tokens,
            max_wait: Duration::from_millis(wait_ms),
            policy,
            classes: ClassLimits::for_budget(tokens),
            padding_free: false,
        }
    }

    /// One input of a request of its own (`id`).
    fn entry(tokens: usize, at: Instant, id: u32) -> Entry<u32> {
        Entry::new(tokens, at, at + Duration::from_secs(30), u64::from(id), 0, id)
    }

    /// The inputs of request `flow`, `tokens` each, with ids `first..`.
    fn request(flow: u64, inputs: u32, tokens: usize, at: Instant, first: u32) -> Vec<Entry<u32>> {
        (0..inputs)
            .map(|i| Entry::new(tokens, at, at + Duration::from_secs(30), flow, i as usize * tokens, first + i))
            .collect()
    }

    #[test]
    fn a_small_request_waits_for_one_quantum_of_each_request_ahead_not_their_backlog() {
        let t0 = Instant::now();
        for policy in [BatchPolicy::Fifo, BatchPolicy::Length] {
            // A budget of 2,000 tokens: a quantum of 500, one heavy input.
            let mut q = Queue::new(limits(2, 2_000, 0, policy));
            assert_eq!(q.limits.request_quantum(), 500);
            // Two heavy requests of four 500-token inputs (ids 10.., 20..), then a small one (99).
            request(1, 4, 500, t0, 10).into_iter().for_each(|e| q.push(e));
            request(2, 4, 500, t0, 20).into_iter().for_each(|e| q.push(e));
            q.push(Entry::new(8, t0, t0 + Duration::from_secs(30), 3, 0, 99));
            let first = ids(&q.next_batch(t0).unwrap());
            assert_eq!(first, vec![10, 20], "{policy:?}: each request's first input");
            let second = ids(&q.next_batch(t0).unwrap());
            assert!(second.contains(&99), "{policy:?}: the small request is in the second batch, got {second:?}");
            // A request arriving now starts where the last batch started: after the inputs already
            // at that virtual time, before the heavy requests' later inputs.
            q.push(Entry::new(8, t0, t0 + Duration::from_secs(30), 4, 0, 98));
            let mut rest = Vec::new();
            while let Some(batch) = q.next_batch(t0) {
                rest.extend(ids(&batch));
            }
            let late = rest.iter().position(|&id| id == 98).unwrap();
            assert!(late <= 2, "{policy:?}: the later small request runs within a batch or so: {rest:?}");
            assert_eq!(rest.len() + first.len() + second.len(), 10);
        }
    }

    #[test]
    fn a_requests_inputs_keep_their_order_and_single_inputs_keep_arrival_order() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(1, 10_000, 0, BatchPolicy::Fifo));
        request(7, 3, 100, t0, 70).into_iter().for_each(|e| q.push(e));
        let mut order = Vec::new();
        while let Some(batch) = q.next_batch(t0) {
            order.extend(ids(&batch));
        }
        assert_eq!(order, vec![70, 71, 72]);
        for id in [1, 2, 3] {
            q.push(entry(5, t0, id));
        }
        let order: Vec<u32> = std::iter::from_fn(|| q.next_batch(t0)).flat_map(|b| ids(&b)).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert!(q.lanes.iter().all(|l| l.tenants.is_empty()), "requests are forgotten once their inputs left");
    }

    #[test]
    fn requests_within_a_quantum_run_whole_in_arrival_order() {
        let t0 = Instant::now();
        // A quantum of 2,500 tokens; batches of 4 inputs. Three requests of four 100-token inputs
        // (a tenant's closed-loop clients): the first batch answers request 0 whole instead of
        // holding every request until the third batch.
        let mut q = Queue::new(limits(4, 10_000, 0, BatchPolicy::Fifo));
        for r in 0..3u32 {
            request(u64::from(r), 4, 100, t0, 10 * r).into_iter().for_each(|e| q.push(e));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![0, 1, 2, 3]);
        // Request 0's client sends its next request while request 1 runs: it queues behind 2.
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![10, 11, 12, 13]);
        request(3, 4, 100, t0, 30).into_iter().for_each(|e| q.push(e));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![20, 21, 22, 23]);
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![30, 31, 32, 33]);
        // Past its quantum a request yields: two requests of 3,000-token inputs alternate.
        let mut q = Queue::new(limits(1, 10_000, 0, BatchPolicy::Fifo));
        request(1, 2, 3_000, t0, 10).into_iter().for_each(|e| q.push(e));
        request(2, 2, 3_000, t0, 20).into_iter().for_each(|e| q.push(e));
        let order: Vec<u32> = std::iter::from_fn(|| q.next_batch(t0)).flat_map(|b| ids(&b)).collect();
        assert_eq!(order, vec![10, 20, 11, 21]);
    }

    fn ids(batch: &[Entry<u32>]) -> Vec<u32> {
        batch.iter().map(|e| e.payload).collect()
    }

    #[test]
    fn waits_until_the_oldest_inputs_deadline() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 1000, 10, BatchPolicy::Fifo));
        q.push(entry(5, t0, 1));
        q.push(entry(5, t0 + Duration::from_millis(8), 2));
        assert!(q.next_batch(t0 + Duration::from_millis(9)).is_none());
        // The deadline is the oldest input's, not reset by the later arrival.
        let batch = q.next_batch(t0 + Duration::from_millis(10)).unwrap();
        assert_eq!(ids(&batch), vec![1, 2]);
        assert!(q.is_empty());
    }

    #[test]
    fn zero_wait_runs_what_is_queued() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 1000, 0, BatchPolicy::Fifo));
        q.push(entry(5, t0, 1));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1]);
    }

    #[test]
    fn closes_early_at_the_size_cap() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(2, 1000, 1000, BatchPolicy::Fifo));
        q.push(entry(5, t0, 1));
        assert!(q.next_batch(t0).is_none());
        q.push(entry(5, t0, 2));
        q.push(entry(5, t0, 3));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1, 2]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn token_budget_counts_padding() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 100, 1000, BatchPolicy::Fifo));
        q.push(entry(10, t0, 1));
        q.push(entry(40, t0, 2));
        // 2 × 40 = 80 fits; a third of 40 would make 120.
        assert!(q.next_batch(t0).is_none());
        q.push(entry(40, t0, 3));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1, 2]);
    }

    #[test]
    fn an_input_over_the_budget_runs_alone() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 100, 0, BatchPolicy::Fifo));
        q.push(entry(300, t0, 1));
        q.push(entry(5, t0, 2));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1]);
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![2]);
    }

    #[test]
    fn length_policy_groups_similar_lengths_and_keeps_the_oldest() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(3, 10_000, 0, BatchPolicy::Length));
        for (i, len) in [(1, 100), (2, 8), (3, 95), (4, 10), (5, 99)] {
            q.push(entry(len, t0, i));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1, 3, 5]);
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![2, 4]);
    }

    #[test]
    fn the_length_policy_overtakes_an_input_at_most_max_skips_times() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(2, 10_000, 0, BatchPolicy::Length));
        // A long input, a short one, then a stream of long ones that keep arriving.
        q.push(entry(100, t0, 1));
        q.push(entry(5, t0, 2));
        for id in 3..10 {
            q.push(entry(100, t0, id));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1, 3], "the short one is overtaken once");
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![2], "then the next batch is built around it, unpadded");
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![4, 5]);
    }

    #[test]
    fn the_length_policy_does_not_pad_short_inputs_into_long_batches() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 2048, 0, BatchPolicy::Length));
        // Mixed traffic as the load bench sends it: 11- and 132-token inputs alternating.
        for id in 0..8 {
            q.push(entry(if id % 2 == 0 { 11 } else { 132 }, t0, id));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![0, 2, 4, 6], "the short ones, no padding");
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![1, 3, 5, 7]);
        // Within the ratio, lengths still share a batch (padded to the longest).
        for (id, len) in [(10, 60), (11, 100), (12, 120)] {
            q.push(entry(len, t0, id));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![10, 11, 12]);
    }

    #[test]
    fn a_padding_free_encoder_batches_by_summed_tokens_in_fair_order() {
        let t0 = Instant::now();
        let mut limits = limits(8, 290, 0, BatchPolicy::Length);
        limits.padding_free = true;
        let mut q = Queue::new(limits);
        // The same mixed traffic: a batch is the sum of its lengths (11 + 132 + 11 + 132 = 286 of
        // the 290), taken in arrival order; padded, 132 × 4 would be over the budget.
        for id in 0..8 {
            q.push(entry(if id % 2 == 0 { 11 } else { 132 }, t0, id));
        }
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![0, 1, 2, 3]);
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![4, 5, 6, 7]);
        // Two tenants of near-equal lengths: the fair order alternates them, where closeness in
        // length would have picked by length alone.
        for id in 10..16 {
            q.push(entry(60 + (id as usize % 3), t0, id).of(Priority::Interactive, id % 2));
        }
        let tenants: Vec<u32> = q.next_batch(t0).unwrap().iter().map(|e| e.tenant).collect();
        assert_eq!(tenants, vec![0, 1, 0, 1]);
    }

    #[test]
    fn stale_entries_are_dropped_with_their_reason() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(8, 1000, 0, BatchPolicy::Fifo));
        let mut expired = entry(5, t0, 1);
        expired.expires = t0 + Duration::from_millis(1);
        q.push(expired);
        q.push(entry(5, t0, 2));
        q.push(entry(5, t0, 3));
        let dropped = q.drop_stale(t0 + Duration::from_millis(2), |&id| id == 3);
        let reasons: Vec<(u32, Dropped)> = dropped.iter().map(|(e, r)| (e.payload, *r)).collect();
        assert_eq!(reasons, vec![(1, Dropped::Expired), (3, Dropped::Cancelled)]);
        assert_eq!(ids(&q.take()), vec![2]);
    }

    /// One input of request `id` in `class` for `tenant`.
    fn of(tokens: usize, at: Instant, id: u32, class: Priority, tenant: u32) -> Entry<u32> {
        entry(tokens, at, id).of(class, tenant)
    }

    #[test]
    fn interactive_work_runs_first_and_batch_work_keeps_its_floor() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(1, 10_000, 0, BatchPolicy::Fifo));
        for id in 0..4 {
            q.push(of(100, t0, id, Priority::Batch, 0));
        }
        for id in 10..18 {
            q.push(of(5, t0, id, Priority::Interactive, 0));
        }
        let order: Vec<u32> = std::iter::from_fn(|| q.next_batch(t0)).flat_map(|b| ids(&b)).collect();
        // Queued behind the batch work, interactive still runs first; one batch-class batch in
        // every 4 (the floor) while both wait, then the rest.
        assert_eq!(order, vec![10, 11, 12, 0, 13, 14, 15, 1, 16, 17, 2, 3]);
    }

    #[test]
    fn an_interactive_arrival_jumps_every_queued_batch_input() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(2, 10_000, 0, BatchPolicy::Length));
        for id in 0..6 {
            q.push(of(512, t0, id, Priority::Batch, 0));
        }
        assert_eq!(q.next_class(), Some(Priority::Batch));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![0, 1]);
        q.push(of(8, t0, 99, Priority::Interactive, 0));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![99], "waits behind the running batch only");
    }

    #[test]
    fn batch_class_batches_shrink_while_interactive_work_is_about() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(32, 2048, 0, BatchPolicy::Fifo));
        for id in 0..8 {
            q.push(of(512, t0, id, Priority::Batch, 0));
        }
        assert_eq!(q.next_batch(t0).unwrap().len(), 4, "no interactive work: the full budget (4 × 512)");
        q.push(of(8, t0, 99, Priority::Interactive, 0));
        assert_eq!(ids(&q.next_batch(t0).unwrap()), vec![99]);
        // Within a second of an interactive arrival batch-class batches keep to a quarter.
        assert_eq!(q.budget(Priority::Batch, t0), 512);
        assert_eq!(q.next_batch(t0).unwrap().len(), 1);
        let later = t0 + INTERACTIVE_RECENT;
        assert_eq!(q.budget(Priority::Batch, later), 2048);
        assert_eq!(q.next_batch(later).unwrap().len(), 3);
    }

    #[test]
    fn tenants_share_first_then_their_requests() {
        let t0 = Instant::now();
        let mut q = Queue::new(limits(1, 10_000, 0, BatchPolicy::Fifo));
        // Tenant 1 floods: ten requests of two 100-token inputs (ids 100..). Tenant 2 then sends
        // two single-input requests of the same size (ids 200, 201).
        for r in 0..10u32 {
            for e in request(u64::from(r), 2, 100, t0, 100 + 2 * r) {
                q.push(e.of(Priority::Batch, 1));
            }
        }
        q.push(Entry::new(100, t0, t0 + Duration::from_secs(30), 50, 0, 200).of(Priority::Batch, 2));
        q.push(Entry::new(100, t0, t0 + Duration::from_secs(30), 51, 0, 201).of(Priority::Batch, 2));
        let order: Vec<u32> = std::iter::from_fn(|| q.next_batch(t0)).flat_map(|b| ids(&b)).take(4).collect();
        // Tenant 2 gets every other batch despite tenant 1's backlog of 20 inputs; within tenant
        // 1 a request of 200 tokens fits in the quantum (2,500) and runs whole.
        assert_eq!(order, vec![100, 200, 101, 201]);
        // A quantum of 100 tokens: the requests interleave, one input each per turn.
        let mut q = Queue::new(limits(1, 400, 0, BatchPolicy::Fifo));
        for r in 0..3u32 {
            for e in request(u64::from(r), 2, 100, t0, 100 + 2 * r) {
                q.push(e.of(Priority::Batch, 1));
            }
        }
        let order: Vec<u32> = std::iter::from_fn(|| q.next_batch(t0)).flat_map(|b| ids(&b)).collect();
        assert_eq!(order, vec![100, 102, 104, 101, 103, 105], "requests within a tenant share fairly");
    }

    #[test]
    fn priorities_parse_from_names_and_levels() {
        assert_eq!(Priority::parse("interactive"), Ok(Some(Priority::Interactive)));
        assert_eq!(Priority::parse(" BATCH "), Ok(Some(Priority::Batch)));
        assert_eq!(Priority::parse("0"), Ok(None), "level 0: the default");
        assert_eq!(Priority::parse("1"), Ok(Some(Priority::Interactive)), "Triton's highest level");
        assert_eq!(Priority::parse("-5"), Ok(Some(Priority::Interactive)), "vLLM: lower runs sooner");
        assert_eq!(Priority::parse("3"), Ok(Some(Priority::Batch)));
        assert!(Priority::parse("urgent").is_err());
    }
}
