//! The batcher loop: drives the pure [`Queue`] state with arrivals, the oldest input's deadline and
//! the model instances' idle signals. A batch closes only when an instance is idle and goes to that
//! instance; while every instance runs one, the next one gathers (so batches still form under load).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::queue::{Dropped, Entry, Limits, Queue};
use super::Queued;
use crate::telemetry::Metrics;
use crate::worker::{Batch, Job, WorkerError, WorkerHandle};

/// How often stale inputs are swept while nothing else happens, so a client that left frees its
/// slot even while the worker is busy.
const SWEEP: Duration = Duration::from_millis(50);

pub async fn run(
    mut arrivals: mpsc::Receiver<Entry<Queued>>,
    mut worker: WorkerHandle,
    limits: Limits,
    metrics: Arc<Metrics>,
) {
    let mut queue: Queue<Queued> = Queue::new(limits);
    // Instances waiting for a batch; the most recently idle is used first (its caches are warm).
    let mut idle: Vec<usize> = Vec::with_capacity(worker.instances());
    let mut open = true;
    loop {
        let now = Instant::now();
        for (entry, why) in queue.drop_stale(now, |q| q.job.is_cancelled()) {
            match why {
                Dropped::Expired => {
                    metrics.expired.inc();
                    let _ = entry.payload.job.reply.send(Err(WorkerError::Expired));
                }
                Dropped::Cancelled => metrics.cancelled.inc(),
            }
        }
        if let Some(&instance) = idle.last() {
            // Shutting down: nothing more will arrive, so do not wait for batch-mates.
            let batch = if open { queue.next_batch(now) } else { Some(queue.take()).filter(|b| !b.is_empty()) };
            if let Some(batch) = batch {
                let jobs = batch
                    .into_iter()
                    .map(|e| {
                        let waited = now.duration_since(e.enqueued);
                        metrics.queue_wait.observe(waited.as_secs_f64());
                        // The rest of the entry (slot, queue span) ends here: the input left the queue.
                        Job { queue_wait: waited, ..e.payload.job }
                    })
                    .collect();
                idle.pop();
                if let Err(batch) = worker.send(instance, Batch { jobs }).await {
                    // Its thread ended (a bug: liveness now fails); the others keep serving.
                    tracing::error!(instance, "worker instance is gone; its batch fails");
                    for job in batch.jobs {
                        let _ = job.reply.send(Err(WorkerError::Model("the worker instance stopped".into())));
                    }
                }
                continue;
            }
        }
        if !open && queue.is_empty() {
            break;
        }
        let wake = match queue.deadline() {
            Some(deadline) if !idle.is_empty() => deadline.min(now + SWEEP),
            Some(_) => now + SWEEP,
            None => now + Duration::from_secs(3600),
        };
        tokio::select! {
            arrival = arrivals.recv(), if open => match arrival {
                Some(entry) => {
                    queue.push(entry);
                    // Take everything already waiting before deciding on a batch.
                    while let Ok(more) = arrivals.try_recv() {
                        queue.push(more);
                    }
                }
                None => open = false,
            },
            instance = worker.next_idle() => match instance {
                Some(instance) => idle.push(instance),
                None => {
                    tracing::error!("every worker instance is gone; batcher stops");
                    return;
                }
            },
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    // Dropping `worker` here closes its channels; each instance thread ends after its last batch.
    tracing::info!("batcher stopped");
}
