//! Witnesses: every checkpoint the writer signs is also written outside the database, so
//! someone who can rewrite the database (and even re-sign checkpoints with a stolen audit key)
//! cannot also rewrite what was witnessed. `verify` checks the log against a witness's record:
//! a truncated tail, a truncated table or a rewritten record no longer matches it.
//!
//! A witness is a narrow trait ([`Witness`]) with a config enum ([`WitnessConfig`]) and a
//! factory ([`open`]): an append-only file (the default, [`FileWitness`]) and an HTTP sink
//! ([`HttpWitness`]: a WORM store or log collector that keeps what it is sent). A syslog sink
//! would be a third implementation of the same trait. Only the file can be read back by
//! `amas audit verify`; a remote sink is checked by exporting what it holds to a file.

mod file;
mod http;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::checkpoint::Checkpoint;
use amas_types::codes;

pub use file::FileWitness;
pub use http::HttpWitness;

/// Publishing to or reading a witness failed; the message names the witness, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WitnessError(pub String);

impl WitnessError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        codes::AUDIT_WITNESS
    }
}

/// Somewhere outside the database that keeps every signed checkpoint.
#[async_trait]
pub trait Witness: Send + Sync + fmt::Debug {
    /// Where the checkpoints go, for logs and reports (`file:/var/lib/amas/audit-witness.jsonl`).
    fn describe(&self) -> String;

    /// Publishes one checkpoint, after it is stored in the database. It must not hold the
    /// writer up for long: a remote sink queues and sends in the background.
    ///
    /// # Errors
    /// The checkpoint could not be written (or queued).
    async fn publish(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError>;

    /// Delivers what is still queued (bounded by the sink's own timeout); called at shutdown
    /// after the last checkpoint.
    ///
    /// # Errors
    /// Checkpoints that could not be delivered.
    async fn close(&self) -> Result<(), WitnessError> {
        Ok(())
    }
}

/// Which witnesses to publish to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessConfig {
    /// An append-only file: one JSON line per checkpoint, fsynced.
    File { path: PathBuf },
    /// `POST` of each checkpoint as JSON to `url`; a 2xx answer means it is kept.
    Http { url: String, timeout: Duration },
}

/// The witness `config` describes; a file is created (owner-only) now, so a path that cannot
/// be written fails at start rather than at the first checkpoint.
///
/// # Errors
/// The file cannot be created or opened for appending; the URL is not `http(s)://`.
pub fn open(config: &WitnessConfig) -> Result<Arc<dyn Witness>, WitnessError> {
    let witness: Arc<dyn Witness> = match config {
        WitnessConfig::File { path } => Arc::new(FileWitness::open(path)?),
        WitnessConfig::Http { url, timeout } => Arc::new(HttpWitness::new(url, *timeout)?),
    };
    Ok(witness)
}

/// What a witness file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessLog {
    /// Where it was read from (`file:<path>`).
    pub source: String,
    /// Every checkpoint, in the order written.
    pub checkpoints: Vec<Checkpoint>,
    /// The file ended in an incomplete line (a crash while appending); it was ignored.
    pub torn_tail: bool,
}

/// Reads the witness file at `path`; `None` when it does not exist.
///
/// # Errors
/// The file cannot be read, or a complete line is not a checkpoint (the file was edited).
pub fn read_witness_file(path: &Path) -> Result<Option<WitnessLog>, WitnessError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(WitnessError(format!(
                "cannot read the audit witness {}: {e}",
                path.display()
            )));
        }
    };
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After the last newline: empty when the file ends cleanly, else a torn append.
    let torn_tail = lines.pop().is_some_and(|rest| !rest.is_empty());
    let mut checkpoints = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let cp = serde_json::from_slice::<Checkpoint>(line).map_err(|e| {
            WitnessError(format!(
                "line {} of the audit witness {} is not a checkpoint ({e}): the file was edited \
                 or damaged",
                i + 1,
                path.display()
            ))
        })?;
        checkpoints.push(cp);
    }
    Ok(Some(WitnessLog {
        source: format!("file:{}", path.display()),
        checkpoints,
        torn_tail,
    }))
}
