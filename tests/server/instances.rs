//! Model instances in the running server: `--instances N` shares one copy of the weights, so
//! resident memory grows by each instance's activations, not by a copy of the model per instance.

use crate::common;

use common::server::{memory_kib, Server};
use reqwest::Client;
use serde_json::json;

const MODEL: &str = "all-MiniLM-L6-v2";

/// A ~130-token input, so batches hold real activations.
fn long_text() -> String {
    "Serving encoder models well means batching requests dynamically while keeping latency low. ".repeat(9)
}

/// Rounds of 12 concurrent requests until every instance has run batches, then the same number of
/// rounds for every server; returns the resident memory after them, in KiB. Batches are capped at
/// 4 inputs, so one instance runs the same batches as each of several (with no cap, one instance
/// would run bigger batches than three do, and its larger activations would hide a copy of the
/// weights).
async fn rss_after_load(instances: usize) -> u64 {
    let server = Server::start(MODEL, &["--instances", &instances.to_string(), "--max-batch-size", "4"]);
    assert_eq!(server.metric("pipeserve_worker_instances").await, instances as f64);
    let client = Client::new();
    let text = long_text();
    let round = || {
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let (client, url, text) = (client.clone(), server.url("/embed"), text.clone());
                tokio::spawn(
                    async move { client.post(url).json(&json!({"inputs": text})).send().await.unwrap().status() },
                )
            })
            .collect();
        async move {
            for call in calls {
                assert_eq!(call.await.unwrap(), 200);
            }
        }
    };
    let mut rounds = 0;
    loop {
        round().await;
        rounds += 1;
        let mut all_ran = true;
        for i in 0..instances {
            all_ran &= server.metric(&format!("pipeserve_worker_batches_total{{instance=\"{i}\"}}")).await > 0.0;
        }
        if all_ran {
            break;
        }
        assert!(rounds < 50, "some instance never ran a batch");
    }
    for _ in rounds..10 {
        round().await;
    }
    memory_kib(server.pid(), "VmRSS")
}

#[tokio::test]
async fn instances_share_the_weights() {
    let weights_kib = std::fs::metadata(common::model_dir(MODEL).join("model.safetensors")).unwrap().len() / 1024;
    let one = rss_after_load(1).await;
    let three = rss_after_load(3).await;
    let per_instance = three.saturating_sub(one) / 2;
    eprintln!(
        "VmRSS after the same load: 1 instance {} MiB, 3 instances {} MiB; {} MiB per extra instance, weights {} MiB",
        one / 1024,
        three / 1024,
        per_instance / 1024,
        weights_kib / 1024
    );
    // A copy of the model per instance would add at least the weights' size per instance.
    assert!(
        per_instance < weights_kib,
        "each extra instance added {per_instance} KiB, not less than the weights' {weights_kib} KiB"
    );
}
