//! Serving until a shutdown signal, then the Kubernetes drain: not ready at once, keep serving for
//! the drain delay (endpoints controllers and load balancers catch up), stop accepting, finish every
//! accepted request (bounded by the shutdown timeout), stop the batcher and join the worker.
//!
//! The listener serves from before the model loads (live 200, ready 503, `/metrics`), so a loading
//! or stuck pod is visible; a load failure ends the process with its reason.

mod connections;
pub mod health;
mod write_timeout;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::app::{App, StartError};
use crate::config::LifecycleConfig;
pub use connections::ConnectionLimits;

/// How serving ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    /// The shutdown timeout passed with requests still in flight: they were cut off.
    #[error("shutdown timeout ({}) passed with requests still in flight; they were abandoned", humantime::format_duration(*.0))]
    Unfinished(Duration),
}

/// Serves `app` on `listener` (and its gRPC services on `grpc`) while its model loads and after,
/// until SIGTERM/SIGINT; then shuts down gracefully: readiness (and gRPC health) flips first, then
/// after the drain delay both listeners close and the requests and RPCs in flight finish. A second signal exits at once. Fails when the model cannot be loaded, and when
/// the shutdown timeout cuts accepted requests off (so the exit status says so).
pub async fn serve(
    app: App,
    listener: TcpListener,
    grpc: Option<TcpListener>,
    config: LifecycleConfig,
) -> Result<(), ServeError> {
    let App { router, health, loader, metrics, grpc: grpc_server } = app;
    let closing = Arc::new(Notify::new());
    // Set when the listeners close: the gRPC server stops accepting then, with the HTTP one.
    let (closed, closed_seen) = tokio::sync::watch::channel(false);
    let drain = {
        let (closing, health) = (closing.clone(), health.clone());
        async move {
            shutdown_signal().await;
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("second shutdown signal: exiting now");
                std::process::exit(130);
            });
            // Readiness flips before the listener closes so endpoints drain first. A server that
            // never became ready was never an endpoint: no delay.
            let delay = if health.is_loaded() { config.drain_delay } else { Duration::ZERO };
            health.start_draining();
            tracing::info!(drain_delay = ?delay, "shutdown signal: not ready, still serving");
            tokio::time::sleep(delay).await;
            tracing::info!("closing the listener and idle connections; finishing requests in flight");
            closing.notify_one();
            let _ = closed.send(true);
        }
    };
    let http = connections::serve(listener, router, config.connections, metrics, drain);
    let grpc = async move {
        if let (Some(server), Some(listener)) = (grpc_server, grpc) {
            let mut closed_seen = closed_seen;
            server.serve(listener, async move { drop(closed_seen.wait_for(|c| *c).await) }).await;
        }
    };
    let server = async {
        tokio::join!(http, grpc);
    };
    tokio::pin!(server);
    let backend = tokio::select! {
        loaded = loader.load() => loaded?,
        // A signal while loading: the drain ran, nothing was ever served by a model.
        () = &mut server => {
            tracing::info!("shut down before the model was ready");
            return Ok(());
        }
    };
    tokio::select! {
        () = &mut server => {},
        () = async {
            closing.notified().await;
            tokio::time::sleep(config.shutdown_timeout).await;
        } => {
            tracing::error!(timeout = ?config.shutdown_timeout, "shutdown timeout: abandoning requests in flight");
            return Err(ServeError::Unfinished(config.shutdown_timeout));
        }
    }
    // Every handler is done and the router (with the service and the batcher's senders) dropped:
    // the batcher empties its queue and releases the worker, which ends after its last batch.
    let _ = backend.batcher_task.await;
    let worker = backend.worker;
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
