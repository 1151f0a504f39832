//! Verification: walk a range of the chain and its checkpoints (the database's and a
//! witness's) and name the first record that is not as it was written; report append-only
//! guards that are off.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::AuditLog;
use super::chain::{self, ChainLink, GENESIS_HASH};
use super::checkpoint::{Checkpoint, CheckpointVerifier};
use super::merkle::{self, Frontier};
use super::record::StoredAuditRecord;
use super::witness::WitnessLog;
use crate::StoreError;
use amas_types::{Stage, TaskId};

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
    /// A checkpoint covers a seq past the end of the log: records were deleted from the end
    /// (or the whole table was emptied).
    CheckpointBeyondHead,
    /// A witness is configured but its file is gone while the log has checkpoints that were
    /// written to it.
    WitnessMissing,
    /// A record's details were erased, but no retention purge of its task is recorded after
    /// it: someone erased them outside a purge (the one update the guards allow).
    DetailsErased,
}

/// Where a checkpoint that verification stopped at came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointSource {
    /// The database's `audit_checkpoints` table.
    Database,
    /// The witness, outside the database.
    Witness,
}

/// The witness verification read, and what it gave.
#[derive(Clone, Copy, Debug)]
pub enum WitnessInput<'a> {
    /// The checkpoints the witness holds.
    Log(&'a WitnessLog),
    /// The witness file named here does not exist.
    Missing(&'a str),
}

/// What [`verify_with`] checks.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions<'a> {
    /// The first seq (at least 1).
    pub from: u64,
    /// The last seq; the head when `None` or past it.
    pub to: Option<u64>,
    /// The witness to check the log against, if any.
    pub witness: Option<WitnessInput<'a>>,
}

/// What the witness held, as verification used it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WitnessSummary {
    pub source: String,
    /// Checkpoints the witness holds.
    pub checkpoints: u64,
    /// The highest seq the witness covers.
    pub last_seq: Option<u64>,
    /// Whether the witness file ended in a torn line (ignored).
    pub torn_tail: bool,
}

/// The first broken record (or checkpoint position).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Broken {
    pub seq: u64,
    pub reason: BrokenReason,
    pub detail: String,
    /// For a checkpoint reason: whether the database or the witness held the checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_source: Option<CheckpointSource>,
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
    /// Checkpoints whose Merkle root was recomputed from the records and matched.
    pub roots_checked: u64,
    pub head: Option<ChainLink>,
    /// The witness checked against, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<WitnessSummary>,
    /// Append-only guards that are missing, disabled or rewritten (see
    /// [`AuditLog::guard_problems`]).
    pub guard_problems: Vec<String>,
    /// `None` when the range is intact.
    pub broken: Option<Broken>,
}

impl VerifyReport {
    /// The records, checkpoints and witness agree, and the database's guards are in force.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.broken.is_none() && self.guard_problems.is_empty()
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
        checkpoint_source: None,
        record: record.map(|r| Box::new(r.clone())),
    }
}

fn from_source(mut b: Broken, source: CheckpointSource) -> Broken {
    b.checkpoint_source = Some(source);
    b
}

/// A checkpoint to check, and where it came from.
type Sourced = (Checkpoint, CheckpointSource);

fn where_from(source: CheckpointSource) -> &'static str {
    match source {
        CheckpointSource::Database => "the database",
        CheckpointSource::Witness => "the witness",
    }
}

/// Verifies records `from..=to` (`to` = the head when `None` or past it) and the checkpoints in
/// that range. Each record must hash to its stored hash, its details to its `details_hash`
/// (unless purged), link to its predecessor (for `from > 1`, to the stored hash of `from - 1`),
/// and follow it without a gap; each checkpoint must name the record's hash, carry a valid
/// signature and, when it has one, the Merkle root of the records up to it. A checkpoint past
/// the head means the end of the log was cut off.
///
/// # Errors
/// Backend errors only; everything found in the data is reported in [`VerifyReport::broken`].
pub async fn verify(
    log: &dyn AuditLog,
    verifier: &dyn CheckpointVerifier,
    from: u64,
    to: Option<u64>,
) -> Result<VerifyReport, StoreError> {
    let options = VerifyOptions {
        from,
        to,
        witness: None,
    };
    verify_with(log, verifier, &options).await
}

/// [`verify`], with the checkpoints of a witness checked like the database's own: a witness
/// checkpoint the log no longer matches (a rewritten record) or no longer reaches (a truncated
/// tail or table) breaks it. Also reports the state of the database's append-only guards.
///
/// # Errors
/// Backend errors only.
pub async fn verify_with(
    log: &dyn AuditLog,
    verifier: &dyn CheckpointVerifier,
    options: &VerifyOptions<'_>,
) -> Result<VerifyReport, StoreError> {
    let (from, to) = (options.from.max(1), options.to);
    let head = log.head().await?;
    let head_seq = head.as_ref().map_or(0, |h| h.seq);
    let last = to.map_or(head_seq, |t| t.min(head_seq));
    let mut report = VerifyReport {
        from_seq: from,
        to_seq: last,
        records_checked: 0,
        checkpoints_checked: 0,
        last_checkpoint: None,
        roots_checked: 0,
        head,
        witness: None,
        guard_problems: log.guard_problems().await?,
        broken: None,
    };
    let mut checkpoints: BTreeMap<u64, Vec<Sourced>> = BTreeMap::new();
    let stored = log.checkpoints(from, to).await?;
    let mut seen: HashSet<(u64, String, String)> = HashSet::new();
    for cp in stored {
        seen.insert((cp.up_to_seq, cp.key_id.clone(), cp.signature.clone()));
        checkpoints
            .entry(cp.up_to_seq)
            .or_default()
            .push((cp, CheckpointSource::Database));
    }
    match options.witness {
        Some(WitnessInput::Log(witness)) => {
            report.witness = Some(WitnessSummary {
                source: witness.source.clone(),
                checkpoints: witness.checkpoints.len() as u64,
                last_seq: witness.checkpoints.iter().map(|c| c.up_to_seq).max(),
                torn_tail: witness.torn_tail,
            });
            let in_range = |seq: u64| seq >= from && to.is_none_or(|t| seq <= t);
            for cp in &witness.checkpoints {
                let key = (cp.up_to_seq, cp.key_id.clone(), cp.signature.clone());
                if in_range(cp.up_to_seq) && seen.insert(key) {
                    checkpoints
                        .entry(cp.up_to_seq)
                        .or_default()
                        .push((cp.clone(), CheckpointSource::Witness));
                }
            }
        }
        Some(WitnessInput::Missing(source)) => {
            // Checkpoints with a tree root were signed by a writer that had a witness.
            let witnessed = log
                .checkpoints(1, None)
                .await?
                .into_iter()
                .find(|c| c.tree_root.is_some());
            if let Some(cp) = witnessed {
                report.broken = Some(broken(
                    cp.up_to_seq,
                    BrokenReason::WitnessMissing,
                    format!(
                        "the audit witness {source} does not exist, but the log has checkpoints \
                         that were written to it (the first at record {}): the witness was \
                         deleted or moved, or verify is pointed at the wrong file",
                        cp.up_to_seq
                    ),
                    None,
                ));
                return Ok(report);
            }
        }
        None => {}
    }
    let mut erasures = Erasures::default();
    report.broken = walk(
        log,
        verifier,
        &checkpoints,
        (from, last),
        &mut report,
        &mut erasures,
    )
    .await?;
    if report.broken.is_none() && last == head_seq {
        report.broken = erasures.unexplained();
    }
    if report.broken.is_none()
        && let Some((&seq, found)) = checkpoints.range(head_seq.saturating_add(1)..).next()
    {
        let (cp, source) = found
            .iter()
            .find(|(_, s)| *s == CheckpointSource::Witness)
            .or_else(|| found.first())
            .map(|(cp, s)| (cp, *s))
            .unzip();
        let source = source.unwrap_or(CheckpointSource::Database);
        let signed = cp.map(|c| c.signed_at.to_rfc3339()).unwrap_or_default();
        report.broken = Some(from_source(
            broken(
                seq,
                BrokenReason::CheckpointBeyondHead,
                format!(
                    "a signed checkpoint in {} (signed {signed}) covers record {seq} but the log \
                     ends at {head_seq}: records were deleted from the end",
                    where_from(source)
                ),
                None,
            ),
            source,
        ));
    }
    Ok(report)
}

/// The tree of the records before `from`, when they are all there (a range verification trusts
/// them, as it trusts the record before the range); `None` when one is missing.
async fn tree_before(log: &dyn AuditLog, from: u64) -> Result<Option<Frontier>, StoreError> {
    let mut frontier = Frontier::default();
    while frontier.size() + 1 < from {
        let page = log.links(frontier.size() + 1, from - 1, PAGE * 10).await?;
        if page.is_empty() {
            return Ok(None);
        }
        for link in page {
            match merkle::leaf(&link.hash) {
                Some(leaf) if link.seq == frontier.size() + 1 => frontier.push(leaf),
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(frontier))
}

/// Erased details, and the retention purges that explain them.
#[derive(Default)]
struct Erasures {
    /// Records whose details are erased: (seq, task).
    erased: Vec<(u64, Option<TaskId>)>,
    /// The last retention purge record of each task.
    purged: std::collections::HashMap<TaskId, u64>,
}

impl Erasures {
    fn note(&mut self, rec: &StoredAuditRecord) {
        if rec.details_redacted {
            self.erased.push((rec.seq, rec.record.task_id));
        }
        if rec.record.stage == Stage::Retention.as_str()
            && rec.record.action == "purge"
            && let Some(task) = rec.record.task_id
        {
            self.purged.insert(task, rec.seq);
        }
    }

    /// The first erasure no later purge of its task accounts for.
    fn unexplained(&self) -> Option<Broken> {
        let (seq, task) = self.erased.iter().find(|(seq, task)| {
            task.and_then(|t| self.purged.get(&t))
                .is_none_or(|purge| purge < seq)
        })?;
        let whose = task.map_or_else(|| "it has no task".to_owned(), |t| format!("task {t}"));
        Some(broken(
            *seq,
            BrokenReason::DetailsErased,
            format!(
                "the details of record {seq} were erased, but no retention purge of {whose} is \
                 recorded after it: they were erased outside a purge"
            ),
            None,
        ))
    }
}

async fn walk(
    log: &dyn AuditLog,
    verifier: &dyn CheckpointVerifier,
    checkpoints: &BTreeMap<u64, Vec<Sourced>>,
    (from, last): (u64, u64),
    report: &mut VerifyReport,
    erasures: &mut Erasures,
) -> Result<Option<Broken>, StoreError> {
    if from > last {
        return Ok(None);
    }
    let mut tree = tree_before(log, from).await?;
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
            erasures.note(&rec);
            if let Some(t) = tree.as_mut() {
                // `check_record` passed, so the hash is 32 bytes of hex.
                match merkle::leaf(&rec.hash) {
                    Some(leaf) => t.push(leaf),
                    None => tree = None,
                }
            }
            for (cp, source) in checkpoints.get(&seq).into_iter().flatten() {
                report.checkpoints_checked += 1;
                if let Some(found) = check_checkpoint(cp, *source, &rec, tree.as_ref(), verifier) {
                    return Ok(Some(found));
                }
                if cp.tree_root.is_some() && tree.is_some() {
                    report.roots_checked += 1;
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

/// The checks of one checkpoint at `rec`: it names the record's hash, its signature holds, and
/// its Merkle root (if any) is the root of the records up to it (`tree`, when known).
fn check_checkpoint(
    cp: &Checkpoint,
    source: CheckpointSource,
    rec: &StoredAuditRecord,
    tree: Option<&Frontier>,
    verifier: &dyn CheckpointVerifier,
) -> Option<Broken> {
    let seq = rec.seq;
    let from = where_from(source);
    if cp.hash != rec.hash {
        return Some(from_source(
            broken(
                seq,
                BrokenReason::CheckpointMismatch,
                format!(
                    "the checkpoint in {from} signed by {} at {} says record {seq} has hash {}, \
                     the chain says {}: records up to {seq} were rewritten",
                    cp.key_id, cp.signed_at, cp.hash, rec.hash
                ),
                Some(rec),
            ),
            source,
        ));
    }
    if let Err(e) = cp.verify(verifier) {
        return Some(from_source(
            broken(
                seq,
                BrokenReason::CheckpointSignature,
                format!(
                    "the checkpoint in {from} at {seq} (key {}) is invalid: {e}",
                    cp.key_id
                ),
                None,
            ),
            source,
        ));
    }
    if let (Some(root), Some(tree)) = (&cp.tree_root, tree) {
        let computed = merkle::to_hex(&tree.root());
        if *root != computed {
            return Some(from_source(
                broken(
                    seq,
                    BrokenReason::CheckpointMismatch,
                    format!(
                        "the checkpoint in {from} at {seq} signs the tree root {root}, the \
                         records 1..={seq} give {computed}: records up to {seq} were rewritten"
                    ),
                    None,
                ),
                source,
            ));
        }
    }
    None
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
