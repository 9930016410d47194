//! The batcher loop and the worker together, with a fake model behind the worker's seam and
//! tokio's paused clock: batches close on size, token budget and the oldest input's deadline;
//! expired and cancelled inputs never reach the model; a panicking batch fails only its own
//! inputs; a drain runs what is queued; with several model instances, batches run side by side, a
//! panic in one instance leaves the others serving, and admission counts every instance's rate.
//! Queue waits are read in virtual time, so the assertions
//! are exact and the tests take milliseconds. (The paused clock only advances on its own while
//! every task is idle; while the worker thread computes, it may, so exact waits are asserted only
//! for batches that close while the worker is idle.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{
    BatchPolicy, Batcher, BatcherConfig, ClassBudgets, ClassLimits, Limits, Origin, Priority, QueuedInput, Reply,
};
use crate::model::{ModelInput, RawOutput};
use crate::telemetry::Metrics;
use crate::worker::{self, Answer, BatchModel, Capacity, WorkerError, WorkerStatus};

/// A token id that makes the fake model panic.
const POISON: u32 = 666;
/// A token id whose batch waits while the fake model holds only gated batches.
const GATED: u32 = 500;

/// Which batches the fake model holds.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Hold {
    #[default]
    None,
    All,
    /// Only batches with a [`GATED`] input.
    Gated,
}

/// Records the first token of every input of every batch; can be held shut; panics on [`POISON`]
/// at once (held or not). Clones share everything: they are the instances of one model.
#[derive(Clone, Default)]
struct FakeModel {
    batches: Arc<Mutex<Vec<Vec<u32>>>>,
    /// Forward calls entered so far (held ones included).
    entered: Arc<AtomicUsize>,
    /// Which batches must wait.
    shut: Arc<(Mutex<Hold>, Condvar)>,
}

impl FakeModel {
    fn hold(&self) {
        *self.shut.0.lock().unwrap() = Hold::All;
    }

    fn hold_gated(&self) {
        *self.shut.0.lock().unwrap() = Hold::Gated;
    }

    fn release(&self) {
        *self.shut.0.lock().unwrap() = Hold::None;
        self.shut.1.notify_all();
    }

    fn batches(&self) -> Vec<Vec<u32>> {
        self.batches.lock().unwrap().clone()
    }
}

impl BatchModel for FakeModel {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let firsts: Vec<u32> = inputs.iter().map(|i| i.ids[0]).collect();
        assert!(!firsts.contains(&POISON), "fake model: poisoned input");
        let (lock, wake) = &*self.shut;
        let gated = firsts.contains(&GATED);
        let wait = |hold: &mut Hold| *hold == Hold::All || (*hold == Hold::Gated && gated);
        drop(wake.wait_while(lock.lock().unwrap(), wait).unwrap());
        self.batches.lock().unwrap().push(firsts.clone());
        Ok(firsts.into_iter().map(|id| RawOutput::Logits(vec![id as f32])).collect())
    }
}

struct Rig {
    batcher: Batcher,
    task: tokio::task::JoinHandle<()>,
    worker: Arc<WorkerStatus>,
    model: FakeModel,
    metrics: Arc<Metrics>,
    capacity: Arc<Capacity>,
}

fn rig(max_batch_size: usize, max_batch_tokens: usize, max_wait_ms: u64) -> Rig {
    rig_with(1, max_batch_size, max_batch_tokens, max_wait_ms)
}

/// A rig whose worker runs `instances` instances of one fake model.
fn rig_with(instances: usize, max_batch_size: usize, max_batch_tokens: usize, max_wait_ms: u64) -> Rig {
    rig_with_policy(instances, max_batch_size, max_batch_tokens, max_wait_ms, BatchPolicy::Fifo)
}

fn rig_with_policy(
    instances: usize,
    max_batch_size: usize,
    max_batch_tokens: usize,
    max_wait_ms: u64,
    policy: BatchPolicy,
) -> Rig {
    let metrics = Arc::new(Metrics::new());
    let model = FakeModel::default();
    let (handle, worker) = worker::spawn(vec![model.clone(); instances], 0, metrics.clone()).unwrap();
    let capacity = handle.capacity();
    let limits = Limits {
        max_batch_size,
        max_batch_tokens,
        max_wait: Duration::from_millis(max_wait_ms),
        policy,
        classes: ClassLimits::for_budget(max_batch_tokens),
        padding_free: false,
    };
    let config =
        BatcherConfig { limits, max_queue: 64, max_queue_tokens: 10_000, classes: ClassBudgets::for_queue(64, 10_000) };
    let (batcher, task) = Batcher::start(config, handle, metrics.clone());
    Rig { batcher, task, worker, model, metrics, capacity }
}

/// Lets the batcher and the worker threads run until `done` holds (real time: the threads compute
/// outside the paused clock); fails after 10 s instead of hanging.
async fn until(done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(10), "the worker never got there");
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Queues an input of `tokens` tokens whose first token is `id`, expiring after `ttl`.
fn submit(batcher: &Batcher, id: u32, tokens: usize, ttl: Duration) -> Reply {
    let mut slots = batcher.admit(1, ttl, Priority::Interactive).unwrap();
    // A request of its own; its slot keeps its work counted while it is queued.
    let flow = batcher.flow(tokens, Origin::default());
    batcher.reserve_tokens(&flow, &mut slots, &[tokens], ttl).unwrap();
    let mut ids = vec![id];
    ids.resize(tokens, 1);
    let input = QueuedInput { ids, type_ids: vec![0; tokens], top_k: None };
    batcher.submit(slots.pop().unwrap(), input, Instant::now() + ttl).unwrap()
}

/// A time-to-live no test reaches, even though the paused clock runs on in 50 ms sweeps while the
/// worker thread computes in real time (a panicking batch prints its message meanwhile).
const LONG: Duration = Duration::from_secs(10_000_000);

async fn answer(reply: Reply) -> Answer {
    reply.await.expect("an answer").expect("a successful answer")
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_the_oldest_inputs_deadline() {
    let rig = rig(8, 1000, 100);
    let a = submit(&rig.batcher, 1, 4, LONG);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let b = submit(&rig.batcher, 2, 4, LONG);
    let (a, b) = (answer(a).await, answer(b).await);
    // The deadline is the oldest input's: 100 ms after A, not reset by B's arrival.
    assert_eq!(a.queue_wait, Duration::from_millis(100));
    assert_eq!(b.queue_wait, Duration::from_millis(40));
    assert_eq!((a.batch_size, b.batch_size), (2, 2));
    assert_eq!(rig.model.batches(), vec![vec![1, 2]]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_once_at_the_size_cap() {
    let rig = rig(2, 1000, 10_000);
    let replies: Vec<Reply> = (1..=3).map(|id| submit(&rig.batcher, id, 4, LONG)).collect();
    let answers: Vec<Answer> = futures_join(replies).await;
    assert_eq!(answers[0].queue_wait, Duration::ZERO, "a full batch does not wait for the deadline");
    assert_eq!((answers[0].batch_size, answers[1].batch_size), (2, 2));
    // The third waited its own deadline alone. (At least: the paused clock may run on while the
    // worker thread computes the first batch.)
    assert!(answers[2].queue_wait >= Duration::from_secs(10) && answers[2].batch_size == 1);
    assert_eq!(rig.model.batches(), vec![vec![1, 2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_once_at_the_token_budget() {
    let rig = rig(8, 100, 10_000);
    // Padded: 2 × 40 = 80 fits the budget of 100; a third input of 40 would make 120.
    let replies =
        vec![submit(&rig.batcher, 1, 10, LONG), submit(&rig.batcher, 2, 40, LONG), submit(&rig.batcher, 3, 40, LONG)];
    let answers = futures_join(replies).await;
    assert_eq!((answers[0].queue_wait, answers[0].batch_size), (Duration::ZERO, 2));
    assert_eq!(answers[2].batch_size, 1);
    assert_eq!(rig.model.batches(), vec![vec![1, 2], vec![3]]);
}

#[tokio::test(start_paused = true)]
async fn expired_and_cancelled_inputs_never_reach_the_model() {
    let rig = rig(8, 1000, 0);
    rig.model.hold();
    // The worker takes the first input and is held there.
    let busy = submit(&rig.batcher, 1, 4, LONG);
    while rig.metrics.batch_size.get_sample_count() == 0 {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    let expiring = submit(&rig.batcher, 2, 4, Duration::from_millis(30));
    let cancelled = submit(&rig.batcher, 3, 4, LONG);
    drop(cancelled);
    let kept = submit(&rig.batcher, 4, 4, LONG);
    // Sweeps run while the worker is busy: both leave the queue (and free their slots) before it is.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.metrics.expired.get(), 1);
    assert_eq!(rig.metrics.cancelled.get(), 1);
    assert!(matches!(expiring.await, Ok(Err(WorkerError::Expired))));
    assert_eq!(rig.metrics.queue_depth.get(), 1, "only the kept input still holds a slot");
    rig.model.release();
    answer(busy).await;
    answer(kept).await;
    assert_eq!(rig.model.batches(), vec![vec![1], vec![4]]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_batch_fails_its_inputs_and_the_next_batch_runs() {
    let rig = rig(8, 1000, 0);
    let poisoned = submit(&rig.batcher, POISON, 4, LONG);
    assert!(matches!(poisoned.await, Ok(Err(WorkerError::Panicked(text))) if text.contains("poisoned")));
    assert!(rig.worker.is_alive(), "the worker thread survives a panicking batch");
    assert_eq!(rig.metrics.worker_panics.get(), 1);
    let next = answer(submit(&rig.batcher, 7, 4, LONG)).await;
    assert!(matches!(next.output, RawOutput::Logits(ref l) if l == &[7.0]));
}

#[tokio::test(start_paused = true)]
async fn a_drain_runs_what_is_queued_then_stops_the_worker() {
    let Rig { batcher, task, worker, model, .. } = rig(8, 1000, 10_000);
    let replies = vec![submit(&batcher, 1, 4, LONG), submit(&batcher, 2, 8, LONG)];
    // The last handle goes: nothing more can arrive, so the batcher stops waiting for batch-mates.
    drop(batcher);
    let answers = futures_join(replies).await;
    assert!(answers.iter().all(|a| a.queue_wait < Duration::from_secs(10)), "drained before the deadline");
    assert_eq!(model.batches(), vec![vec![1, 2]]);
    task.await.unwrap();
    tokio::task::spawn_blocking(move || {
        worker.join();
        assert!(!worker.is_alive());
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn instances_run_batches_side_by_side() {
    let rig = rig_with(2, 1, 1000, 0);
    rig.model.hold();
    let replies = vec![submit(&rig.batcher, 1, 4, LONG), submit(&rig.batcher, 2, 4, LONG)];
    // Both batches are on the model at once: one instance could only hold one of them.
    until(|| rig.model.entered.load(Ordering::SeqCst) == 2).await;
    assert_eq!(rig.metrics.worker_instances_busy.get(), 2);
    assert_eq!(rig.metrics.worker_instances.get(), 2);
    rig.model.release();
    let answers = futures_join(replies).await;
    assert!(matches!(answers[1].output, RawOutput::Logits(ref l) if l == &[2.0]));
    let mut batches = rig.model.batches();
    batches.sort();
    assert_eq!(batches, vec![vec![1], vec![2]]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_an_idle_instance_and_gathers_meanwhile() {
    let rig = rig_with(2, 8, 1000, 0);
    rig.model.hold();
    let first = vec![submit(&rig.batcher, 1, 4, LONG)];
    until(|| rig.model.entered.load(Ordering::SeqCst) == 1).await;
    let second = vec![submit(&rig.batcher, 2, 4, LONG)];
    until(|| rig.model.entered.load(Ordering::SeqCst) == 2).await;
    // Both instances busy: these two gather into one batch instead of going out one by one.
    let third = vec![submit(&rig.batcher, 3, 4, LONG), submit(&rig.batcher, 4, 4, LONG)];
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rig.model.entered.load(Ordering::SeqCst), 2, "no instance was idle");
    rig.model.release();
    for replies in [first, second] {
        futures_join(replies).await;
    }
    let answers = futures_join(third).await;
    assert_eq!((answers[0].batch_size, answers[1].batch_size), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_one_instance_leaves_the_others_serving() {
    let rig = rig_with(2, 1, 1000, 0);
    rig.model.hold_gated();
    // One instance takes the gated input and is held there.
    let held = submit(&rig.batcher, GATED, 4, LONG);
    until(|| rig.model.entered.load(Ordering::SeqCst) == 1).await;
    // The other one panics on its batch: only that input fails.
    let poisoned = submit(&rig.batcher, POISON, 4, LONG);
    assert!(matches!(poisoned.await, Ok(Err(WorkerError::Panicked(text))) if text.contains("poisoned")));
    assert_eq!(rig.metrics.worker_panics.get(), 1);
    // The instance that panicked serves the next batch, while the first one is still held.
    let next = answer(submit(&rig.batcher, 7, 4, LONG)).await;
    assert!(matches!(next.output, RawOutput::Logits(ref l) if l == &[7.0]));
    // The held instance was never disturbed.
    rig.model.release();
    assert!(matches!(answer(held).await.output, RawOutput::Logits(ref l) if l == &[GATED as f32]));
    assert!(rig.worker.is_alive(), "every instance thread survives");
}

#[tokio::test(start_paused = true)]
async fn admission_predicts_waits_at_every_instances_rate() {
    let rig = rig_with(2, 1, 1000, 0);
    // One instance measured 1,000 tokens/s; the other, not yet measured, counts as its equal.
    rig.capacity.instance(0).record(1000, 1.0);
    assert_eq!(rig.capacity.tokens_per_second(), Some(2000.0));
    rig.model.hold();
    let running = vec![submit(&rig.batcher, 1, 100, LONG), submit(&rig.batcher, 2, 100, LONG)];
    until(|| rig.model.entered.load(Ordering::SeqCst) == 2).await;
    let queued: Vec<Reply> = (3..=5).map(|id| submit(&rig.batcher, id, 100, LONG)).collect();
    // 200 tokens running on the two instances and 300 queued, at 2 × 1,000 tokens/s: 250 ms, half
    // what one instance would take.
    assert_eq!(rig.capacity.running_tokens(), 200);
    assert_eq!(rig.batcher.queued_tokens(), 300);
    assert_eq!(rig.batcher.predicted_wait(), Some(Duration::from_millis(250)));
    // A request with 100 ms left is refused; Retry-After is rounded up to whole seconds.
    assert_eq!(
        rig.batcher.overloaded(Priority::Interactive, Duration::from_millis(100)).retry_after,
        Duration::from_secs(1)
    );
    rig.model.release();
    futures_join(running).await;
    futures_join(queued).await;
}

#[tokio::test(start_paused = true)]
async fn under_the_length_policy_admission_counts_one_overtaking_batch() {
    let rig = rig_with_policy(1, 1, 150, 0, BatchPolicy::Length);
    rig.capacity.instance(0).record(1000, 1.0);
    // Nothing queued: a new input is the oldest, nothing can overtake it.
    assert_eq!(rig.batcher.predicted_wait(), Some(Duration::ZERO));
    rig.model.hold();
    let running = submit(&rig.batcher, 1, 100, LONG);
    until(|| rig.model.entered.load(Ordering::SeqCst) == 1).await;
    let queued = submit(&rig.batcher, 2, 100, LONG);
    until(|| rig.batcher.queued_tokens() == 100).await;
    // 100 running + 100 queued + one batch of inputs that may overtake a new one (at most the
    // 150-token budget, and no more than the 100 tokens admitted), at 1,000 tokens/s.
    assert_eq!(rig.batcher.predicted_wait(), Some(Duration::from_millis(300)));
    // With 200 tokens queued the overtaking batch counts in full: 100 + 200 + 150.
    let more = submit(&rig.batcher, 3, 100, LONG);
    until(|| rig.batcher.queued_tokens() == 200).await;
    assert_eq!(rig.batcher.predicted_wait(), Some(Duration::from_millis(450)));
    rig.model.release();
    answer(running).await;
    answer(queued).await;
    answer(more).await;
}

#[tokio::test(start_paused = true)]
async fn a_small_request_is_charged_its_fair_share_of_the_work_ahead_not_the_backlog() {
    let rig = rig_with(1, 1, 1000, 0);
    rig.capacity.instance(0).record(1000, 1.0);
    rig.model.hold();
    let running = submit(&rig.batcher, 1, 100, LONG);
    until(|| rig.model.entered.load(Ordering::SeqCst) == 1).await;
    // One heavy request of four 250-token inputs, queued behind the running input.
    let mut slots = rig.batcher.admit(4, LONG, Priority::Interactive).unwrap();
    let heavy = rig.batcher.flow(4 * 256, Origin::default());
    rig.batcher.reserve_tokens(&heavy, &mut slots, &[250; 4], LONG).unwrap();
    let replies: Vec<Reply> = slots
        .into_iter()
        .map(|slot| {
            let input = QueuedInput { ids: vec![2; 250], type_ids: vec![0; 250], top_k: None };
            rig.batcher.submit(slot, input, Instant::now() + LONG).unwrap()
        })
        .collect();
    until(|| rig.batcher.queued_tokens() == 1000).await;
    // Behind everything: 100 running + 1,000 queued at 1,000 tokens/s.
    assert_eq!(rig.batcher.predicted_wait(), Some(Duration::from_millis(1100)));
    // A 10-token request (inputs of at most 250) waits for the running input and about as much of
    // the heavy request as its own size plus one input: 100 + min(1000, 260).
    assert_eq!(rig.batcher.fair_wait(10, 250, Origin::default()), Some(Duration::from_millis(360)));
    // A request as large as the heavy one is charged all of it.
    assert_eq!(rig.batcher.fair_wait(1000, 250, Origin::default()), Some(Duration::from_millis(1100)));
    // Work still being tokenized counts at its bound, fairly too.
    let tokenizing = rig.batcher.flow(5000, Origin::default());
    assert_eq!(rig.batcher.fair_wait(10, 250, Origin::default()), Some(Duration::from_millis(620)));
    drop(tokenizing);
    assert_eq!(rig.batcher.fair_wait(10, 250, Origin::default()), Some(Duration::from_millis(360)));
    rig.model.release();
    answer(running).await;
    futures_join(replies).await;
    assert_eq!(rig.batcher.fair_wait(10, 250, Origin::default()), Some(Duration::ZERO), "nothing left ahead");
}

/// Queues an input like [`submit`] for `origin`; `Err` when admission refuses it.
fn submit_as(batcher: &Batcher, id: u32, tokens: usize, origin: Origin) -> Result<Reply, super::Overloaded> {
    let mut slots = batcher.admit(1, LONG, origin.class)?;
    let flow = batcher.flow(tokens, origin);
    batcher.reserve_tokens(&flow, &mut slots, &[tokens], LONG)?;
    let mut ids = vec![id];
    ids.resize(tokens, 1);
    let input = QueuedInput { ids, type_ids: vec![0; tokens], top_k: None };
    Ok(batcher.submit(slots.pop().unwrap(), input, Instant::now() + LONG).unwrap())
}

#[tokio::test(start_paused = true)]
async fn under_overload_batch_work_is_shed_first_and_interactive_keeps_its_headroom() {
    let rig = rig(1, 1000, 0);
    rig.model.hold();
    let batch = Origin { class: Priority::Batch, tenant: 1 };
    let interactive = Origin { class: Priority::Interactive, tenant: 2 };
    // The queue holds 10,000 tokens; batch work may take three quarters of them.
    let mut queued = Vec::new();
    for id in 0..7 {
        queued.push(submit_as(&rig.batcher, id, 1000, batch).unwrap());
    }
    assert!(!rig.batcher.is_full(Priority::Batch));
    let Err(refused) = submit_as(&rig.batcher, 8, 1000, batch) else { panic!("batch is refused past its budget") };
    assert_eq!(refused.retry_after, Duration::from_secs(5), "the batch class's least Retry-After");
    // Interactive work still fits, in the quarter kept for it.
    for id in 20..22 {
        queued.push(submit_as(&rig.batcher, id, 1000, interactive).unwrap());
    }
    assert!(!rig.batcher.is_full(Priority::Interactive));
    // And runs first: once the held batch is done, the interactive inputs go next.
    rig.model.release();
    for reply in queued {
        answer(reply).await;
    }
    let firsts: Vec<u32> = rig.model.batches().iter().map(|b| b[0]).collect();
    let first_interactive = firsts.iter().position(|&id| id >= 20).unwrap();
    assert!(first_interactive <= 1, "interactive waited behind the running batch only: {firsts:?}");
}

#[tokio::test(start_paused = true)]
async fn an_interactive_request_is_not_charged_the_batch_backlog() {
    let rig = rig_with(1, 1, 1000, 0);
    rig.capacity.instance(0).record(1000, 1.0);
    rig.model.hold();
    let running = submit(&rig.batcher, 1, 100, LONG);
    until(|| rig.model.entered.load(Ordering::SeqCst) == 1).await;
    let batch = Origin { class: Priority::Batch, tenant: 1 };
    let backlog: Vec<Reply> = (0..5).map(|id| submit_as(&rig.batcher, 10 + id, 1000, batch).unwrap()).collect();
    until(|| rig.batcher.queued_tokens() == 5000).await;
    // Interactive: the running 100 plus at most one floor batch-class batch (a quarter of the
    // 1000-token budget), not the 5,000 queued.
    let interactive = Origin { class: Priority::Interactive, tenant: 2 };
    assert_eq!(rig.batcher.fair_wait(10, 250, interactive), Some(Duration::from_millis(350)));
    // A second batch tenant is charged its fair share of tenant 1's backlog: 100 + (10 + 250).
    let other = Origin { class: Priority::Batch, tenant: 3 };
    assert_eq!(rig.batcher.fair_wait(10, 250, other), Some(Duration::from_millis(360)));
    // Tenant 1 itself waits for its own requests' fair shares: 100 + 5 × 260.
    assert_eq!(rig.batcher.fair_wait(10, 250, batch), Some(Duration::from_millis(1400)));
    rig.model.release();
    answer(running).await;
    futures_join(backlog).await;
}

/// Awaits every reply in order.
async fn futures_join(replies: Vec<Reply>) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(replies.len());
    for reply in replies {
        answers.push(answer(reply).await);
    }
    answers
}
