//! The request body, read whole before anything else sees the request (the handlers buffer it
//! anyway), under two bounds:
//! - size: past `--body-limit` the request ends with 413;
//! - time: the body must arrive within `--body-read-timeout` of the headers, or the request ends
//!   with 408, so a client trickling its body cannot hold a connection and a handler.
//!
//! An oversized body is read to its end and thrown away before the 413 leaves (up to
//! [`DRAIN_LIMIT`] and the read deadline), the way nginx's lingering close does. Answering early
//! and closing with the rest of the body unread makes the kernel reset the connection, and the
//! client, still writing, sees a broken pipe instead of the 413. tower-http's body limit answers
//! early on a large `Content-Length`, which is why the limit is kept here and not there.
//! The exception is a client that sent `Expect: 100-continue` and is waiting for the go-ahead
//! before it sends its body: it gets the 413 at once and never sends the body.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::time::{timeout_at, Instant};

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::error::{close_connection, ApiError};
use crate::infer::InferError;

/// Most bytes of an oversized body read and thrown away so that its client sees the 413; a
/// declared length above it is refused at once and the connection closed.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BodyPolicy {
    pub limit: usize,
    pub read_timeout: Duration,
    /// Bytes of request bodies held at once across all connections: a body holds its bytes from
    /// arrival until its request is answered. Past it: 503 and the connection closes.
    pub buffered: Arc<Semaphore>,
}

pub async fn layer(State(policy): State<BodyPolicy>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = content_length(&parts.headers);
    if declared.is_some_and(|n| n > policy.limit) && (expects_continue(&parts.headers) || declared > Some(DRAIN_LIMIT))
    {
        return ApiError::PayloadTooLarge { limit: policy.limit, drained: false }.into_response();
    }
    let deadline = Instant::now() + policy.read_timeout;
    match read(body, declared, &policy, deadline).await {
        Ok((bytes, _held)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(Failure::Busy) => {
            let mut response =
                ApiError::Infer(InferError::Overloaded { retry_after: Duration::from_secs(1) }).into_response();
            close_connection(&mut response);
            response
        }
        Err(Failure::TooLarge { drained }) => {
            ApiError::PayloadTooLarge { limit: policy.limit, drained }.into_response()
        }
        Err(Failure::Broken) => ApiError::BadRequest("the request body could not be read".into()).into_response(),
        Err(Failure::Gone) => ApiError::ClientGone.into_response(),
        Err(Failure::Late) => ApiError::BodyTimeout(policy.read_timeout).into_response(),
    }
}

enum Failure {
    /// Over the limit; `drained` when the rest of the body was read, so the connection is clean.
    TooLarge {
        drained: bool,
    },
    Broken,
    /// The client closed the connection before its body was complete.
    Gone,
    Late,
    /// Bodies already buffered across connections hold the whole budget.
    Busy,
}

/// Reads the body frame by frame: kept (and its bytes taken from the shared budget) while under
/// the limit, counted and dropped past it.
async fn read(
    mut body: Body,
    declared: Option<usize>,
    policy: &BodyPolicy,
    deadline: Instant,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Failure> {
    let limit = policy.limit;
    let mut kept = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut seen = 0usize;
    loop {
        let over = seen > limit || declared.is_some_and(|n| n > limit);
        let frame = match timeout_at(deadline, body.frame()).await {
            Ok(None) if over => return Err(Failure::TooLarge { drained: true }),
            Ok(None) => return Ok((kept.into(), held)),
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_))) | Err(_) if over => return Err(Failure::TooLarge { drained: false }),
            Ok(Some(Err(e))) if client_left(&e) => return Err(Failure::Gone),
            Ok(Some(Err(_))) => return Err(Failure::Broken),
            Err(_) => return Err(Failure::Late),
        };
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Err(Failure::TooLarge { drained: false });
        }
        if seen <= limit {
            let permit = u32::try_from(data.len())
                .ok()
                .and_then(|n| policy.buffered.clone().try_acquire_many_owned(n).ok())
                .ok_or(Failure::Busy)?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            kept.extend_from_slice(&data);
        } else {
            kept = Vec::new();
            held = None;
        }
    }
}

/// True when a body error means the client went away (not that it sent something malformed).
fn client_left(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<hyper::Error>())
        .is_some_and(|e| e.is_incomplete_message() || e.is_closed())
}

/// Largest body read and thrown away so that a refused request (401, 503) leaves its connection
/// usable for the client's next request.
const DISCARD_LIMIT: usize = 64 * 1024;
/// Longest time spent reading a refused request's body.
const DISCARD_TIME: Duration = Duration::from_secs(1);

/// Answers `request` with `refusal` without running it. A small body is read to its end first,
/// so a keep-alive client's connection stays in step; a larger or slow one closes the connection
/// instead (`connection: close`), never leaving the client writing into a reset.
pub async fn refuse(request: Request, refusal: ApiError) -> Response {
    let (parts, mut body) = request.into_parts();
    let drained = match content_length(&parts.headers) {
        Some(n) if n > DISCARD_LIMIT => false,
        _ => {
            let deadline = Instant::now() + DISCARD_TIME;
            let mut seen = 0usize;
            loop {
                match timeout_at(deadline, body.frame()).await {
                    Ok(None) => break true,
                    Ok(Some(Ok(frame))) => {
                        seen += frame.data_ref().map_or(0, |d| d.len());
                        if seen > DISCARD_LIMIT {
                            break false;
                        }
                    }
                    Ok(Some(Err(_))) | Err(_) => break false,
                }
            }
        }
    };
    let mut response = refusal.into_response();
    if !drained {
        close_connection(&mut response);
    }
    response
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers.get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}
