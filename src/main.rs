//! pipeserve: parse the configuration, start logging and tracing, serve, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use pipeserve::app::App;
use pipeserve::config::Config;
use pipeserve::telemetry;

/// mimalloc instead of glibc malloc: the model step allocates and frees activation buffers of
/// megabytes on every layer, which glibc hands back to the kernel (mmap/trim) and then faults in
/// again (its cost is in docs/benchmarks.md). mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    // Before any thread exists: the math libraries read their thread settings from the environment.
    pipeserve::threads::configure(config.model_threads_per_instance());
    // Blocking work (tokenization, post-processing, model loading) is CPU-bound: threads beyond a
    // few per core add no throughput, and each new one can take its own malloc arena, which grew
    // RSS over the soak with tokio's default of 512 (docs/reliability.md).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(2 * cores + 2).build();
    match runtime {
        Ok(runtime) => {
            let code = runtime.block_on(serve(config));
            // A load still running on the blocking pool (a shutdown signal during loading) must
            // not hold the exit.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            code
        }
        Err(e) => {
            eprintln!("pipeserve: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let telemetry = match telemetry::init(config.json_logs, &config.tracing()) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("pipeserve: cannot set up trace export: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = ?config, "starting pipeserve {}", env!("CARGO_PKG_VERSION"));
    let result = run(config).await;
    // Spans still buffered leave before the process does.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the problem, for `kubectl logs` and for humans.
            tracing::error!("{e}");
            // Some errors carry a backtrace after their first line (candle's, with RUST_BACKTRACE).
            let reason = e.to_string();
            eprintln!("pipeserve: {}", reason.lines().next().unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if config.download_only {
        let load = config.load();
        let dir = tokio::task::spawn_blocking(move || pipeserve::load::fetch(&load)).await??;
        tracing::info!(model = %config.model, path = %dir.display(), "model fetched; --download-only: exiting");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(config.addr())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr()))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let grpc = match config.grpc_addr() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for gRPC on {addr}: {e}"))?;
            tracing::info!(address = %listener.local_addr()?, "gRPC listening");
            Some(listener)
        }
        None => None,
    };
    let app = App::new(&config);
    Ok(pipeserve::lifecycle::serve(app, listener, grpc, config.lifecycle()).await?)
}
