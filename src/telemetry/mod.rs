//! Logs, traces and metrics.

pub mod metrics;

use tracing_subscriber::{fmt, EnvFilter};

pub use metrics::Metrics;

/// Installs the log subscriber: text by default, JSON lines with `json`; level from `RUST_LOG`
/// (default `info`).
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
