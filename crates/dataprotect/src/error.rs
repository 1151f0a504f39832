//! Errors of the data-protection engine. Each carries a stable code documented under
//! `docs/errors/`. Messages never contain the scanned text.

use amas_types::codes;

/// Errors a caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum DataProtectError {
    /// AMAS-DP-0001: the data-protection configuration is unreadable or invalid.
    #[error("AMAS-DP-0001: invalid data-protection configuration ({source_name}): {message}")]
    Config {
        source_name: String,
        message: String,
    },
    /// AMAS-DP-0002: a JSON document nests deeper than the configured limit.
    #[error("AMAS-DP-0002: JSON document nests deeper than the limit of {limit} levels")]
    JsonTooDeep { limit: usize },
    /// AMAS-DP-0003: the input is larger than the configured limit.
    #[error("AMAS-DP-0003: input of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    /// AMAS-DP-0004: the input is not valid UTF-8.
    #[error("AMAS-DP-0004: input is not valid UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    /// AMAS-DP-0005: the input is not a valid JSON document.
    #[error("AMAS-DP-0005: input is not valid JSON: line {line}, column {column}")]
    InvalidJson { line: usize, column: usize },
}

impl DataProtectError {
    /// The stable public code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => codes::DP_CONFIG,
            Self::JsonTooDeep { .. } => codes::DP_TOO_DEEP,
            Self::TooLarge { .. } => codes::DP_TOO_LARGE,
            Self::InvalidUtf8 { .. } => codes::DP_NOT_UTF8,
            Self::InvalidJson { .. } => codes::DP_NOT_JSON,
        }
    }
}
