//! The worker thread and health: liveness follows the worker thread; readiness also needs the
//! model loaded and no drain in progress.

mod common;

use std::sync::Arc;

use pipeserve::http::state::Health;
use pipeserve::model::RawOutput;
use pipeserve::telemetry::Metrics;
use pipeserve::worker::{self, Batch, Job};
use tokio::sync::oneshot;

#[tokio::test]
async fn liveness_fails_once_the_worker_thread_is_gone() {
    let engine = common::load("tiny-bert-sentiment");
    let metrics = Arc::new(Metrics::new());
    let (handle, status) = worker::spawn(engine.model, metrics.clone(), None).unwrap();
    let health = Health::new(status.clone(), metrics.clone());
    health.set_loaded();
    assert!(health.is_live() && health.is_ready());

    // The worker answers a job on its thread.
    let encoded = engine.tokenizer.encode("hello there", false).unwrap();
    let (reply, answer) = oneshot::channel();
    handle.until_idle().await;
    let job = Job {
        ids: encoded.ids.clone(),
        type_ids: encoded.type_ids.clone(),
        reply,
        span: tracing::Span::none(),
        queue_wait: std::time::Duration::ZERO,
    };
    assert!(handle.send(Batch { jobs: vec![job] }).await.is_ok());
    let answer = answer.await.unwrap().unwrap();
    assert!(matches!(answer.output, RawOutput::Logits(ref l) if l.len() == 2));
    assert_eq!(answer.batch_size, 1);

    // Draining: live but not ready.
    health.start_draining();
    assert!(health.is_live() && !health.is_ready());

    // Dropping the batcher's handle ends the thread: liveness fails.
    drop(handle);
    tokio::task::spawn_blocking({
        let status = status.clone();
        move || status.join()
    })
    .await
    .unwrap();
    assert!(!health.is_live());
    health.publish();
    assert!(metrics.render().contains("pipeserve_worker_alive 0"));
}
