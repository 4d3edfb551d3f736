//! Logging set-up: `tracing` with an env filter (`RUST_LOG`, default `info`).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
