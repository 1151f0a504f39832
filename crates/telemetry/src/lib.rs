//! Telemetry: the tracing subscriber (JSON logs carrying trace ids, OTLP export when
//! configured) and the Prometheus registry with every metric AMAS exports.

mod logging;
pub mod metrics;
pub mod propagation;
pub mod slo;

pub use logging::TracingError;
pub use logging::{TelemetryGuard, current_trace_id, init_tracing};
pub use metrics::Metrics;
