//! The batcher loop: drives the pure [`Queue`] state with arrivals, the oldest input's deadline and
//! the worker's idle signal. While the worker runs one batch, the next one gathers.

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
    worker: WorkerHandle,
    limits: Limits,
    metrics: Arc<Metrics>,
) {
    let mut queue: Queue<Queued> = Queue::new(limits);
    let mut idle = false;
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
        if idle {
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
                idle = false;
                if worker.send(Batch { jobs }).await.is_err() {
                    tracing::error!("worker is gone; batcher stops");
                    return;
                }
                continue;
            }
        }
        if !open && queue.is_empty() {
            break;
        }
        let wake = match queue.deadline() {
            Some(deadline) if idle => deadline.min(now + SWEEP),
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
            () = worker.until_idle(), if !idle => idle = true,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    // Dropping `worker` here closes its channel; the thread ends after its last batch.
    tracing::info!("batcher stopped");
}
