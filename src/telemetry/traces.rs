//! Traces: OpenTelemetry spans exported over OTLP, and the W3C trace context at the HTTP edge.
//! Everything here is a no-op while tracing is off.
//!
//! Spans, by stage: `request` (HTTP, the parent from the client's `traceparent`) → `validate`,
//! `tokenize`, `queue_wait` (one per input), `postprocess`; on the worker, one `batch` span per
//! model batch, linked to every request span in it, with `model.forward` as its child.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{ExporterBuildError, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{OtlpProtocol, TracingConfig};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True when spans are exported; lets callers skip work whose only use is a trace.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(super) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The tracer provider with a batching OTLP exporter (spans leave on a background thread).
pub(super) fn provider(config: &TracingConfig, endpoint: &str) -> Result<SdkTracerProvider, ExporterBuildError> {
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => {
            SpanExporter::builder().with_tonic().with_protocol(Protocol::Grpc).with_endpoint(endpoint).build()?
        }
        OtlpProtocol::HttpProtobuf => {
            SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary).with_endpoint(endpoint).build()?
        }
    };
    let resource = Resource::builder_empty()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(config.resource_attributes.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_service_name(config.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("pipeserve")).with_tracked_inactivity(false)
}

/// Makes `span` a child of the caller's trace, from the W3C `traceparent`/`tracestate` headers.
pub fn set_remote_parent(span: &Span, headers: &HeaderMap) {
    if !is_enabled() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The OpenTelemetry identity of `span`, when it is traced.
pub fn span_context(span: &Span) -> Option<SpanContext> {
    if !is_enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `span`'s trace id as 32 hex digits, when it is traced.
pub fn trace_id(span: &Span) -> Option<String> {
    span_context(span).map(|sc| sc.trace_id().to_string())
}

/// A W3C `traceparent` value naming `span`.
pub fn traceparent(sc: &SpanContext) -> String {
    format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8())
}

/// Links `batch` to each of `requests` (once each): a batch serves many traces, so it is a root
/// span of its own that points at every request it carried.
pub fn link_all<'a>(batch: &Span, requests: impl IntoIterator<Item = &'a Span>) {
    if !is_enabled() {
        return;
    }
    let mut seen = Vec::new();
    for sc in requests.into_iter().filter_map(span_context) {
        if !seen.contains(&sc.span_id()) {
            seen.push(sc.span_id());
            batch.add_link(sc);
        }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
