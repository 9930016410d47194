//! Every Prometheus metric of the server, named and bucketed in one place.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The server's metrics, registered in their own registry (no globals).
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    /// gRPC calls by method (`/package.Service/Method`) and status code name (`OK`, `UNAVAILABLE`, ...).
    pub grpc_requests: IntCounterVec,
    /// End-to-end gRPC call duration by method.
    pub grpc_request_duration: HistogramVec,
    pub queue_depth: IntGauge,
    pub queue_tokens: IntGauge,
    pub throughput: IntGauge,
    pub queue_wait: ServingHistogram,
    pub batch_size: ServingHistogram,
    pub batch_tokens: ServingHistogram,
    pub padding_ratio: ServingHistogram,
    pub inference_duration: ServingHistogram,
    pub tokenization_duration: ServingHistogram,
    pub shed: IntCounter,
    pub expired: IntCounter,
    pub cancelled: IntCounter,
    pub worker_panics: IntCounter,
    pub connections: IntGauge,
    pub connections_rejected: IntCounter,
    pub ready: IntGauge,
    pub model_loaded: IntGauge,
    pub worker_alive: IntGauge,
    pub worker_instances: IntGauge,
    pub worker_instances_busy: IntGauge,
    /// Batches run, by model instance (`instance="0"`, ...).
    pub worker_batches: IntCounterVec,
    /// Requests by tenant, class and outcome (`admitted`, `shed`, `rate_limited`). Tenant names
    /// come from the keys configuration only (plus `default` and `anonymous`), never from a
    /// request, so the label set stays bounded.
    pub tenant_requests: IntCounterVec,
    /// Tokens served by tenant and class.
    pub tenant_tokens: IntCounterVec,
    /// A request's queue wait (its slowest input's) by tenant and class.
    pub tenant_queue_wait: HistogramVec,
    /// The (tenant, class) series [`Metrics::declare_tenants`] exports at zero, kept so that the
    /// reset after the warm-up exports them again.
    declared: std::sync::Mutex<Vec<(std::sync::Arc<str>, String)>>,
    build_info: IntGaugeVec,
}

/// Latency buckets from 0.5 ms to 60 s.
const LATENCY: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_SIZE: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const BATCH_TOKENS: &[f64] = &[16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];
const RATIO: &[f64] = &[0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), &[])
                .expect("valid histogram");
            registry.register(Box::new(h.clone())).expect("unique metric");
            let h = ServingHistogram(h);
            h.reset();
            h
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let requests = IntCounterVec::new(
            Opts::new("pipeserve_requests_total", "HTTP requests by route and status code."),
            &["route", "status"],
        )
        .expect("valid counter");
        registry.register(Box::new(requests.clone())).expect("unique metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new("pipeserve_request_duration_seconds", "End-to-end HTTP request duration.")
                .buckets(LATENCY.to_vec()),
            &["route"],
        )
        .expect("valid histogram");
        registry.register(Box::new(request_duration.clone())).expect("unique metric");
        let grpc_requests = IntCounterVec::new(
            Opts::new("pipeserve_grpc_requests_total", "gRPC calls by method and status code."),
            &["method", "code"],
        )
        .expect("valid counter");
        registry.register(Box::new(grpc_requests.clone())).expect("unique metric");
        let grpc_request_duration = HistogramVec::new(
            HistogramOpts::new("pipeserve_grpc_request_duration_seconds", "End-to-end gRPC call duration.")
                .buckets(LATENCY.to_vec()),
            &["method"],
        )
        .expect("valid histogram");
        registry.register(Box::new(grpc_request_duration.clone())).expect("unique metric");
        let worker_batches = IntCounterVec::new(
            Opts::new("pipeserve_worker_batches_total", "Batches run, by model instance."),
            &["instance"],
        )
        .expect("valid counter");
        registry.register(Box::new(worker_batches.clone())).expect("unique metric");
        let tenant_requests = IntCounterVec::new(
            Opts::new(
                "pipeserve_tenant_requests_total",
                "Requests by tenant, priority class and admission outcome (admitted, shed, rate_limited).",
            ),
            &["tenant", "class", "outcome"],
        )
        .expect("valid counter");
        registry.register(Box::new(tenant_requests.clone())).expect("unique metric");
        let tenant_tokens = IntCounterVec::new(
            Opts::new("pipeserve_tenant_tokens_total", "Tokens served, by tenant and priority class."),
            &["tenant", "class"],
        )
        .expect("valid counter");
        registry.register(Box::new(tenant_tokens.clone())).expect("unique metric");
        let tenant_queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "pipeserve_tenant_queue_wait_seconds",
                "A request's queue wait (its slowest input's), by tenant and priority class.",
            )
            .buckets(LATENCY.to_vec()),
            &["tenant", "class"],
        )
        .expect("valid histogram");
        registry.register(Box::new(tenant_queue_wait.clone())).expect("unique metric");
        let build_info = IntGaugeVec::new(
            Opts::new("pipeserve_build_info", "Version and loaded model; always 1."),
            &["version", "model", "task", "device", "dtype", "gemm"],
        )
        .expect("valid gauge");
        registry.register(Box::new(build_info.clone())).expect("unique metric");
        Self {
            requests,
            request_duration,
            grpc_requests,
            grpc_request_duration,
            queue_depth: gauge("pipeserve_queue_depth", "Inputs admitted and not yet handed to the model."),
            queue_tokens: gauge(
                "pipeserve_queue_tokens",
                "Tokens of the inputs admitted and not yet handed to the model.",
            ),
            throughput: gauge(
                "pipeserve_throughput_tokens_per_second",
                "The instances' summed measured model rate (moving average), which admission predicts waits from.",
            ),
            queue_wait: histogram("pipeserve_queue_wait_seconds", "Time an input waited in the queue.", LATENCY),
            batch_size: histogram("pipeserve_batch_size", "Inputs per model batch.", BATCH_SIZE),
            batch_tokens: histogram("pipeserve_batch_tokens", "Padded tokens per model batch.", BATCH_TOKENS),
            padding_ratio: histogram("pipeserve_batch_padding_ratio", "Share of padding in a batch's tokens.", RATIO),
            inference_duration: histogram(
                "pipeserve_inference_duration_seconds",
                "Model forward time per batch.",
                LATENCY,
            ),
            tokenization_duration: histogram(
                "pipeserve_tokenization_duration_seconds",
                "Tokenization time per request.",
                LATENCY,
            ),
            shed: counter("pipeserve_requests_shed_total", "Requests refused with 503 because the queue was full."),
            expired: counter("pipeserve_inputs_expired_total", "Inputs dropped before the model: request timed out."),
            cancelled: counter(
                "pipeserve_inputs_cancelled_total",
                "Inputs dropped before the model: client went away.",
            ),
            worker_panics: counter("pipeserve_worker_panics_total", "Batches whose model step panicked."),
            connections: gauge("pipeserve_connections", "Open client connections."),
            connections_rejected: counter(
                "pipeserve_connections_rejected_total",
                "Connections closed at once because --max-connections were open.",
            ),
            ready: gauge("pipeserve_ready", "1 when the server is ready for traffic."),
            model_loaded: gauge("pipeserve_model_loaded", "1 once the model is loaded and warmed; 0 while it loads."),
            worker_alive: gauge("pipeserve_worker_alive", "1 while every model worker thread (instance) runs."),
            worker_instances: gauge("pipeserve_worker_instances", "Model instances (--instances)."),
            worker_instances_busy: gauge("pipeserve_worker_instances_busy", "Model instances running a batch now."),
            worker_batches,
            tenant_requests,
            tenant_tokens,
            tenant_queue_wait,
            declared: std::sync::Mutex::default(),
            build_info,
            registry,
        }
    }

    /// Sets the build-info series once the model is known (`dtype`: the one `--dtype auto`
    /// resolved to; `gemm`: the linear layers' library).
    pub fn set_build_info(&self, model: &str, task: &str, device: &str, dtype: &str, gemm: &str) {
        self.build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), model, task, device, dtype, gemm]).set(1);
    }

    /// Forgets what the warm-up request recorded, so the series count served traffic only.
    pub fn reset_after_warm_up(&self) {
        for h in [
            &self.queue_wait,
            &self.batch_size,
            &self.batch_tokens,
            &self.padding_ratio,
            &self.inference_duration,
            &self.tokenization_duration,
        ] {
            h.reset();
        }
        for c in [&self.shed, &self.expired, &self.cancelled, &self.worker_panics] {
            c.reset();
        }
        self.tenant_requests.reset();
        self.tenant_tokens.reset();
        self.tenant_queue_wait.reset();
        self.export_declared();
        for i in 0..self.worker_instances.get() {
            self.worker_batches.with_label_values(&[i.to_string()]).reset();
        }
    }

    /// Counts one admission outcome of `tenant`'s request in `class`.
    pub fn tenant_outcome(&self, tenant: &str, class: &str, outcome: &str) {
        self.tenant_requests.with_label_values(&[tenant, class, outcome]).inc();
    }

    /// Records a served request of `tenant` in `class`: its tokens and queue wait.
    pub fn tenant_served(&self, tenant: &str, class: &str, tokens: usize, queue_wait: std::time::Duration) {
        let labels = [tenant, class];
        self.tenant_tokens.with_label_values(&labels).inc_by(tokens as u64);
        self.tenant_queue_wait.with_label_values(&labels).observe(queue_wait.as_secs_f64());
    }

    /// Exports zero series for `tenants` in every class (`classes`: their label values), so dashboards and alerts see each
    /// tenant before its first request.
    pub fn declare_tenants(&self, tenants: &[std::sync::Arc<str>], classes: &[&str]) {
        let pairs = tenants.iter().flat_map(|t| classes.iter().map(move |&c| (t.clone(), c.to_string())));
        self.declared.lock().unwrap_or_else(|e| e.into_inner()).extend(pairs);
        self.export_declared();
    }

    /// Creates the declared (tenant, class) series that do not exist yet, at zero.
    fn export_declared(&self) {
        for (tenant, class) in self.declared.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let labels = [&**tenant, class.as_str()];
            let _ = self.tenant_tokens.with_label_values(&labels);
            let _ = self.tenant_queue_wait.with_label_values(&labels);
            for outcome in ["admitted", "shed", "rate_limited"] {
                let _ = self.tenant_requests.with_label_values(&[&**tenant, class.as_str(), outcome]);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A histogram of served work that can start over once (after the warm-up): a label-less vec
/// whose single series is replaced. It renders exactly as a plain histogram.
#[derive(Clone)]
pub struct ServingHistogram(HistogramVec);

impl ServingHistogram {
    pub fn observe(&self, value: f64) {
        self.0.with_label_values(&[] as &[&str]).observe(value);
    }

    pub fn get_sample_count(&self) -> u64 {
        self.0.with_label_values(&[] as &[&str]).get_sample_count()
    }

    /// Empties it, keeping the (zero) series exported.
    fn reset(&self) {
        self.0.reset();
        let _ = self.0.with_label_values(&[] as &[&str]);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_tenant_series_survive_the_reset_after_warm_up() {
        let metrics = Metrics::new();
        metrics.declare_tenants(&["team-a".into()], &["interactive", "batch"]);
        metrics.tenant_served("team-a", "interactive", 7, std::time::Duration::from_millis(3));
        metrics.reset_after_warm_up();
        let text = metrics.render();
        for series in [
            r#"pipeserve_tenant_tokens_total{class="batch",tenant="team-a"} 0"#,
            r#"pipeserve_tenant_tokens_total{class="interactive",tenant="team-a"} 0"#,
            r#"pipeserve_tenant_requests_total{class="batch",outcome="shed",tenant="team-a"} 0"#,
            r#"pipeserve_tenant_queue_wait_seconds_count{class="batch",tenant="team-a"} 0"#,
        ] {
            assert!(text.contains(series), "missing {series}");
        }
    }
}
