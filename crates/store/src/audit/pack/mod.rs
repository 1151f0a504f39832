//! Evidence packs: the audit records of a task or a time range, with everything needed to check
//! them on another machine with nothing but this file (no data directory, no configuration, no
//! database): the checkpoint that covers them, a Merkle inclusion proof of each record against
//! that checkpoint's signed root, the public keys, and the policy bundles the decisions were
//! made under. `docs/audit.md#evidence-packs` describes the format line by line.
//!
//! The pack is one JSON-lines file: a manifest, the public keys, the policy bundles, the
//! checkpoints, the records with their proofs, and an end line with the line count and the
//! SHA-256 of every byte before it. One file travels and archives well; each line can be read
//! with any JSON tool; the end line catches any changed or missing byte, and the signatures
//! and proofs catch a changed pack whose end line was recomputed.

mod check;
mod export;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use amas_types::{TaskId, codes};

use super::checkpoint::Checkpoint;
use super::record::StoredAuditRecord;

pub use check::{PackReport, check_pack};
pub use export::{ExportError, ExportOptions, export_pack};

/// The `format` of the manifest.
pub const FORMAT: &str = "amas-evidence-pack";
/// The version of the format this code writes and reads.
pub const VERSION: u64 = 1;

/// Which records a pack holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every record of one task.
    Task { task_id: TaskId },
    /// Every record with `since <= timestamp < until` (either bound may be open).
    Time {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<DateTime<Utc>>,
    },
}

impl Scope {
    /// Whether `record` belongs in a pack of this scope.
    #[must_use]
    pub fn holds(&self, record: &StoredAuditRecord) -> bool {
        match self {
            Self::Task { task_id } => record.record.task_id == Some(*task_id),
            Self::Time { since, until } => {
                let at = record.record.timestamp;
                since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u)
            }
        }
    }
}

/// The first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    /// What wrote it (`amas 0.1.0`).
    pub generator: String,
    pub scope: Scope,
    pub records: u64,
    pub checkpoints: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A policy bundle the pack's decisions were made under, from the records' `policy` fields.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBundle {
    /// `sha256:<hex>` of the bundle.
    pub hash: String,
    pub version: String,
    /// How many of the pack's records name it, and the first and last of them.
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Where a record sits in the tree a checkpoint signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// The checkpoint (`up_to_seq`, `key_id`) whose `tree_root` the path leads to.
    pub checkpoint_seq: u64,
    pub key_id: String,
    /// The audit path, bottom up, lowercase hex (RFC 9162 section 2.1.3).
    pub path: Vec<String>,
}

/// One line of a pack, by its `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Manifest {
        manifest: Manifest,
    },
    /// The public keys that verify the checkpoints (a JWKS).
    PublicKeys {
        jwks: Value,
    },
    PolicyBundles {
        bundles: Vec<PolicyBundle>,
    },
    Checkpoint {
        checkpoint: Checkpoint,
        /// Whether the exporter found this checkpoint in the witness too.
        witnessed: bool,
    },
    Record {
        record: Box<StoredAuditRecord>,
        proof: Proof,
    },
    /// The last line: how many lines come before it and the SHA-256 (hex) of their bytes.
    End {
        lines: u64,
        sha256: String,
    },
}

/// Writing or checking a pack failed; `line` (1-based) says where, when it is one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PackError {
    pub line: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PackError {
    pub(crate) fn at(line: u64, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }

    pub(crate) fn whole(message: impl Into<String>) -> Self {
        Self {
            line: None,
            message: message.into(),
        }
    }

    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        codes::AUDIT_PACK_INVALID
    }
}

/// The policy bundles `records` name, by hash.
pub(crate) fn bundles_of<'a>(
    records: impl IntoIterator<Item = &'a StoredAuditRecord>,
) -> Vec<PolicyBundle> {
    let mut by_hash: std::collections::BTreeMap<(String, String), PolicyBundle> =
        std::collections::BTreeMap::new();
    for r in records {
        let Some(policy) = &r.record.policy else {
            continue;
        };
        by_hash
            .entry((policy.hash.clone(), policy.version.clone()))
            .and_modify(|b| {
                b.records += 1;
                b.first_seq = b.first_seq.min(r.seq);
                b.last_seq = b.last_seq.max(r.seq);
            })
            .or_insert_with(|| PolicyBundle {
                hash: policy.hash.clone(),
                version: policy.version.clone(),
                records: 1,
                first_seq: r.seq,
                last_seq: r.seq,
            });
    }
    by_hash.into_values().collect()
}

#[cfg(test)]
mod tests;
