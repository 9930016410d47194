//! The worker thread and health: live while loading and while the worker runs; ready only once
//! loaded, with the worker alive and no drain in progress.

use crate::common;

use std::sync::Arc;

use pipeserve::lifecycle::health::Health;
use pipeserve::model::RawOutput;
use pipeserve::telemetry::Metrics;
use pipeserve::worker::{self, Batch, Job};
use tokio::sync::oneshot;

#[tokio::test]
async fn liveness_fails_once_the_worker_thread_is_gone() {
    let loaded = common::loaded(&common::load_config("tiny-bert-sentiment"));
    let metrics = Arc::new(Metrics::new());
    let health = Health::new(metrics.clone());
    // Loading: live, not ready, and the gauges say so.
    assert!(health.is_live() && !health.is_ready() && !health.is_loaded());
    assert!(metrics.render().contains("pipeserve_model_loaded 0"));
    let (mut handle, status) = worker::spawn(vec![loaded.model], 0, metrics.clone()).unwrap();
    health.set_loaded(status.clone());
    assert!(health.is_live() && health.is_ready());
    assert!(metrics.render().contains("pipeserve_model_loaded 1"));

    // The worker answers a job on its thread.
    let encoded = loaded.tokenizer.encode("hello there", false).unwrap();
    let (reply, answer) = oneshot::channel();
    let instance = handle.next_idle().await.unwrap();
    let job = Job {
        ids: encoded.ids.clone(),
        type_ids: encoded.type_ids.clone(),
        top_k: None,
        reply,
        span: tracing::Span::none(),
        queue_wait: std::time::Duration::ZERO,
    };
    assert!(handle.send(instance, Batch { jobs: vec![job] }).await.is_ok());
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
