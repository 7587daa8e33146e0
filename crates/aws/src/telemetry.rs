//! Structured JSON logs through `tracing`, one object per line, for CloudWatch Logs Insights.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber. `RUST_LOG` filters (default `info`). Safe to call twice.
pub fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
