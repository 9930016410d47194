//! A stand-in for the Hugging Face hub on loopback: serves a local model folder the way the hub's
//! `resolve` endpoint does (ranges, etag, commit header), records what clients asked with, and can
//! hold the weights back so a test sees the server while it loads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

/// One request the hub saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub revision: String,
    pub file: String,
    pub authorization: Option<String>,
}

#[derive(Clone)]
struct HubState {
    folder: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    open: watch::Receiver<bool>,
}

/// A running fake hub; stops with the test's runtime.
pub struct FakeHub {
    pub address: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: watch::Sender<bool>,
}

impl FakeHub {
    /// Serves `folder` as every repository; the weights wait until [`FakeHub::release`] when `held`.
    pub async fn start(folder: PathBuf, held: bool) -> Self {
        let (gate, open) = watch::channel(!held);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = HubState { folder, seen: seen.clone(), open };
        let app = Router::new().route("/{org}/{repo}/resolve/{revision}/{*file}", get(resolve)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { address, seen, gate }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Lets the weights go out.
    pub fn release(&self) {
        let _ = self.gate.send(true);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn resolve(
    State(state): State<HubState>,
    Path((_org, _repo, revision, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    state.seen.lock().unwrap().push(Seen { revision, file: file.clone(), authorization });
    if file.ends_with(".safetensors") {
        let mut open = state.open.clone();
        let _ = open.wait_for(|open| *open).await;
    }
    // Small test models: a blocking read is fine here.
    let Ok(bytes) = std::fs::read(state.folder.join(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let start: usize = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
        .min(bytes.len());
    let end = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some("bytes=0-0") => 1.min(bytes.len()),
        _ => bytes.len(),
    };
    let range = format!("bytes {start}-{}/{}", end.saturating_sub(1), bytes.len());
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_RANGE, range),
            (header::ETAG, format!("\"etag-{}-{}\"", file.replace('/', "_"), bytes.len())),
            (header::HeaderName::from_static("x-repo-commit"), "0123456789abcdef0123456789abcdef01234567".to_string()),
        ],
        bytes[start..end].to_vec(),
    )
        .into_response()
}
