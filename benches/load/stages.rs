//! The server's own view of a cell: its `/metrics` histograms read before and after, turned into
//! mean times per request for each stage of the path and the padding the batches carried.

use serde_json::json;

use super::Row;

/// The sums and counts of the histograms this reads, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    request: (f64, f64),
    tokenize: (f64, f64),
    queue_wait: (f64, f64),
    forward: (f64, f64),
    batch_size: (f64, f64),
    batch_tokens: (f64, f64),
}

/// Mean per request (ms) of each stage, per batch for the forward pass, and padding.
#[derive(Clone, Debug)]
pub struct Stages {
    /// Inside the server: from the request's arrival to its answer (`pipeserve_request_duration_seconds`).
    pub server_ms: f64,
    pub tokenize_ms: f64,
    pub queue_wait_ms: f64,
    /// One batch's forward pass (every input of the batch waits for all of it).
    pub forward_ms: f64,
    pub batch_size: f64,
    /// Padded tokens the batches carried beyond the requests' own, per request served.
    pub padding_per_request: f64,
    /// Padding's share of the tokens the model ran.
    pub padding_share: f64,
}

/// Sum of the series of `name` whose labels contain `label` (all of them for ""), e.g.
/// `pipeserve_queue_wait_seconds_sum`.
fn sum_of(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && series.contains(label)).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

pub async fn scrape(base: &str) -> Snapshot {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("metrics text");
    let labelled = |name: &str, label: &str| {
        (sum_of(&text, &format!("{name}_sum"), label), sum_of(&text, &format!("{name}_count"), label))
    };
    let pair = |name: &str| labelled(name, "");
    Snapshot {
        // The bench's own scrapes of /metrics are requests too: count /embed only.
        request: labelled("pipeserve_request_duration_seconds", "route=\"/embed\""),
        tokenize: pair("pipeserve_tokenization_duration_seconds"),
        queue_wait: pair("pipeserve_queue_wait_seconds"),
        forward: pair("pipeserve_inference_duration_seconds"),
        batch_size: pair("pipeserve_batch_size"),
        batch_tokens: pair("pipeserve_batch_tokens"),
    }
}

impl Stages {
    /// The cell between two scrapes; `served_tokens` are the requests' own tokens (the clients know them).
    pub fn between(before: &Snapshot, after: &Snapshot, served_tokens: usize) -> Self {
        let mean = |a: (f64, f64), b: (f64, f64)| {
            let n = b.1 - a.1;
            if n > 0.0 {
                (b.0 - a.0) / n
            } else {
                0.0
            }
        };
        let requests = after.request.1 - before.request.1;
        let padded = after.batch_tokens.0 - before.batch_tokens.0;
        let padding = (padded - served_tokens as f64).max(0.0);
        Self {
            server_ms: mean(before.request, after.request) * 1e3,
            tokenize_ms: mean(before.tokenize, after.tokenize) * 1e3,
            queue_wait_ms: mean(before.queue_wait, after.queue_wait) * 1e3,
            forward_ms: mean(before.forward, after.forward) * 1e3,
            batch_size: mean(before.batch_size, after.batch_size),
            padding_per_request: if requests > 0.0 { padding / requests } else { 0.0 },
            padding_share: if padded > 0.0 { padding / padded } else { 0.0 },
        }
    }

    /// What the server's stages do not account for: parsing, JSON, hops between tasks, threads and
    /// channels, post-processing, encoding the answer (mean per request).
    pub fn rest_ms(&self) -> f64 {
        self.server_ms - self.tokenize_ms - self.queue_wait_ms - self.forward_ms
    }

    pub fn json(&self) -> serde_json::Value {
        json!({"server_ms": self.server_ms, "tokenize_ms": self.tokenize_ms, "queue_wait_ms": self.queue_wait_ms,
            "forward_ms": self.forward_ms, "batch_size": self.batch_size, "rest_ms": self.rest_ms(),
            "padding_tokens_per_request": self.padding_per_request, "padding_share": self.padding_share})
    }
}

/// Every pipeserve cell's stages, as a markdown table.
pub fn print_table(rows: &[Row]) {
    println!("\nwhere a request's time went (means per request from the server's metrics; forward is one batch's):\n");
    println!("| mode | input | c | client mean ms | server ms | tokenize | queue wait | forward | batch | rest | outside the server | padding tokens/request | padding share |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        if let Some(s) = &row.stages {
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1}% |",
                row.mode,
                row.input,
                row.concurrency,
                row.mean_ms,
                s.server_ms,
                s.tokenize_ms,
                s.queue_wait_ms,
                s.forward_ms,
                s.batch_size,
                s.rest_ms(),
                row.mean_ms - s.server_ms,
                s.padding_per_request,
                s.padding_share * 100.0
            );
        }
    }
}
