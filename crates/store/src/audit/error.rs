//! Errors of the audit writer, each with a stable public code documented under `docs/errors/`.

use super::checkpoint::SignError;
use crate::StoreError;
use amas_types::codes;

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The writer was shut down; records can no longer be accepted.
    #[error("the audit writer is shut down")]
    Closed,
    /// A checkpoint could not be signed.
    #[error("cannot sign an audit checkpoint: {0}")]
    Signing(#[from] SignError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuditError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Closed => codes::AUDIT_CLOSED,
            Self::Signing(_) => codes::AUDIT_CHECKPOINT_UNSIGNED,
            Self::Store(e) => e.code(),
        }
    }
}
