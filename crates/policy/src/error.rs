//! Typed errors of policy loading and test-case files. Evaluation never returns an error: it
//! fails closed into a deny [`crate::Decision`] instead.

use amas_types::codes;
use std::path::PathBuf;

/// Why a bundle or a test file could not be used. Messages never contain input documents.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// AMAS-POL-0001: a policy file or directory could not be read.
    #[error("AMAS-POL-0001: cannot read policy path {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// AMAS-POL-0002: a policy file does not parse or the bundle does not compile.
    #[error("AMAS-POL-0002: policy {file} does not compile: {message}")]
    Compile { file: String, message: String },
    /// AMAS-POL-0003: the bundle has no policies or misses a decision rule.
    #[error("AMAS-POL-0003: incomplete policy bundle: {message}")]
    Incomplete { message: String },
    /// AMAS-POL-0004: a YAML test-case file is unreadable or malformed.
    #[error("AMAS-POL-0004: bad policy test file {file}: {message}")]
    TestFile { file: String, message: String },
}

impl PolicyError {
    /// The stable error code (docs/errors/<code>.md).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Read { .. } => codes::POL_UNREADABLE,
            Self::Compile { .. } => codes::POL_COMPILE,
            Self::Incomplete { .. } => codes::POL_INCOMPLETE,
            Self::TestFile { .. } => codes::POL_BAD_TEST_FILE,
        }
    }
}
