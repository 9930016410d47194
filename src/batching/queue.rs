//! The batching decisions as plain state: push inputs, drop the ones nobody waits for, and close a
//! batch under a size cap, a padded-token budget and ONE deadline counted from the oldest input.
//! No runtime, no model: the async loop in `task.rs` only drives it.
//!
//! The queue is kept in start-time fair queuing order (Goyal et al., SFQ) with each request as a
//! flow and tokens as its cost: a request's first input starts at the queue's virtual time, each
//! next one where the previous ended. A request of one input is thus served in arrival order, and
//! one of many inputs interleaves with the others instead of holding the model for all of them: a
//! small request waits for about one input of every request ahead, not for their whole backlog.

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
    /// The request it belongs to, and the tokens of that request's inputs before it.
    flow: u64,
    offset: usize,
    /// Its virtual start time (set when queued): the queue's order.
    start: u64,
    pub payload: T,
}

impl<T> Entry<T> {
    /// Input `tokens` of request `flow`, after `offset` tokens of the same request's inputs.
    pub fn new(tokens: usize, enqueued: Instant, expires: Instant, flow: u64, offset: usize, payload: T) -> Self {
        Self { tokens, enqueued, expires, skipped: 0, flow, offset, start: 0, payload }
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

/// Why an entry left the queue without being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Expired,
    Cancelled,
}

/// The limits a batch closes under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_size: usize,
    pub max_batch_tokens: usize,
    pub max_wait: Duration,
    pub policy: BatchPolicy,
}

/// Inputs waiting for the model, in virtual start order (arrival order between requests).
#[derive(Debug)]
pub struct Queue<T> {
    entries: VecDeque<Entry<T>>,
    limits: Limits,
    /// The start of the latest batch's first input: where a newly arriving request starts.
    virtual_time: u64,
    /// Requests with inputs queued: their virtual start and how many inputs are queued.
    flows: HashMap<u64, (u64, usize)>,
}

impl<T> Queue<T> {
    pub fn new(limits: Limits) -> Self {
        Self { entries: VecDeque::new(), limits, virtual_time: 0, flows: HashMap::new() }
    }

    /// Queues `entry` at its virtual start: its request's start (the virtual time when the
    /// request's first queued input came) plus the tokens of the request's inputs before it; after
    /// every entry with the same start, so equal starts keep arrival order.
    pub fn push(&mut self, mut entry: Entry<T>) {
        let flow = self.flows.entry(entry.flow).or_insert((self.virtual_time, 0));
        flow.1 += 1;
        entry.start = flow.0 + entry.offset as u64;
        let at = self.entries.partition_point(|e| e.start <= entry.start);
        self.entries.insert(at, entry);
    }

    /// Forgets a request once none of its inputs is queued.
    fn left(&mut self, flow: u64) {
        if let Some(f) = self.flows.get_mut(&flow) {
            f.1 -= 1;
            if f.1 == 0 {
                self.flows.remove(&flow);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes entries whose request expired or whose client is gone, and returns them.
    pub fn drop_stale(&mut self, now: Instant, cancelled: impl Fn(&T) -> bool) -> Vec<(Entry<T>, Dropped)> {
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
            self.left(e.flow);
        }
        dropped
    }

    /// When the oldest entry's wait for batch-mates ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.enqueued).min().map(|oldest| oldest + self.limits.max_wait)
    }

    /// Whether a batch should close now: the deadline passed, or waiting cannot make it bigger
    /// (the size cap is reached, or the next input would break the token budget).
    pub fn is_ready(&self, now: Instant) -> bool {
        match self.deadline() {
            None => false,
            Some(deadline) if deadline <= now => true,
            Some(_) => {
                let picked = self.pick();
                picked.len() >= self.limits.max_batch_size || picked.len() < self.entries.len()
            }
        }
    }

    /// Takes the next batch if one is ready.
    pub fn next_batch(&mut self, now: Instant) -> Option<Vec<Entry<T>>> {
        if !self.is_ready(now) {
            return None;
        }
        Some(self.take())
    }

    /// Takes a batch now, whatever the deadline (used when draining).
    pub fn take(&mut self) -> Vec<Entry<T>> {
        let mut picked = self.pick();
        picked.sort_unstable();
        // Requests arriving from now on start where this batch starts.
        if let Some(&first) = picked.first() {
            self.virtual_time = self.virtual_time.max(self.entries[first].start);
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
        for e in &batch {
            self.left(e.flow);
        }
        batch
    }

    /// Indices of the entries the next batch would hold; always includes the oldest entry, so a
    /// single input over the token budget still runs (alone).
    fn pick(&self) -> Vec<usize> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let order: Vec<usize> = match self.limits.policy {
            BatchPolicy::Fifo => (0..self.entries.len()).collect(),
            BatchPolicy::Length => {
                // Built around the oldest input, or around the oldest one overtaken too often.
                let anchor = self.entries.iter().position(|e| e.skipped >= MAX_SKIPS).unwrap_or(0);
                let tokens = self.entries[anchor].tokens;
                let mut by_closeness: Vec<usize> = (0..self.entries.len()).filter(|&i| i != anchor).collect();
                by_closeness.sort_by_key(|&i| (self.entries[i].tokens.abs_diff(tokens), i));
                std::iter::once(anchor).chain(by_closeness).collect()
            }
        };
        let mut picked = Vec::new();
        let (mut longest, mut shortest) = (0, usize::MAX);
        for i in order {
            if picked.len() == self.limits.max_batch_size {
                break;
            }
            let tokens = self.entries[i].tokens;
            let padded = longest.max(tokens) * (picked.len() + 1);
            if !picked.is_empty() && padded > self.limits.max_batch_tokens {
                // FIFO keeps arrival order: stop at the first input that does not fit.
                if self.limits.policy == BatchPolicy::Fifo {
                    break;
                }
                continue;
            }
            let ratio_kept = longest.max(tokens) <= MAX_LENGTH_RATIO * shortest.min(tokens).max(1);
            if !picked.is_empty() && self.limits.policy == BatchPolicy::Length && !ratio_kept {
                continue;
            }
            longest = longest.max(tokens);
            shortest = shortest.min(tokens);
            picked.push(i);
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(size: usize, tokens: usize, wait_ms: u64, policy: BatchPolicy) -> Limits {
        Limits { max_batch_size: size, max_batch_tokens: tokens, max_wait: Duration::from_millis(wait_ms), policy }
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
    fn a_small_request_waits_for_one_input_of_each_request_ahead_not_their_backlog() {
        let t0 = Instant::now();
        for policy in [BatchPolicy::Fifo, BatchPolicy::Length] {
            let mut q = Queue::new(limits(2, 10_000, 0, policy));
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
        assert!(q.flows.is_empty(), "requests are forgotten once their inputs left");
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
}
