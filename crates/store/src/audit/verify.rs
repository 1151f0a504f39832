//! Verification: walk a range of the chain and its checkpoints and name the first record that
//! is not as it was written.

use std::collections::BTreeMap;

use serde::Serialize;

use super::AuditLog;
use super::chain::{self, ChainLink, GENESIS_HASH};
use super::checkpoint::{Checkpoint, CheckpointVerifier};
use super::record::StoredAuditRecord;
use crate::StoreError;

/// Records read per round trip.
const PAGE: u32 = 1000;

/// Why verification stopped at a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenReason {
    /// The record's fields do not give its stored hash: it was changed (or moved to another seq).
    Altered,
    /// The stored details do not match the `details_hash` the record hash covers.
    DetailsAltered,
    /// A seq is missing: a record was deleted.
    Missing,
    /// `prev_hash` is not the previous record's hash: records were inserted, removed or reordered
    /// and the hashes recomputed.
    Relinked,
    /// The row does not decode at all.
    Unreadable,
    /// A signed checkpoint names another hash for this seq: the chain up to here was rewritten.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify: it was forged or changed.
    CheckpointSignature,
    /// A checkpoint covers a seq past the end of the log: records were deleted from the end.
    CheckpointBeyondHead,
}

/// The first broken record (or checkpoint position).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Broken {
    pub seq: u64,
    pub reason: BrokenReason,
    pub detail: String,
    /// The record as stored, when there is one to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<StoredAuditRecord>>,
}

/// What [`verify`] checked and found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyReport {
    pub from_seq: u64,
    /// The last seq the range covered (the log's head when the range asked for more).
    pub to_seq: u64,
    pub records_checked: u64,
    pub checkpoints_checked: u64,
    /// The highest seq covered by a valid checkpoint in the range; records after it are only as
    /// trustworthy as the chain itself.
    pub last_checkpoint: Option<u64>,
    pub head: Option<ChainLink>,
    /// `None` when the range is intact.
    pub broken: Option<Broken>,
}

impl VerifyReport {
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

fn broken(
    seq: u64,
    reason: BrokenReason,
    detail: String,
    record: Option<&StoredAuditRecord>,
) -> Broken {
    Broken {
        seq,
        reason,
        detail,
        record: record.map(|r| Box::new(r.clone())),
    }
}

/// Verifies records `from..=to` (`to` = the head when `None` or past it) and the checkpoints in
/// that range. Each record must hash to its stored hash, its details to its `details_hash`
/// (unless purged), link to its predecessor (for `from > 1`, to the stored hash of `from - 1`),
/// and follow it without a gap; each checkpoint must name the record's hash and carry a valid
/// signature. A checkpoint past the head means the end of the log was cut off.
///
/// # Errors
/// Backend errors only; everything found in the data is reported in [`VerifyReport::broken`].
pub async fn verify(
    log: &dyn AuditLog,
    verifier: &dyn CheckpointVerifier,
    from: u64,
    to: Option<u64>,
) -> Result<VerifyReport, StoreError> {
    let from = from.max(1);
    let head = log.head().await?;
    let head_seq = head.as_ref().map_or(0, |h| h.seq);
    let last = to.map_or(head_seq, |t| t.min(head_seq));
    let mut report = VerifyReport {
        from_seq: from,
        to_seq: last,
        records_checked: 0,
        checkpoints_checked: 0,
        last_checkpoint: None,
        head,
        broken: None,
    };
    let mut checkpoints: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
    for cp in log.checkpoints(from, to).await? {
        checkpoints.entry(cp.up_to_seq).or_default().push(cp);
    }
    report.broken = walk(log, verifier, &checkpoints, from, last, &mut report).await?;
    if report.broken.is_none()
        && let Some((&seq, _)) = checkpoints.range(head_seq.saturating_add(1)..).next()
    {
        report.broken = Some(broken(
            seq,
            BrokenReason::CheckpointBeyondHead,
            format!("a signed checkpoint covers record {seq} but the log ends at {head_seq}"),
            None,
        ));
    }
    Ok(report)
}

async fn walk(
    log: &dyn AuditLog,
    verifier: &dyn CheckpointVerifier,
    checkpoints: &BTreeMap<u64, Vec<Checkpoint>>,
    from: u64,
    last: u64,
    report: &mut VerifyReport,
) -> Result<Option<Broken>, StoreError> {
    if from > last {
        return Ok(None);
    }
    let mut prev = if from == 1 {
        GENESIS_HASH.to_owned()
    } else {
        let anchor = from - 1;
        match log.chain(anchor, anchor, 1).await?.into_iter().next() {
            Some(Ok(rec)) => rec.hash,
            Some(Err(u)) => {
                return Ok(Some(broken(
                    u.seq,
                    BrokenReason::Unreadable,
                    u.reason,
                    None,
                )));
            }
            None => {
                return Ok(Some(broken(
                    anchor,
                    BrokenReason::Missing,
                    format!("record {anchor}, which record {from} links to, is missing"),
                    None,
                )));
            }
        }
    };
    let mut expected = from;
    while expected <= last {
        let page = log.chain(expected, last, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for entry in page {
            let seq = match &entry {
                Ok(rec) => rec.seq,
                Err(u) => u.seq,
            };
            if seq != expected {
                return Ok(Some(broken(
                    expected,
                    BrokenReason::Missing,
                    format!("record {expected} is missing (the next stored record is {seq})"),
                    None,
                )));
            }
            let rec = match entry {
                Ok(rec) => rec,
                Err(u) => return Ok(Some(broken(seq, BrokenReason::Unreadable, u.reason, None))),
            };
            if let Some(found) = check_record(&rec, &prev) {
                return Ok(Some(found));
            }
            for cp in checkpoints.get(&seq).into_iter().flatten() {
                report.checkpoints_checked += 1;
                if cp.hash != rec.hash {
                    return Ok(Some(broken(
                        seq,
                        BrokenReason::CheckpointMismatch,
                        format!(
                            "the checkpoint signed by {} at {} says record {seq} has hash {}, \
                             the chain says {}: records up to {seq} were rewritten",
                            cp.key_id, cp.signed_at, cp.hash, rec.hash
                        ),
                        Some(&rec),
                    )));
                }
                if let Err(e) = cp.verify(verifier) {
                    return Ok(Some(broken(
                        seq,
                        BrokenReason::CheckpointSignature,
                        format!(
                            "the checkpoint at {seq} (key {}) is invalid: {e}",
                            cp.key_id
                        ),
                        None,
                    )));
                }
                report.last_checkpoint = Some(seq);
            }
            report.records_checked += 1;
            prev = rec.hash;
            expected += 1;
        }
    }
    if expected <= last {
        return Ok(Some(broken(
            expected,
            BrokenReason::Missing,
            format!("records {expected} to {last} are missing"),
            None,
        )));
    }
    Ok(None)
}

/// The checks on one record alone and its link to `prev`.
fn check_record(rec: &StoredAuditRecord, prev: &str) -> Option<Broken> {
    let seq = rec.seq;
    let computed = rec.computed_hash();
    if computed != rec.hash {
        return Some(broken(
            seq,
            BrokenReason::Altered,
            format!(
                "record {seq} hashes to {computed}, not its stored hash {}: it was changed",
                rec.hash
            ),
            Some(rec),
        ));
    }
    if !rec.details_redacted {
        let details = chain::details_hash(&rec.record.details);
        if details != rec.details_hash {
            return Some(broken(
                seq,
                BrokenReason::DetailsAltered,
                format!(
                    "the details of record {seq} hash to {details}, not {}",
                    rec.details_hash
                ),
                Some(rec),
            ));
        }
    }
    if rec.prev_hash != prev {
        return Some(broken(
            seq,
            BrokenReason::Relinked,
            format!(
                "record {seq} links to {}, but the record before it has hash {prev}: records \
                 were inserted, removed or reordered",
                rec.prev_hash
            ),
            Some(rec),
        ));
    }
    None
}
