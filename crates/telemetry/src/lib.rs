//! Telemetry: the tracing subscriber (JSON logs carrying trace ids, OTLP export when
//! configured) and the Prometheus registry with every metric AMAS exports.

mod logging;
pub mod metrics;

pub use logging::{TelemetryGuard, init_tracing, current_trace_id};
pub use metrics::Metrics;
