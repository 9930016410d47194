//! pipeserve: parse the configuration, start logging and tracing, serve, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use pipeserve::app::App;
use pipeserve::config::Config;
use pipeserve::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
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
            eprintln!("pipeserve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let app = App::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.addr())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr()))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    pipeserve::lifecycle::serve(app, listener, config.lifecycle()).await
}
