//! Serving until a shutdown signal, then the Kubernetes drain: not ready at once, keep serving for
//! the drain delay (endpoints controllers and load balancers catch up), stop accepting, finish every
//! accepted request (bounded by the shutdown timeout), stop the batcher and join the worker.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::app::App;
use crate::config::LifecycleConfig;

/// Serves `app` on `listener` until SIGTERM/SIGINT, then shuts down gracefully.
pub async fn serve(app: App, listener: TcpListener, config: LifecycleConfig) -> anyhow::Result<()> {
    let App { router, health, worker, batcher_task } = app;
    let closing = Arc::new(Notify::new());
    let drain = {
        let closing = closing.clone();
        async move {
            shutdown_signal().await;
            // Readiness flips before the listener closes so endpoints drain first.
            health.start_draining();
            tracing::info!(drain_delay = ?config.drain_delay, "shutdown signal: not ready, still serving");
            tokio::time::sleep(config.drain_delay).await;
            tracing::info!("closing the listener; finishing accepted requests");
            closing.notify_one();
        }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(drain);
    let server = async move { server.await.map_err(anyhow::Error::from) };
    tokio::select! {
        result = server => result?,
        () = async {
            closing.notified().await;
            tokio::time::sleep(config.shutdown_timeout).await;
        } => {
            tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown timeout: leaving unfinished requests");
            return Ok(());
        }
    }
    // Every handler is done and the router (with the batcher's senders) dropped: the batcher
    // empties its queue and releases the worker, which ends after its last batch.
    let _ = batcher_task.await;
    tokio::task::spawn_blocking(move || worker.join()).await?;
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
