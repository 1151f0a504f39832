//! Placeholder: filled by the tracing set-up.
