//! The witness and guard checks: what the database alone cannot tell once someone with the
//! file, the table owner's login or the audit key has been at it, and the witness can.

use std::path::PathBuf;
use std::sync::Arc;

use super::Tamper;
use super::fixtures::{append_n, resign, shared, test_signer};
use crate::StoreError;
use crate::audit::witness::{FileWitness, WitnessLog, read_witness_file};
use crate::audit::{
    AuditLog, AuditQuery, AuditWriter, AuditWriterConfig, BrokenReason, CheckpointSource,
    VerifyOptions, VerifyReport, WitnessInput, verify, verify_with,
};
use crate::conformance::{CheckFailure, CheckResult, ensure, ensure_eq};

/// A witness file of its own, removed when dropped.
struct TempWitness {
    path: PathBuf,
}

impl TempWitness {
    fn new() -> Self {
        let name = format!("amas-witness-{}.jsonl", uuid::Uuid::now_v7().simple());
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    fn read(&self) -> Result<WitnessLog, CheckFailure> {
        read_witness_file(&self.path)
            .map_err(|e| CheckFailure(e.to_string()))?
            .ok_or_else(|| CheckFailure("the witness file was not created".to_owned()))
    }
}

impl Drop for TempWitness {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `n` records through a writer that signs every `every` records and at shutdown, each
/// checkpoint also written to `witness`; returns what the witness holds.
async fn witnessed_log(
    log: Arc<dyn AuditLog>,
    n: u64,
    every: u64,
    witness: &TempWitness,
) -> Result<WitnessLog, CheckFailure> {
    let file = FileWitness::open(&witness.path).map_err(|e| CheckFailure(e.to_string()))?;
    let config = AuditWriterConfig {
        checkpoint_every: every,
        max_batch: 2,
        witnesses: vec![Arc::new(file)],
        ..AuditWriterConfig::default()
    };
    let writer = AuditWriter::start(log, Arc::new(test_signer()), config);
    let task = amas_types::TaskId::new();
    for i in 1..=n {
        writer
            .record(super::fixtures::full_record(i, task))
            .await
            .map_err(|e| CheckFailure(e.to_string()))?;
    }
    writer
        .shutdown()
        .await
        .map_err(|e| CheckFailure(e.to_string()))?;
    let held = witness.read()?;
    ensure!(
        held.checkpoints.last().map(|c| c.up_to_seq) == Some(n)
            && held.checkpoints.iter().all(|c| c.tree_root.is_some()),
        "the witness holds every checkpoint, with its root: {:?}",
        held.checkpoints
    );
    Ok(held)
}

async fn against(log: &dyn AuditLog, witness: &WitnessLog) -> Result<VerifyReport, StoreError> {
    let options = VerifyOptions {
        from: 1,
        to: None,
        witness: Some(WitnessInput::Log(witness)),
    };
    verify_with(log, &test_signer().verifier(), &options).await
}

async fn alone(log: &dyn AuditLog) -> Result<VerifyReport, StoreError> {
    verify(log, &test_signer().verifier(), 1, None).await
}

fn first_witnessed_after(witness: &WitnessLog, seq: u64) -> Option<u64> {
    witness
        .checkpoints
        .iter()
        .map(|c| c.up_to_seq)
        .filter(|s| *s > seq)
        .min()
}

fn broken_at(report: &VerifyReport) -> Option<(u64, BrokenReason, Option<CheckpointSource>)> {
    report
        .broken
        .as_ref()
        .map(|b| (b.seq, b.reason, b.checkpoint_source))
}

/// The review's proof (M3): with the guards off, the newest records and the checkpoints that
/// covered them are deleted and the guards put back. The database alone verifies; against
/// the witness the log is cut off at the first witnessed checkpoint it no longer reaches.
pub async fn witness_catches_a_truncated_tail<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let witness = TempWitness::new();
    let held = witnessed_log(shared(&store), 12, 4, &witness).await?;
    let log = store.as_ref();
    let report = against(log, &held).await?;
    ensure!(report.is_intact(), "untouched: {report:?}");
    ensure_eq!(
        report.roots_checked,
        held.checkpoints.len() as u64,
        "every checkpoint's tree root is recomputed"
    );
    store
        .tamper("DELETE FROM audit_log WHERE seq > 8; DELETE FROM audit_checkpoints WHERE up_to_seq > 8")
        .await?;
    let report = alone(log).await?;
    ensure!(
        report.is_intact(),
        "the database alone cannot tell: {report:?}"
    );
    let report = against(log, &held).await?;
    ensure_eq!(
        broken_at(&report),
        first_witnessed_after(&held, 8).map(|s| (
            s,
            BrokenReason::CheckpointBeyondHead,
            Some(CheckpointSource::Witness)
        )),
        "the witness says the log went further: {report:?}"
    );
    Ok(())
}

/// Someone who holds the audit key (on SQLite it sits in the same data directory) rewrites a
/// record, recomputes every later hash and link, replaces the checkpoints with freshly signed
/// ones: the database alone verifies; the witness still holds the old heads.
pub async fn witness_catches_a_rewritten_record<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let witness = TempWitness::new();
    let held = witnessed_log(shared(&store), 10, 4, &witness).await?;
    let log = store.as_ref();
    store
        .tamper(
            "UPDATE audit_log SET decision = CASE WHEN decision = 'allow' THEN 'deny' ELSE 'allow' \
             END WHERE seq = 3; DELETE FROM audit_checkpoints",
        )
        .await?;
    let mut prev = log
        .query(&AuditQuery {
            to_seq: Some(2),
            ..AuditQuery::default()
        })
        .await?
        .last()
        .map(|r| r.hash.clone())
        .unwrap_or_default();
    for mut rec in log
        .query(&AuditQuery {
            from_seq: 3,
            ..AuditQuery::default()
        })
        .await?
    {
        rec.prev_hash = prev;
        let hash = rec.computed_hash();
        store
            .tamper(&format!(
                "UPDATE audit_log SET prev_hash = '{}', hash = '{hash}' WHERE seq = {}",
                rec.prev_hash, rec.seq
            ))
            .await?;
        prev = hash;
    }
    resign(log, &test_signer()).await?;
    let report = alone(log).await?;
    ensure!(
        report.is_intact() && report.checkpoints_checked == 1,
        "re-signed, the database alone verifies: {report:?}"
    );
    let report = against(log, &held).await?;
    ensure_eq!(
        broken_at(&report),
        first_witnessed_after(&held, 2).map(|s| (
            s,
            BrokenReason::CheckpointMismatch,
            Some(CheckpointSource::Witness)
        )),
        "the witness holds the old head: {report:?}"
    );
    Ok(())
}

/// The whole log emptied (on PostgreSQL by `TRUNCATE`, which the row triggers do not stop):
/// alone it is an intact empty log; against the witness it is cut off at its first checkpoint.
pub async fn witness_catches_an_emptied_log<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let witness = TempWitness::new();
    let held = witnessed_log(shared(&store), 6, 3, &witness).await?;
    let log = store.as_ref();
    store.empty_log().await?;
    let report = alone(log).await?;
    ensure!(
        report.is_intact() && report.records_checked == 0,
        "an empty log verifies alone: {report:?}"
    );
    let report = against(log, &held).await?;
    ensure_eq!(
        broken_at(&report),
        first_witnessed_after(&held, 0).map(|s| (
            s,
            BrokenReason::CheckpointBeyondHead,
            Some(CheckpointSource::Witness)
        )),
        "the witness says records existed: {report:?}"
    );
    Ok(())
}

/// Guards turned off, or replaced by ones that do nothing, are reported (and the log is then
/// not intact); put back as installed, they are not.
pub async fn disabled_guards_are_reported<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    append_n(log, 3, 3).await?;
    ensure_eq!(
        log.guard_problems().await?,
        Vec::<String>::new(),
        "as installed"
    );
    store.unguard().await?;
    let report = alone(log).await?;
    ensure!(
        !report.guard_problems.is_empty() && report.broken.is_none() && !report.is_intact(),
        "guards off: {report:?}"
    );
    store.tamper("SELECT 1").await?;
    ensure_eq!(
        log.guard_problems().await?,
        Vec::<String>::new(),
        "put back"
    );
    store.disarm().await?;
    let problems = log.guard_problems().await?;
    ensure!(
        problems
            .iter()
            .any(|p| p.contains("not the one AMAS installed")),
        "a guard that does nothing: {problems:?}"
    );
    Ok(())
}

/// A configured witness whose file is gone, while the log has checkpoints that were written
/// to it, is reported; a log that never had one is fine.
pub async fn a_missing_witness_is_reported<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let options = |source| VerifyOptions {
        from: 1,
        to: None,
        witness: Some(WitnessInput::Missing(source)),
    };
    let report = verify_with(log, &test_signer().verifier(), &options("file:gone")).await?;
    ensure!(report.is_intact(), "nothing witnessed yet: {report:?}");
    let witness = TempWitness::new();
    let held = witnessed_log(shared(&store), 4, 2, &witness).await?;
    let report = verify_with(log, &test_signer().verifier(), &options("file:gone")).await?;
    ensure_eq!(
        broken_at(&report).map(|(s, r, _)| (s, r)),
        held.checkpoints
            .first()
            .map(|c| (c.up_to_seq, BrokenReason::WitnessMissing)),
        "the witness is gone: {report:?}"
    );
    Ok(())
}
