//! Serving until a shutdown signal, then the Kubernetes drain: not ready at once, keep serving for
//! the drain delay (endpoints controllers and load balancers catch up), stop accepting, finish every
//! accepted request (bounded by the shutdown timeout), stop the batcher and join the worker.
//!
//! The listener serves from before the model loads (live 200, ready 503, `/metrics`), so a loading
//! or stuck pod is visible; a load failure ends the process with its reason.

pub mod health;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::app::{App, StartError};
use crate::config::LifecycleConfig;

/// Serves `app` on `listener` while its model loads and after, until SIGTERM/SIGINT; then shuts
/// down gracefully. Fails when the model cannot be loaded.
pub async fn serve(app: App, listener: TcpListener, config: LifecycleConfig) -> Result<(), StartError> {
    let App { router, health, loader } = app;
    let closing = Arc::new(Notify::new());
    let drain = {
        let (closing, health) = (closing.clone(), health.clone());
        async move {
            shutdown_signal().await;
            // Readiness flips before the listener closes so endpoints drain first. A server that
            // never became ready was never an endpoint: no delay.
            let delay = if health.is_loaded() { config.drain_delay } else { Duration::ZERO };
            health.start_draining();
            tracing::info!(drain_delay = ?delay, "shutdown signal: not ready, still serving");
            tokio::time::sleep(delay).await;
            tracing::info!("closing the listener; finishing accepted requests");
            closing.notify_one();
        }
    };
    let server = serve_connections(listener, router, config.header_read_timeout, drain);
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
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown timeout: leaving unfinished requests");
            return Ok(());
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

/// The accept loop. `axum::serve` sets no header read timeout, so a client sending its headers a
/// byte a minute would hold a connection and a task forever; hyper's HTTP/1 builder with a timer
/// closes such connections. When `drain` completes: stop accepting, let every connection finish
/// its request in flight (idle keep-alive connections close), then return, dropping the router.
async fn serve_connections(
    listener: TcpListener,
    router: axum::Router,
    header_read_timeout: Duration,
    drain: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(drain);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut drain => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    drop(router);
    graceful.shutdown().await;
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
