//! pipeserve: parse the configuration, start logging, serve, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use pipeserve::app::App;
use pipeserve::config::Config;
use pipeserve::telemetry;

fn main() -> ExitCode {
    let config = Config::parse();
    // Before any thread exists: the math libraries read their thread settings from the environment.
    pipeserve::threads::configure(config.model_threads);
    telemetry::init_logging(config.json_logs);
    tracing::info!(config = ?config, "starting pipeserve {}", env!("CARGO_PKG_VERSION"));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pipeserve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
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
