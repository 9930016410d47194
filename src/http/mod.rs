//! HTTP: routes and the ONE tower stack in front of them.

pub mod api;
mod docs;
pub mod error;
pub(crate) mod handlers;
mod inference_api;
pub mod kserve;
pub mod layers;
pub mod oip;
pub mod openai;
mod openapi;
pub mod parse;
pub mod state;
pub(crate) mod tei;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::http::{HeaderName, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
/// without a key; KServe v2's model metadata and readiness get the API key only):
/// 10. API key → 401, when `--api-key` or `--api-keys-file` is set (before shedding, so strangers
///     never see our load); the caller's tenant and `x-priority` class go on as an extension;
/// 11. quota → 429 for a tenant over its token quota; load shedding → 503 at once when the
///     queue has no room for the request's class (or the model still loads);
/// 12. timeout → 504 after its class's timeout, the deadline handed to the handler so the queue
///     expires inputs at the same instant;
/// 13. the body read whole: over the limit → 413 (after draining it, so the client sees the 413),
///     not all there within the body read timeout → 408.
pub fn router(state: Arc<AppState>, config: &HttpConfig, keys: Arc<crate::auth::Keys>) -> Router {
    // Every route exists from the start; the embedding routes answer 404 for other tasks, and
    // every inference route 503 while the model loads.
    // Each route comes with its OpenAPI description (`#[utoipa::path]`), collected as it is added.
    let (inference, inference_doc) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(inference_api::root))
        .routes(routes!(inference_api::predict))
        .routes(routes!(tei::embed))
        .routes(routes!(tei::embed_all))
        .routes(routes!(tei::embed_sparse))
        .routes(routes!(tei::rerank))
        .routes(routes!(tei::tokenize))
        .routes(routes!(tei::decode))
        .routes(routes!(openai::embeddings))
        .routes(routes!(openai::models))
        .routes(routes!(openai::model))
        .routes(routes!(kserve::infer))
        .routes(routes!(kserve::infer_version))
        .split_for_parts();
    let inference = inference.route_layer(
        ServiceBuilder::new()
            .layer(from_fn_with_state(keys.clone(), layers::auth::layer))
            .layer(from_fn_with_state(state.clone(), layers::shed::layer))
            .layer(from_fn_with_state(config.classes, layers::timeout::layer))
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
    // KServe v2's model metadata and readiness: behind the API key (they name the model), not
    // behind shedding or the body limits (a question about the model is no work for it, and a
    // readiness answer must not turn into "overloaded").
    let (model_info, model_info_doc) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(kserve::model_metadata))
        .routes(routes!(kserve::model_version_metadata))
        .routes(routes!(kserve::model_ready))
        .routes(routes!(kserve::model_version_ready))
        .split_for_parts();
    let model_info = model_info.route_layer(from_fn_with_state(keys, layers::auth::layer));
    let (operational, operational_doc) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(handlers::info))
        .routes(routes!(tei::health))
        .routes(routes!(handlers::live))
        .routes(routes!(handlers::ready))
        .routes(routes!(handlers::metrics))
        .routes(routes!(kserve::server_metadata))
        .routes(routes!(kserve::server_live))
        .routes(routes!(kserve::server_ready))
        .split_for_parts();
    let document: Arc<str> = openapi::document(inference_doc, model_info_doc, operational_doc)
        .to_json()
        .expect("the OpenAPI document serializes")
        .into();
    let operational = operational.route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], document.to_string()) }
        }),
    );
    // `/docs`: the API explorer on that document (its assets are compiled in).
    let operational = operational.merge(docs::routes());

    let metrics = state.metrics.clone();
    inference
        .merge(model_info)
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
