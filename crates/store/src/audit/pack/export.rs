//! Writing an evidence pack from a live log: the records in scope, the one checkpoint (with a
//! Merkle root, preferably one the witness also holds) that covers the last of them, and each
//! record's inclusion proof against it.

use std::collections::HashSet;
use std::io::Write;

use sha2::{Digest, Sha256};

use super::{FORMAT, Line, Manifest, Proof, Scope, VERSION, bundles_of};
use crate::StoreError;
use crate::audit::checkpoint::{Checkpoint, CheckpointVerifier, Ed25519Verifier};
use crate::audit::merkle::{self, Tree};
use crate::audit::witness::WitnessLog;
use crate::audit::{AuditLog, AuditQuery, StoredAuditRecord, chain};
use amas_types::codes;

/// Records read per round trip.
const PAGE: u32 = 1000;
/// Hashes read per round trip while building the tree.
const LINK_PAGE: u32 = 10_000;

/// What to put in a pack.
#[derive(Debug)]
pub struct ExportOptions<'a> {
    pub scope: Scope,
    /// The public keys of the log's checkpoints; written into the pack.
    pub keys: &'a Ed25519Verifier,
    /// The witness, whose checkpoints are preferred as anchors.
    pub witness: Option<&'a WitnessLog>,
    /// What writes the pack (`amas 0.1.0`).
    pub generator: &'a str,
}

/// Why no pack was written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The scope holds no record.
    #[error("no audit record matches the scope")]
    Empty,
    /// The newest record in scope is after the last usable checkpoint.
    #[error(
        "record {last_seq} is not covered yet by a signed checkpoint with a tree root: the \
         server signs one within `audit.checkpoint_interval` of its last record, and at \
         shutdown; export again then"
    )]
    NotCovered { last_seq: u64 },
    /// The log does not agree with the checkpoint chosen as anchor.
    #[error(
        "the audit log does not match its checkpoint at record {seq}: {detail}; run `amas audit verify`"
    )]
    Mismatch { seq: u64, detail: String },
    #[error("cannot write the pack: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExportError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty | Self::NotCovered { .. } | Self::Io(_) => codes::AUDIT_PACK_UNWRITABLE,
            Self::Mismatch { .. } => codes::AUDIT_BROKEN,
            Self::Store(e) => e.code(),
        }
    }
}

/// Writes the pack of `options.scope` from `log` to `out`; returns its manifest.
///
/// # Errors
/// See [`ExportError`]; nothing useful is in `out` after an error.
pub async fn export_pack(
    log: &dyn AuditLog,
    options: &ExportOptions<'_>,
    out: &mut dyn Write,
) -> Result<Manifest, ExportError> {
    let records = records_in(log, &options.scope).await?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return Err(ExportError::Empty);
    };
    let (first_seq, last_seq) = (first.seq, last.seq);
    let (anchor, witnessed) = anchor(log, options, last_seq).await?;
    let tree = tree_of(log, &anchor).await?;
    let mut lines = Vec::with_capacity(records.len() + 5);
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        created_at: chain::now(),
        generator: options.generator.to_owned(),
        scope: options.scope.clone(),
        records: records.len() as u64,
        checkpoints: 1,
        first_seq,
        last_seq,
    };
    lines.push(Line::Manifest {
        manifest: manifest.clone(),
    });
    lines.push(Line::PublicKeys {
        jwks: options.keys.jwks(),
    });
    lines.push(Line::PolicyBundles {
        bundles: bundles_of(&records),
    });
    lines.push(Line::Checkpoint {
        checkpoint: anchor.clone(),
        witnessed,
    });
    for record in records {
        let leaf = merkle::leaf(&record.hash);
        let path = tree.proof(record.seq - 1);
        let (Some(leaf), Some(path)) = (leaf, path) else {
            return Err(ExportError::Mismatch {
                seq: record.seq,
                detail: "the record is not in the tree".to_owned(),
            });
        };
        if tree.leaf(record.seq - 1) != Some(leaf) {
            return Err(ExportError::Mismatch {
                seq: record.seq,
                detail: "the record's hash is not the one in the tree".to_owned(),
            });
        }
        let proof = Proof {
            checkpoint_seq: anchor.up_to_seq,
            key_id: anchor.key_id.clone(),
            path: path.iter().map(merkle::to_hex).collect(),
        };
        lines.push(Line::Record {
            record: Box::new(record),
            proof,
        });
    }
    write_lines(&lines, out)?;
    Ok(manifest)
}

async fn records_in(
    log: &dyn AuditLog,
    scope: &Scope,
) -> Result<Vec<StoredAuditRecord>, StoreError> {
    let mut query = AuditQuery {
        limit: PAGE,
        ..AuditQuery::default()
    };
    match scope {
        Scope::Task { task_id } => query.task_id = Some(*task_id),
        Scope::Time { since, until } => {
            query.since = *since;
            query.until = *until;
        }
    }
    let mut out = Vec::new();
    loop {
        let page = log.query(&query).await?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        out.extend(page);
        query.from_seq = last + 1;
    }
    Ok(out)
}

/// The checkpoint to prove against: valid, with a tree root, covering `last_seq`; one the
/// witness holds before one it does not, then the nearest.
async fn anchor(
    log: &dyn AuditLog,
    options: &ExportOptions<'_>,
    last_seq: u64,
) -> Result<(Checkpoint, bool), ExportError> {
    let key = |c: &Checkpoint| (c.up_to_seq, c.key_id.clone(), c.signature.clone());
    let witnessed: HashSet<_> = options
        .witness
        .map(|w| w.checkpoints.iter().map(key).collect())
        .unwrap_or_default();
    let mut candidates = log.checkpoints(last_seq, None).await?;
    if let Some(w) = options.witness {
        candidates.extend(w.checkpoints.iter().cloned());
    }
    candidates
        .into_iter()
        .filter(|c| c.up_to_seq >= last_seq && c.tree_root.is_some())
        .filter(|c| c.verify(options.keys as &dyn CheckpointVerifier).is_ok())
        .map(|c| {
            let seen = witnessed.contains(&key(&c));
            (c, seen)
        })
        .min_by_key(|(c, seen)| (!seen, c.up_to_seq))
        .ok_or(ExportError::NotCovered { last_seq })
}

/// The tree of the records `1..=anchor.up_to_seq`, checked against the anchor.
async fn tree_of(log: &dyn AuditLog, anchor: &Checkpoint) -> Result<Tree, ExportError> {
    let size = anchor.up_to_seq;
    let mismatch = |seq: u64, detail: &str| ExportError::Mismatch {
        seq,
        detail: detail.to_owned(),
    };
    let mut leaves = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut next = 1;
    while next <= size {
        let page = log.links(next, size, LINK_PAGE).await?;
        if page.is_empty() {
            return Err(mismatch(next, "the record is missing"));
        }
        for link in page {
            if link.seq != next {
                return Err(mismatch(next, "the record is missing"));
            }
            if link.seq == size && link.hash != anchor.hash {
                return Err(mismatch(size, "the checkpoint names another hash"));
            }
            let leaf = merkle::leaf(&link.hash)
                .ok_or_else(|| mismatch(link.seq, "the record's hash is malformed"))?;
            leaves.push(leaf);
            next += 1;
        }
    }
    let tree = Tree::new(leaves);
    if anchor.tree_root.as_deref() != Some(merkle::to_hex(&tree.root()).as_str()) {
        return Err(mismatch(size, "the checkpoint signs another tree root"));
    }
    Ok(tree)
}

/// Writes `lines`, then the end line with their count and digest.
fn write_lines(lines: &[Line], out: &mut dyn Write) -> Result<(), ExportError> {
    let mut digest = Sha256::new();
    for line in lines {
        let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        digest.update(&bytes);
        out.write_all(&bytes)?;
    }
    let end = Line::End {
        lines: lines.len() as u64,
        sha256: chain::hex(&digest.finalize()),
    };
    let mut bytes = serde_json::to_vec(&end).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    out.flush()?;
    Ok(())
}
