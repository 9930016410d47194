//! The batcher loop and the worker together, with a fake model behind the worker's seam and
//! tokio's paused clock: batches close on size, token budget and the oldest input's deadline;
//! expired and cancelled inputs never reach the model; a panicking batch fails only its own
//! inputs; a drain runs what is queued. Queue waits are read in virtual time, so the assertions
//! are exact and the tests take milliseconds. (The paused clock only advances on its own while
//! every task is idle; while the worker thread computes, it may, so exact waits are asserted only
//! for batches that close while the worker is idle.)

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{BatchPolicy, Batcher, BatcherConfig, Limits, QueuedInput, Reply};
use crate::model::{ModelInput, RawOutput};
use crate::telemetry::Metrics;
use crate::worker::{self, Answer, BatchModel, WorkerError, WorkerStatus};

/// A token id that makes the fake model panic.
const POISON: u32 = 666;

/// Records the first token of every input of every batch; can be held shut; panics on [`POISON`].
#[derive(Clone, Default)]
struct FakeModel {
    batches: Arc<Mutex<Vec<Vec<u32>>>>,
    /// `true` while batches must wait.
    shut: Arc<(Mutex<bool>, Condvar)>,
}

impl FakeModel {
    fn hold(&self) {
        *self.shut.0.lock().unwrap() = true;
    }

    fn release(&self) {
        *self.shut.0.lock().unwrap() = false;
        self.shut.1.notify_all();
    }

    fn batches(&self) -> Vec<Vec<u32>> {
        self.batches.lock().unwrap().clone()
    }
}

impl BatchModel for FakeModel {
    fn forward(&self, inputs: &[ModelInput<'_>]) -> candle_core::Result<Vec<RawOutput>> {
        let (lock, wake) = &*self.shut;
        drop(wake.wait_while(lock.lock().unwrap(), |shut| *shut).unwrap());
        let firsts: Vec<u32> = inputs.iter().map(|i| i.ids[0]).collect();
        assert!(!firsts.contains(&POISON), "fake model: poisoned input");
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
}

fn rig(max_batch_size: usize, max_batch_tokens: usize, max_wait_ms: u64) -> Rig {
    let metrics = Arc::new(Metrics::new());
    let model = FakeModel::default();
    let (handle, worker) = worker::spawn(model.clone(), metrics.clone()).unwrap();
    let limits = Limits {
        max_batch_size,
        max_batch_tokens,
        max_wait: Duration::from_millis(max_wait_ms),
        policy: BatchPolicy::Fifo,
    };
    let config = BatcherConfig { limits, max_queue: 64, max_queue_tokens: 10_000 };
    let (batcher, task) = Batcher::start(config, handle, metrics.clone());
    Rig { batcher, task, worker, model, metrics }
}

/// Queues an input of `tokens` tokens whose first token is `id`, expiring after `ttl`.
fn submit(batcher: &Batcher, id: u32, tokens: usize, ttl: Duration) -> Reply {
    let mut slots = batcher.admit(1, ttl).unwrap();
    batcher.reserve_tokens(&mut slots, &[tokens], ttl).unwrap();
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

/// Awaits every reply in order.
async fn futures_join(replies: Vec<Reply>) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(replies.len());
    for reply in replies {
        answers.push(answer(reply).await);
    }
    answers
}
