//! pipeserve: parse the configuration, start logging, serve, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use pipeserve::app::App;
use pipeserve::config::Config;
use pipeserve::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init_logging(config.json_logs);
    tracing::info!(config = ?config, "starting pipeserve {}", env!("CARGO_PKG_VERSION"));
    match run(config).await {
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
    let app = App::build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.addr())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.addr()))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    pipeserve::lifecycle::serve(app, listener, config.lifecycle()).await
}
