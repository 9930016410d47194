//! Model instances (`--instances`): N instances of one loaded model return what one instance
//! returns, through the same service, and each instance computes exactly what the others do on
//! the shared weights.

use crate::common;

use std::sync::Arc;

use clap::Parser;
use pipeserve::config::Config;
use pipeserve::infer::{Infer, InferRequest};
use pipeserve::model::{ModelInput, RawOutput};
use pipeserve::pipelines::{Output, Params};
use pipeserve::telemetry::Metrics;
use pipeserve::worker::{self, Batch, Job};
use tokio::sync::oneshot;

const MODEL: &str = "all-MiniLM-L6-v2";

const TEXTS: &[&str] = &[
    "Hi.",
    "My name is Wolfgang and I live in Berlin, near the Brandenburg Gate.",
    "Short one",
    "Kubernetes schedules pods; Zürich is lovely in spring, and Schwarzenegger once lived in Graz, Austria.",
    "The end",
    "Serving encoder models well means batching requests dynamically while keeping latency low.",
];

/// The service a server started with `args` builds, and its metrics.
fn service(args: &[&str]) -> (Infer, Arc<Metrics>) {
    let mut argv = vec!["pipeserve", "--model", "unused"];
    argv.extend_from_slice(args);
    let settings = Config::try_parse_from(argv).unwrap().infer();
    let metrics = Arc::new(Metrics::new());
    let loaded = common::loaded(&common::load_config(MODEL));
    let (infer, _backend) = Infer::start(loaded, settings, metrics.clone()).unwrap();
    (infer, metrics)
}

/// Every text as its own request, all at once, so idle instances take batches side by side.
async fn concurrently(infer: &Infer) -> Vec<Output> {
    let calls: Vec<_> = TEXTS
        .iter()
        .map(|text| {
            let infer = infer.clone();
            let request = InferRequest::new(vec![text.to_string()], Params::default());
            tokio::spawn(async move { infer.run(request).await.unwrap().outputs.remove(0) })
        })
        .collect();
    let mut outputs = Vec::new();
    for call in calls {
        outputs.push(call.await.unwrap());
    }
    outputs
}

fn batches_of(metrics: &Metrics, instance: usize) -> u64 {
    metrics.worker_batches.with_label_values(&[instance.to_string()]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_return_what_one_returns() {
    let (one, _) = service(&["--instances", "1"]);
    let (two, metrics) = service(&["--instances", "2"]);
    let expected = serde_json::to_value(concurrently(&one).await).unwrap();
    // Rounds of concurrent requests until both instances have run batches (the first round
    // nearly always does it), each round checked against one instance.
    for round in 0.. {
        let got = serde_json::to_value(concurrently(&two).await).unwrap();
        let d = common::max_abs_diff(&expected, &got);
        // Batch-mates and math thread counts differ between the runs: the batch invariance bound.
        assert!(d < 1e-4, "round {round}: max abs difference {d} between 1 and 2 instances");
        if batches_of(&metrics, 0) > 0 && batches_of(&metrics, 1) > 0 {
            break;
        }
        assert!(round < 50, "instance 1 never got a batch");
    }
}

#[tokio::test]
async fn every_instance_computes_the_same_on_the_shared_weights() {
    let loaded = common::loaded(&common::load_config(MODEL));
    let encoded: Vec<_> = TEXTS.iter().map(|t| loaded.tokenizer.encode(t, false).unwrap()).collect();
    let model = Arc::new(loaded.model);
    let inputs: Vec<ModelInput<'_>> =
        encoded.iter().map(|e| ModelInput { ids: &e.ids, type_ids: &e.type_ids }).collect();
    let reference = model.forward(&inputs).unwrap();
    // Two instances, one model: a strong count of 3 (here and in each instance), one copy of weights.
    let (mut handle, status) = worker::spawn(vec![model.clone(), model.clone()], 1, Arc::new(Metrics::new())).unwrap();
    assert_eq!(Arc::strong_count(&model), 3);
    let mut runs: Vec<(usize, Vec<RawOutput>)> = Vec::new();
    for _ in 0..2 {
        let instance = handle.next_idle().await.unwrap();
        let (jobs, answers): (Vec<Job>, Vec<_>) = encoded
            .iter()
            .map(|e| {
                let (reply, answer) = oneshot::channel();
                let job = Job {
                    ids: e.ids.clone(),
                    type_ids: e.type_ids.clone(),
                    top_k: None,
                    reply,
                    span: tracing::Span::none(),
                    queue_wait: std::time::Duration::ZERO,
                };
                (job, answer)
            })
            .unzip();
        assert!(handle.send(instance, Batch { jobs }).await.is_ok());
        let mut outputs = Vec::new();
        for (answer, expected) in answers.into_iter().zip(&reference) {
            let output = answer.await.unwrap().unwrap().output;
            let (RawOutput::Hidden(a), RawOutput::Hidden(b)) = (&output, expected) else { panic!("not hidden states") };
            let d = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            // The reference ran on the test's own threads (another thread count): a tolerance.
            assert!(a.rows == b.rows && d < 1e-5, "instance {instance}: max abs difference {d}");
            outputs.push(output);
        }
        runs.push((instance, outputs));
    }
    let instances: Vec<usize> = runs.iter().map(|r| r.0).collect();
    assert!(instances.contains(&0) && instances.contains(&1), "each instance ran the batch once: {instances:?}");
    // Same batch, same weights, same threads: the two instances agree to the bit.
    assert_eq!(runs[0].1, runs[1].1);
    drop(handle);
    tokio::task::spawn_blocking(move || status.join()).await.unwrap();
}
