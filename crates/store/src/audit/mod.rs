//! The audit log: an append-only, hash-chained record of every governance decision and security
//! event, separate from the task journal, with signed checkpoints and a verifier that names the
//! first broken record. `docs/audit.md` describes the record, the encoding and the checks.
//!
//! Callers build an [`AuditRecord`] and hand it to an [`AuditWriter`], which batches appends off
//! the task's path and signs checkpoints with the audit key ([`keys`]), publishing each to the
//! [`witness`]es; [`verify`] walks the chain; [`pack`] writes and checks evidence packs that
//! verify offline ([`merkle`] proofs); both backends implement [`AuditLog`] and pass the
//! [`conformance`] suite.

mod chain;
mod checkpoint;
pub mod conformance;
mod error;
mod guards;
pub mod keys;
pub mod merkle;
pub mod pack;
pub(crate) mod postgres;
mod record;
mod row;
pub(crate) mod sqlite;
mod verify;
pub mod witness;
mod writer;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use amas_types::{TaskId, TenantId};

use crate::StoreError;

pub use chain::{
    ChainLink, ENCODING_VERSION, GENESIS_HASH, canonical_json, details_hash, record_hash, validate,
};
pub use checkpoint::{
    Checkpoint, CheckpointSigner, CheckpointVerifier, Ed25519Signer, Ed25519Verifier, SignError,
};
pub use error::AuditError;
pub use record::{
    AuditDecision, AuditPrincipal, AuditRecord, PolicyRef, StoredAuditRecord, TokenCounts,
    hash_payload,
};
pub use verify::{
    Broken, BrokenReason, CheckpointSource, VerifyOptions, VerifyReport, WitnessInput,
    WitnessSummary, verify, verify_with,
};
pub use writer::{AuditWriter, AuditWriterConfig, JournalListener, PendingAppend};

/// A stored record that no longer decodes (a column was changed to something AMAS never
/// writes). Verification reports it as broken instead of failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub seq: u64,
    pub reason: String,
}

/// One position of the chain as stored: the record, or why it cannot be read.
pub type ChainEntry = Result<StoredAuditRecord, UnreadableRecord>;

/// Which records to read: all filters combine; results are in seq order.
#[derive(Clone, Debug)]
pub struct AuditQuery {
    /// The first seq (inclusive); pass the last seq read + 1 to page.
    pub from_seq: u64,
    /// The last seq (inclusive).
    pub to_seq: Option<u64>,
    /// `timestamp >= since`.
    pub since: Option<DateTime<Utc>>,
    /// `timestamp < until`.
    pub until: Option<DateTime<Utc>>,
    pub tenant: Option<TenantId>,
    pub task_id: Option<TaskId>,
    pub trace_id: Option<String>,
    /// The principal's `sub`.
    pub principal: Option<String>,
    pub decision: Option<AuditDecision>,
    /// At most this many records (at least 1).
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            from_seq: 1,
            to_seq: None,
            since: None,
            until: None,
            tenant: None,
            task_id: None,
            trace_id: None,
            principal: None,
            decision: None,
            limit: 500,
        }
    }
}

/// The append-only, hash-chained audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `records` in one transaction after the current head, sealing each onto the chain
    /// (seq, `prev_hash`, `hash`). Concurrent appenders, in this process or others sharing the
    /// database, serialize so the chain never forks.
    ///
    /// # Errors
    /// [`StoreError::InvalidAppend`] for a record the log cannot store exactly (see
    /// [`validate`]); backend errors. Nothing is written on error.
    async fn append(&self, records: &[AuditRecord]) -> Result<Vec<StoredAuditRecord>, StoreError>;

    /// Records matching `query`, in seq order.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a matching record does not decode; backend errors.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError>;

    /// Up to `limit` chain positions with `from_seq <= seq <= to_seq`, in seq order, undecodable
    /// rows included as such: what [`verify`] reads.
    async fn chain(
        &self,
        from_seq: u64,
        to_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChainEntry>, StoreError>;

    /// The last record's seq and hash; `None` for an empty log.
    async fn head(&self) -> Result<Option<ChainLink>, StoreError>;

    /// The seq and hash of up to `limit` records with `from_seq <= seq <= to_seq`, in seq order:
    /// what the Merkle tree over the records is built from.
    async fn links(
        &self,
        from_seq: u64,
        to_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChainLink>, StoreError>;

    /// What is wrong with the database's append-only guards: each missing, disabled or
    /// rewritten trigger (or trigger function), in words. Empty when they are as installed.
    async fn guard_problems(&self) -> Result<Vec<String>, StoreError>;

    /// Stores a signed checkpoint. Storing the same (seq, key) twice keeps the first.
    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Checkpoints with `from_seq <= up_to_seq` (`<= to_seq` when given), by seq then key id.
    async fn checkpoints(
        &self,
        from_seq: u64,
        to_seq: Option<u64>,
    ) -> Result<Vec<Checkpoint>, StoreError>;

    /// The checkpoint with the highest seq.
    async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// For retention purges: erases the `details` of record `seq` and keeps its `details_hash`,
    /// so the chain still verifies. Returns false for an unknown or already redacted record.
    async fn redact_details(&self, seq: u64) -> Result<bool, StoreError>;
}
