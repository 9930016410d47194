//! HTTP: routes and the ONE tower stack in front of them.

pub mod api;
pub mod error;
mod handlers;
mod inference_api;
pub mod layers;
pub mod openai;
pub mod parse;
pub mod state;
mod tei;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::HttpConfig;
use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the router. Layer order, outermost first:
/// 1. request id: taken from the client's `x-request-id` or made up (UUID v4);
/// 2. trace span per request, carrying the request id, child of the client's `traceparent`;
/// 3. trace id onto the response (when traced);
/// 4. request id copied onto the response;
/// 5. access log: one line per request, after everything inside has shaped the response;
/// 6. error bodies: the handler's or layer's [`error::Rejection`] rendered with the request id;
///    5xx details go to the log only;
/// 7. request metrics (route template × status, duration);
/// 8. panic → 500;
/// 9. HTTP/1.1 hygiene: no `Host` → 400;
///
/// and on the inference routes only (health and metrics stay reachable under overload and
/// without a key):
/// 10. API key → 401, when `--api-key` is set (before shedding, so strangers never see our load);
/// 11. load shedding → 503 at once when the queue is full (or the model still loads);
/// 12. timeout → 504, its deadline handed to the handler so the queue expires inputs at the same instant;
/// 13. the body read whole: over the limit → 413 (after draining it, so the client sees the 413),
///     not all there within the body read timeout → 408.
pub fn router(state: Arc<AppState>, config: &HttpConfig) -> Router {
    // Every route exists from the start; the embedding routes answer 404 for other tasks, and
    // every inference route 503 while the model loads.
    let inference = Router::new()
        .route("/", post(inference_api::root))
        .route("/predict", post(inference_api::predict))
        .route("/embed", post(tei::embed))
        .route("/embed_all", post(tei::embed_all))
        .route("/rerank", post(tei::rerank))
        .route("/tokenize", post(tei::tokenize))
        .route("/decode", post(tei::decode))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{model}", get(openai::model))
        .route_layer(
            ServiceBuilder::new()
                .layer(from_fn_with_state(
                    config.api_key.as_ref().map(|key| layers::auth::ApiKey(key.0.as_bytes().into())),
                    layers::auth::layer,
                ))
                .layer(from_fn_with_state(state.clone(), layers::shed::layer))
                .layer(from_fn_with_state(state.batching.request_timeout, layers::timeout::layer))
                .layer(DefaultBodyLimit::disable())
                .layer(from_fn_with_state(
                    layers::body::BodyPolicy {
                        limit: config.body_limit,
                        read_timeout: config.body_read_timeout,
                        buffered: Arc::new(tokio::sync::Semaphore::new(config.max_buffered_body_bytes)),
                    },
                    layers::body::layer,
                )),
        );
    let operational = Router::new()
        .route("/info", get(handlers::info))
        .route("/health", get(tei::health))
        .route("/health/live", get(handlers::live))
        .route("/health/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics));

    let metrics = state.metrics.clone();
    inference
        .merge(operational)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let span = tracing::info_span!(
                        "request", method = %request.method(), path = %request.uri().path(), request_id = %id,
                        otel.kind = "server", http.response.status_code = tracing::field::Empty,
                        otel.status_code = tracing::field::Empty,
                    );
                    crate::telemetry::traces::set_remote_parent(&span, request.headers());
                    span
                }))
                .layer(axum::middleware::from_fn(layers::trace_context::layer))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(axum::middleware::from_fn(layers::access_log::layer))
                .layer(axum::middleware::from_fn(layers::error_body::layer))
                .layer(from_fn_with_state(metrics, layers::request_metrics::layer))
                .layer(CatchPanicLayer::custom(layers::panic::respond))
                .layer(axum::middleware::from_fn(layers::hygiene::layer)),
        )
}
