//! Logs, traces and metrics.

pub mod metrics;
pub mod traces;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::TracingConfig;
pub use metrics::Metrics;

/// Logging and tracing as installed; [`Telemetry::shutdown`] flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the subscriber: log lines (text, or JSON with `json`; level from `RUST_LOG`, default
/// `info`) and, when `tracing` names an endpoint, the OpenTelemetry layer with its OTLP exporter.
/// Must run inside the tokio runtime (the gRPC exporter's channel lives there).
///
/// The two have separate filters: `RUST_LOG` picks log lines, while every pipeserve span (the
/// request's stages are `debug` spans, so they cost nothing unless traced) goes to the exporter.
pub fn init(json: bool, tracing: &TracingConfig) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = fmt::layer().with_target(false).with_ansi(ansi);
    let logs = if json { logs.json().flatten_event(true).boxed() } else { logs.boxed() };
    let provider = match &tracing.endpoint {
        Some(endpoint) => Some(traces::provider(tracing, endpoint)?),
        None => None,
    };
    // Tracing off: no layer at all, so spans are never built for OpenTelemetry.
    let otel = provider
        .as_ref()
        .map(|p| traces::layer(p).with_filter(Targets::new().with_target("pipeserve", tracing::Level::DEBUG)));
    // A second init (tests) is harmless: keep the first subscriber.
    let installed = tracing_subscriber::registry().with(logs.with_filter(filter)).with(otel).try_init().is_ok();
    traces::set_enabled(installed && provider.is_some());
    match &tracing.endpoint {
        Some(endpoint) => tracing::info!(
            endpoint, protocol = ?tracing.protocol, service_name = %tracing.service_name, "trace export on"
        ),
        None => tracing::info!("trace export off: no OTLP endpoint, or OTEL_SDK_DISABLED / OTEL_TRACES_EXPORTER=none"),
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter (blocks: call off the runtime).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!("trace export did not shut down cleanly: {e}");
            }
        }
    }
}
