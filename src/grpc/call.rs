//! The edge every RPC passes, the gRPC side of HTTP's tower stack (src/http/mod.rs), in order:
//! 1. request id: the client's `x-request-id` metadata or a new UUID v4, sent back on the answer;
//! 2. a `request` span carrying it, child of the client's `traceparent` (W3C trace context);
//! 3. one access-log line and the `pipeserve_grpc_*` metrics when the call ends, answered or not
//!    (a client that went away counts as `CANCELLED`);
//! 4. the API key (`authorization: Bearer <key>` or `x-api-key`) naming the tenant, by HTTP's own
//!    check, and the class from `x-priority` metadata (else the tenant's default);
//! 5. admission: `Infer::shed` refuses at once when the queue cannot serve the call in time;
//! 6. the deadline: `grpc-timeout`, capped by `--request-timeout`; the queue drops the call's inputs
//!    at that instant and the answer is `DEADLINE_EXCEEDED`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};
use tower_http::request_id::{MakeRequestId, MakeRequestUuid};
use tracing::{Instrument, Span};

use crate::auth::{AuthError, Keys, Tenant};
use crate::batching::Priority;
use crate::http::error::ApiError;
use crate::http::layers::auth::PRIORITY_HEADER;
use crate::http::layers::timeout::Deadline;
use crate::http::state::AppState;
use crate::infer::{BatchStats, Caller, Classes, InferError};
use crate::telemetry::traces;

/// How long before the client's own `grpc-timeout` the call gives up, so that its answer is ours
/// (`DEADLINE_EXCEEDED`, inputs dropped) and not tonic's timer racing it with `CANCELLED`.
const AHEAD_OF_CLIENT_DEADLINE: Duration = Duration::from_millis(5);

/// The most messages of one stream in flight at once (admitted, queued or running): the stream
/// reads no further message until the oldest is answered, so one stream cannot fill the queue.
pub const STREAM_IN_FLIGHT: usize = 32;

/// What a call must pass before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Guard {
    /// Probes and server metadata: open, as `/v2/health/*` and `/v2` are.
    Open,
    /// Model metadata and readiness: the API key, no shedding (as the REST routes).
    Key,
    /// Inference: the API key and admission.
    Work,
}

/// A call's identity and time budget, for its handler.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub deadline: Deadline,
}

/// What the handlers share: the server's state, the API keys and the classes' timeouts.
pub struct Edge {
    pub state: Arc<AppState>,
    keys: Arc<Keys>,
    classes: Classes,
}

/// What a handler answers: its message, and how the call's inputs were batched (for the log).
pub type Handled<R> = Result<(R, Option<BatchStats>), ApiError>;

impl Edge {
    pub fn new(state: Arc<AppState>, keys: Arc<Keys>, classes: Classes) -> Self {
        Self { state, keys, classes }
    }

    /// Runs one unary call of `method` (`/package.Service/Method`) through the edge.
    pub async fn unary<T, R, F, Fut>(
        &self,
        method: &'static str,
        guard: Guard,
        request: Request<T>,
        handler: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(Call, T) -> Fut,
        Fut: Future<Output = Handled<R>>,
    {
        let opened = Instant::now();
        let headers = request.metadata().clone().into_headers();
        let request_id = request_id(&headers);
        let (answer, span) =
            self.one(method, guard, &headers, &request_id, opened, |call| handler(call, request.into_inner())).await;
        let mut answer = answer.map(Response::new);
        let metadata = match &mut answer {
            Ok(response) => response.metadata_mut(),
            Err(status) => status.metadata_mut(),
        };
        identify(metadata, &request_id, &span);
        answer
    }

    /// Runs a bidirectional stream of `method`: each request message is one call through the edge
    /// (its own span, admission, deadline, metrics and log line; the stream's metadata: key,
    /// class, request id, `grpc-timeout` for the whole stream), answered by one response message,
    /// in request order. Up to [`STREAM_IN_FLIGHT`] messages of a stream run at once, each spawned
    /// so the batcher batches them with each other and with other calls; the stream ends at the
    /// first error, with its status.
    pub fn stream<T, R, F, Fut>(
        self: &Arc<Self>,
        method: &'static str,
        guard: Guard,
        request: Request<Streaming<T>>,
        handler: F,
    ) -> Response<Answers<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(Call, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Handled<R>> + Send + 'static,
    {
        let opened = Instant::now();
        let headers = Arc::new(request.metadata().clone().into_headers());
        let request_id = request_id(&headers);
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_IN_FLIGHT);
        let (edge, handler, id) = (self.clone(), Arc::new(handler), request_id.clone());
        let one = move |message: T| {
            let (edge, handler, headers, id) = (edge.clone(), handler.clone(), headers.clone(), id.clone());
            Spawned(tokio::spawn(async move {
                edge.one(method, guard, &headers, &id, opened, |call| (*handler)(call, message)).await.0
            }))
        };
        tokio::spawn(async move {
            let mut pending = FuturesOrdered::new();
            let mut open = true;
            loop {
                tokio::select! {
                    biased;
                    Some(answer) = pending.next(), if !pending.is_empty() => {
                        let answer: Result<R, Status> = answer;
                        let failed = answer.is_err();
                        if tx.send(answer).await.is_err() || failed {
                            break;
                        }
                    }
                    message = inbound.message(), if open && pending.len() < STREAM_IN_FLIGHT => match message {
                        Ok(Some(message)) => pending.push_back(one(message)),
                        Ok(None) => open = false,
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                    },
                    else => break,
                }
            }
        });
        let mut response = Response::new(Answers(rx));
        identify(response.metadata_mut(), &request_id, &Span::none());
        response
    }

    /// One call (a unary call, or one message of a stream) through steps 2 to 6 of the edge: its
    /// answer and its span. `opened`: when the RPC began, from which its `grpc-timeout` counts.
    async fn one<R, F, Fut>(
        &self,
        method: &'static str,
        guard: Guard,
        headers: &HeaderMap,
        request_id: &str,
        opened: Instant,
        handler: F,
    ) -> (Result<R, Status>, Span)
    where
        F: FnOnce(Call) -> Fut,
        Fut: Future<Output = Handled<R>>,
    {
        let started = Instant::now();
        let span = tracing::info_span!(
            "request", rpc.system = "grpc", rpc.method = method, request_id = %request_id, otel.kind = "server",
            rpc.grpc.status_code = tracing::field::Empty, otel.status_code = tracing::field::Empty,
        );
        traces::set_remote_parent(&span, headers);
        let mut line = Line {
            edge_metrics: self.state.metrics.clone(),
            method,
            request_id: request_id.to_string(),
            started,
            span: span.clone(),
            outcome: None,
        };
        let result = async {
            let tenant = if guard >= Guard::Key { self.tenant(headers)? } else { Tenant::anonymous() };
            let caller = Caller { tenant, priority: priority(headers)? };
            let at = self.deadline(opened, started, headers, &caller);
            let call = Call { request_id: request_id.to_string(), deadline: Deadline { at, caller } };
            if guard == Guard::Work {
                self.state.infer()?.shed(&call.deadline.caller, at)?;
            }
            match tokio::time::timeout_at(at, handler(call)).await {
                Ok(handled) => handled,
                Err(_) => Err(ApiError::Infer(InferError::Timeout)),
            }
        }
        .instrument(span.clone())
        .await;
        let answer = match result {
            Ok((message, batch)) => {
                line.outcome = Some((Code::Ok, batch));
                Ok(message)
            }
            Err(e) => {
                let status = span.in_scope(|| super::status::status(&e));
                line.outcome = Some((status.code(), None));
                Err(status)
            }
        };
        (answer, span)
    }

    /// The tenant of the key the call presents (anonymous when no key is configured).
    fn tenant(&self, headers: &HeaderMap) -> Result<Arc<Tenant>, ApiError> {
        self.keys.authenticate(headers).map_err(|e| {
            ApiError::Unauthorized(match e {
                AuthError::Missing => "missing API key: send `authorization: Bearer <key>` metadata",
                AuthError::Invalid => "invalid API key",
            })
        })
    }

    /// When the call's time is up: the client's `grpc-timeout` from when the RPC was `opened`
    /// (just ahead of it), at most its class's timeout (`--request-timeout` unless the class has
    /// its own) from when this call `started` (a stream's message: when it arrived).
    fn deadline(&self, opened: Instant, started: Instant, headers: &HeaderMap, caller: &Caller) -> Instant {
        let limited = started + self.classes.timeout(self.classes.of(caller));
        match headers.get("grpc-timeout").and_then(grpc_timeout) {
            Some(timeout) => limited.min(opened + timeout.saturating_sub(AHEAD_OF_CLIENT_DEADLINE)),
            None => limited,
        }
    }
}

/// The request id and trace context, sent back in the answer's metadata.
fn identify(metadata: &mut MetadataMap, request_id: &str, span: &Span) {
    if let Ok(v) = request_id.parse() {
        metadata.insert("x-request-id", v);
    }
    if let Some(sc) = traces::span_context(span) {
        if let Ok(v) = sc.trace_id().to_string().parse() {
            metadata.insert("x-trace-id", v);
        }
        if let Ok(v) = traces::traceparent(&sc).parse() {
            metadata.insert("traceparent", v);
        }
    }
}

/// A stream's answers, in request order; the first error ends it.
pub struct Answers<R>(mpsc::Receiver<Result<R, Status>>);

impl<R> Stream for Answers<R> {
    type Item = Result<R, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A stream message's spawned call, aborted when dropped: a stream that ends (the client went
/// away, or an earlier message failed) takes its calls' inputs out of the queue.
struct Spawned<R>(JoinHandle<Result<R, Status>>);

impl<R> Future for Spawned<R> {
    type Output = Result<R, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|_| Err(Status::internal("internal server error"))))
    }
}

impl<R> Drop for Spawned<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The class the call's `x-priority` metadata names, if any.
fn priority(headers: &HeaderMap) -> Result<Option<Priority>, ApiError> {
    let Some(value) = headers.get(PRIORITY_HEADER) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::BadRequest(format!("{PRIORITY_HEADER}: not ASCII")))?;
    Priority::parse(value).map_err(|e| ApiError::BadRequest(format!("{PRIORITY_HEADER}: {e}")))
}

/// The client's request id, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    match given {
        Some(id) => id.to_string(),
        None => {
            let made = MakeRequestUuid.make_request_id(&axum::http::Request::new(()));
            made.and_then(|id| id.header_value().to_str().ok().map(str::to_string)).unwrap_or_default()
        }
    }
}

/// `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit, `H M S m u n`).
fn grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The call's log line and metrics, written when the call ends, answered or not.
struct Line {
    edge_metrics: Arc<crate::telemetry::Metrics>,
    method: &'static str,
    request_id: String,
    started: Instant,
    span: Span,
    outcome: Option<(Code, Option<BatchStats>)>,
}

impl Drop for Line {
    fn drop(&mut self) {
        let (code, batch) = self.outcome.unwrap_or((Code::Cancelled, None));
        let elapsed = self.started.elapsed();
        let name = code_name(code);
        self.edge_metrics.grpc_requests.with_label_values(&[self.method, name]).inc();
        self.edge_metrics.grpc_request_duration.with_label_values(&[self.method]).observe(elapsed.as_secs_f64());
        let span = &self.span;
        span.record("rpc.grpc.status_code", code as i64);
        if matches!(code, Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented) {
            span.record("otel.status_code", "ERROR");
        }
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let trace_id = traces::trace_id(span);
        let queue_wait_ms = batch.map(|b| b.queue_wait.as_secs_f64() * 1000.0);
        let batch_size = batch.map(|b| b.batch_size as u64);
        let (route, request_id, status) = (self.method, &self.request_id, name);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    parent: span, $level, protocol = "grpc", route, status, latency_ms, queue_wait_ms, batch_size,
                    request_id, trace_id, "request"
                )
            };
        }
        // Probes come every few seconds and say little.
        if route.starts_with("/grpc.health.v1.") {
            line!(tracing::Level::DEBUG);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

/// The status code's name as gRPC writes it (`OK`, `DEADLINE_EXCEEDED`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_is_read_in_every_unit_and_garbage_is_ignored() {
        let t = |s: &'static str| grpc_timeout(&HeaderValue::from_static(s));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "5", "5x", "-5S", "123456789S"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
