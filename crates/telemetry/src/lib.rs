//! Telemetry: the tracing subscriber (JSON logs carrying trace ids, OTLP export when
//! configured), the Prometheus registry with every metric AMAS exports, and the tracker every
//! background task is spawned through (named, drained at shutdown).

mod logging;
pub mod metrics;
pub mod propagation;
pub mod slo;
pub mod tasks;

pub use logging::TracingError;
pub use logging::{TelemetryGuard, current_trace_id, init_tracing};
pub use metrics::Metrics;
