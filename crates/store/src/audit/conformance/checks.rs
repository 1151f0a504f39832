//! The audit checks, one behaviour each. Tampering goes through [`Tamper`] with literal SQL that
//! both backends accept.

use std::sync::Arc;

use chrono::Duration as ChronoDuration;

use amas_types::{TaskId, TenantId};

use super::Tamper;
use super::fixtures::{append_n, checkpoint_at, forger, full_record, shared, test_signer};
use crate::StoreError;
use crate::audit::{
    AuditDecision, AuditLog, AuditQuery, BrokenReason, ChainLink, Checkpoint, GENESIS_HASH,
    StoredAuditRecord, VerifyReport, verify,
};
use crate::conformance::{CheckFailure, CheckResult, ensure, ensure_eq};

/// Every column but `seq`, for copying a row's content onto another seq.
const CONTENT_COLUMNS: &str = "recorded_at, tenant, principal_sub, principal_roles, auth_method, \
    stage, action, decision, reasons, agent, task_id, step, trace_id, resource, policy_version, \
    policy_hash, classification, duration_us, input_tokens, output_tokens, cost_micros, details, \
    details_hash, prev_hash, hash";

async fn check(log: &dyn AuditLog, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError> {
    verify(log, &test_signer().verifier(), from, to).await
}

/// Verifies everything and expects the first break at `seq` for `reason`.
async fn expect_broken(
    log: &dyn AuditLog,
    from: u64,
    to: Option<u64>,
    seq: u64,
    reason: BrokenReason,
    what: &str,
) -> CheckResult {
    let report = check(log, from, to).await?;
    let found = report.broken.as_ref().map(|b| (b.seq, b.reason));
    ensure_eq!(found, Some((seq, reason)), "{what}: {report:?}");
    Ok(())
}

pub(super) async fn expect_intact(
    log: &dyn AuditLog,
    what: &str,
) -> Result<VerifyReport, CheckFailure> {
    let report = check(log, 1, None).await?;
    ensure!(report.is_intact(), "{what}: {:?}", report.broken);
    Ok(report)
}

async fn backup<S: Tamper>(store: &S) -> Result<(), StoreError> {
    store
        .tamper("CREATE TABLE audit_backup AS SELECT * FROM audit_log")
        .await
}

async fn restore_row<S: Tamper>(store: &S, seq: u64) -> Result<(), StoreError> {
    store
        .tamper(&format!(
            "DELETE FROM audit_log WHERE seq = {seq}; \
             INSERT INTO audit_log SELECT * FROM audit_backup WHERE seq = {seq}"
        ))
        .await
}

/// Appends come back sealed: seqs 1, 2, 3, ... across batches, each linked to the one before,
/// hashes that recompute; reads return exactly what was returned; a bad record writes nothing.
pub async fn appends_chain_and_roundtrip<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    ensure_eq!(log.head().await?, None, "an empty log has no head");
    let empty = expect_intact(log, "an empty log").await?;
    ensure_eq!(empty.records_checked, 0, "nothing to check");
    ensure!(
        log.append(&[]).await?.is_empty(),
        "an empty batch appends nothing"
    );

    let written = append_n(log, 7, 3).await?;
    let seqs: Vec<u64> = written.iter().map(|r| r.seq).collect();
    ensure_eq!(
        seqs,
        (1..=7).collect::<Vec<_>>(),
        "consecutive seqs across batches"
    );
    ensure_eq!(
        written[0].prev_hash,
        GENESIS_HASH,
        "the first record links to genesis"
    );
    for pair in written.windows(2) {
        ensure_eq!(
            pair[1].prev_hash,
            pair[0].hash,
            "record {} links to its predecessor",
            pair[1].seq
        );
    }
    for rec in &written {
        ensure_eq!(
            rec.computed_hash(),
            rec.hash,
            "record {} hash recomputes",
            rec.seq
        );
    }
    let read = log.query(&AuditQuery::default()).await?;
    ensure_eq!(read, written, "query returns exactly what append returned");
    ensure_eq!(
        log.head().await?,
        Some(ChainLink {
            seq: 7,
            hash: written[6].hash.clone()
        }),
        "the head is the last record"
    );

    let mut bad = full_record(8, TaskId::new());
    bad.tenant = TenantId("a\0b".to_owned());
    let refused = log.append(&[full_record(8, TaskId::new()), bad]).await;
    ensure!(
        matches!(refused, Err(StoreError::InvalidAppend(_))),
        "a NUL is refused: {refused:?}"
    );
    ensure_eq!(
        log.head().await?.map(|h| h.seq),
        Some(7),
        "nothing of a refused batch is written"
    );

    let report = expect_intact(log, "an untouched chain").await?;
    ensure_eq!(
        (report.from_seq, report.to_seq, report.records_checked),
        (1, 7, 7),
        "the whole chain is checked"
    );
    Ok(())
}

/// Changing any column of a stored record is detected at that record: every field is covered
/// by the hash, details through their digest. Undoing the change makes the chain verify again.
pub async fn changing_any_field_is_detected<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    append_n(log, 8, 8).await?;
    backup(store.as_ref()).await?;
    let changes = [
        (
            "recorded_at",
            "'2001-01-01T00:00:00.000000Z'",
            BrokenReason::Altered,
        ),
        ("tenant", "'evil'", BrokenReason::Altered),
        ("principal_sub", "'mallory'", BrokenReason::Altered),
        ("principal_roles", "'[\"admin\"]'", BrokenReason::Altered),
        ("auth_method", "'none'", BrokenReason::Altered),
        ("stage", "'sandbox'", BrokenReason::Altered),
        ("action", "'model_call'", BrokenReason::Altered),
        (
            "decision",
            "CASE WHEN decision = 'allow' THEN 'deny' ELSE 'allow' END",
            BrokenReason::Altered,
        ),
        ("reasons", "'[\"fine\"]'", BrokenReason::Altered),
        ("agent", "'other'", BrokenReason::Altered),
        (
            "task_id",
            "'0190a000-0000-7000-8000-000000000000'",
            BrokenReason::Altered,
        ),
        ("step", "'other'", BrokenReason::Altered),
        ("trace_id", "'other'", BrokenReason::Altered),
        ("resource", "'tool:file_write'", BrokenReason::Altered),
        ("policy_version", "'0'", BrokenReason::Altered),
        ("policy_hash", "'sha256:0'", BrokenReason::Altered),
        ("classification", "'public'", BrokenReason::Altered),
        ("duration_us", "1", BrokenReason::Altered),
        ("input_tokens", "1", BrokenReason::Altered),
        ("output_tokens", "1", BrokenReason::Altered),
        ("cost_micros", "1", BrokenReason::Altered),
        ("details", "'{\"x\":1}'", BrokenReason::DetailsAltered),
        ("details_hash", "'00'", BrokenReason::Altered),
        ("prev_hash", "'00'", BrokenReason::Altered),
        ("hash", "'00'", BrokenReason::Altered),
    ];
    for (column, value, reason) in changes {
        store
            .tamper(&format!(
                "UPDATE audit_log SET {column} = {value} WHERE seq = 5"
            ))
            .await?;
        expect_broken(log, 1, None, 5, reason, &format!("changing {column}")).await?;
        store
            .tamper(&format!(
                "UPDATE audit_log SET {column} = \
                 (SELECT b.{column} FROM audit_backup b WHERE b.seq = 5) WHERE seq = 5"
            ))
            .await?;
        expect_intact(log, &format!("after restoring {column}")).await?;
    }
    Ok(())
}

/// A deleted record leaves a gap named by its seq; deleting the newest records is caught by the
/// checkpoint that covered them.
pub async fn deleting_a_record_is_detected<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 10, 4).await?;
    checkpoint_at(log, &written[9]).await?;
    backup(store.as_ref()).await?;
    for seq in [4, 1] {
        store
            .tamper(&format!("DELETE FROM audit_log WHERE seq = {seq}"))
            .await?;
        expect_broken(
            log,
            1,
            None,
            seq,
            BrokenReason::Missing,
            &format!("deleting {seq}"),
        )
        .await?;
        restore_row(store.as_ref(), seq).await?;
        expect_intact(log, "after restoring").await?;
    }
    store.tamper("DELETE FROM audit_log WHERE seq >= 9").await?;
    expect_broken(
        log,
        1,
        None,
        10,
        BrokenReason::CheckpointBeyondHead,
        "cutting off the end",
    )
    .await?;
    Ok(())
}

/// Swapping two records is detected at the first of them, whether the rows are just renumbered
/// (their hashes cover the seq) or moved with recomputed hashes (the links no longer match).
pub async fn reordering_is_detected<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    append_n(log, 8, 3).await?;
    backup(store.as_ref()).await?;
    store
        .tamper(
            "UPDATE audit_log SET seq = 1000 WHERE seq = 3; \
             UPDATE audit_log SET seq = 3 WHERE seq = 4; \
             UPDATE audit_log SET seq = 4 WHERE seq = 1000",
        )
        .await?;
    expect_broken(
        log,
        1,
        None,
        3,
        BrokenReason::Altered,
        "renumbering 3 and 4",
    )
    .await?;
    restore_row(store.as_ref(), 3).await?;
    restore_row(store.as_ref(), 4).await?;
    expect_intact(log, "after restoring").await?;

    // Move the content, then recompute each moved record's own hash as an attacker who knows the
    // algorithm would.
    for (to, from) in [(3, 4), (4, 3)] {
        store
            .tamper(&format!(
                "UPDATE audit_log SET ({CONTENT_COLUMNS}) = \
                 (SELECT {CONTENT_COLUMNS} FROM audit_backup b WHERE b.seq = {from}) WHERE seq = {to}"
            ))
            .await?;
    }
    for rec in log
        .query(&AuditQuery {
            from_seq: 3,
            to_seq: Some(4),
            ..AuditQuery::default()
        })
        .await?
    {
        set_hash(store.as_ref(), &rec).await?;
    }
    expect_broken(
        log,
        1,
        None,
        3,
        BrokenReason::Relinked,
        "swapping 3 and 4 with new hashes",
    )
    .await?;
    Ok(())
}

async fn set_hash<S: Tamper>(store: &S, rec: &StoredAuditRecord) -> Result<(), StoreError> {
    store
        .tamper(&format!(
            "UPDATE audit_log SET prev_hash = '{}', hash = '{}' WHERE seq = {}",
            rec.prev_hash,
            rec.computed_hash(),
            rec.seq
        ))
        .await
}

/// A checkpoint with a made-up signature, one signed by another key under the server's key id,
/// and a real one whose fields were edited are all reported.
pub async fn forged_checkpoints_are_detected<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 6, 6).await?;
    checkpoint_at(log, &written[2]).await?;
    let report = expect_intact(log, "a real checkpoint").await?;
    ensure_eq!(
        (report.checkpoints_checked, report.last_checkpoint),
        (1, Some(3)),
        "the checkpoint is checked"
    );

    let made_up = Checkpoint {
        up_to_seq: 5,
        hash: written[4].hash.clone(),
        tree_root: None,
        signed_at: chrono::Utc::now(),
        key_id: "test-key".to_owned(),
        signature: "00".repeat(64),
    };
    log.add_checkpoint(&made_up).await?;
    expect_broken(
        log,
        1,
        None,
        5,
        BrokenReason::CheckpointSignature,
        "a made-up signature",
    )
    .await?;
    store
        .tamper("DELETE FROM audit_checkpoints WHERE up_to_seq = 5")
        .await?;

    let link = ChainLink {
        seq: 5,
        hash: written[4].hash.clone(),
    };
    let forged = Checkpoint::sign(&link, &forger()).map_err(|e| CheckFailure(e.to_string()))?;
    log.add_checkpoint(&forged).await?;
    expect_broken(
        log,
        1,
        None,
        5,
        BrokenReason::CheckpointSignature,
        "another key",
    )
    .await?;
    store
        .tamper("DELETE FROM audit_checkpoints WHERE up_to_seq = 5")
        .await?;
    expect_intact(log, "after removing the forgeries").await?;

    store
        .tamper("UPDATE audit_checkpoints SET signed_at = '2001-01-01T00:00:00.000000Z' WHERE up_to_seq = 3")
        .await?;
    expect_broken(
        log,
        1,
        None,
        3,
        BrokenReason::CheckpointSignature,
        "an edited checkpoint",
    )
    .await?;
    Ok(())
}

/// An attacker who changes a record and recomputes every later hash and link produces a chain
/// that is consistent in itself, and is still caught: the signed checkpoint names the old hash.
pub async fn rewritten_chain_is_caught_by_its_checkpoint<S: Tamper + 'static>(
    store: Arc<S>,
) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 10, 10).await?;
    checkpoint_at(log, &written[7]).await?;
    store
        .tamper("UPDATE audit_log SET decision = 'allow' WHERE seq = 4")
        .await?;
    let mut prev = written[2].hash.clone();
    for mut rec in log
        .query(&AuditQuery {
            from_seq: 4,
            ..AuditQuery::default()
        })
        .await?
    {
        rec.prev_hash = prev;
        set_hash(store.as_ref(), &rec).await?;
        prev = rec.computed_hash();
    }
    expect_broken(
        log,
        1,
        None,
        8,
        BrokenReason::CheckpointMismatch,
        "a recomputed chain",
    )
    .await?;
    Ok(())
}

/// `verify(from, to)` checks exactly that range (and its link to the record before it): damage
/// outside is not reported, damage inside or at its edge is.
pub async fn range_verification_checks_only_the_range<S: Tamper + 'static>(
    store: Arc<S>,
) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 20, 7).await?;
    checkpoint_at(log, &written[9]).await?;
    checkpoint_at(log, &written[19]).await?;
    let report = check(log, 5, Some(15)).await?;
    ensure!(report.is_intact(), "range 5..=15: {report:?}");
    ensure_eq!(
        (
            report.from_seq,
            report.to_seq,
            report.records_checked,
            report.checkpoints_checked
        ),
        (5, 15, 11, 1),
        "the range and its one checkpoint"
    );
    ensure_eq!(
        check(log, 1, Some(100)).await?.to_seq,
        20,
        "a range past the head ends at the head"
    );
    ensure_eq!(
        check(log, 21, None).await?.records_checked,
        0,
        "a range past the head is empty"
    );

    store
        .tamper("UPDATE audit_log SET resource = 'x' WHERE seq = 18")
        .await?;
    ensure!(
        check(log, 5, Some(15)).await?.is_intact(),
        "damage after the range is not in it"
    );
    expect_broken(log, 1, None, 18, BrokenReason::Altered, "the whole log").await?;
    expect_broken(
        log,
        16,
        Some(20),
        18,
        BrokenReason::Altered,
        "a range holding it",
    )
    .await?;

    store
        .tamper("UPDATE audit_log SET hash = '00' WHERE seq = 4")
        .await?;
    expect_broken(
        log,
        5,
        Some(15),
        5,
        BrokenReason::Relinked,
        "the record before the range",
    )
    .await?;
    Ok(())
}

/// A retention purge erases details but keeps their digest, so the chain still verifies once
/// the purge itself is recorded, and the record says it was purged.
pub async fn purged_details_still_verify<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 5, 5).await?;
    ensure!(
        log.redact_details(2).await?,
        "a record's details can be purged"
    );
    ensure!(!log.redact_details(2).await?, "only once");
    ensure!(
        !log.redact_details(99).await?,
        "an unknown seq is not purged"
    );
    let purged = log
        .query(&AuditQuery {
            from_seq: 2,
            to_seq: Some(2),
            ..AuditQuery::default()
        })
        .await?;
    let purged = purged
        .first()
        .ok_or_else(|| CheckFailure("record 2 is gone".to_owned()))?;
    ensure!(
        purged.details_redacted && purged.record.details.is_null(),
        "details erased: {purged:?}"
    );
    ensure_eq!(
        purged.details_hash,
        written[1].details_hash,
        "the digest stays"
    );
    ensure_eq!(purged.hash, written[1].hash, "the hash stays");
    // An erasure is only legitimate when a retention purge of the task is recorded after it
    // (the runtime records one per purged task): until then it looks like what it would be
    // without one, details erased by someone with the database (security review L3).
    expect_broken(
        log,
        1,
        None,
        2,
        BrokenReason::DetailsErased,
        "an erasure no purge explains",
    )
    .await?;
    let task = written[1]
        .record
        .task_id
        .ok_or_else(|| CheckFailure("full records have a task".to_owned()))?;
    let purge = crate::audit::AuditRecord::new(
        &super::fixtures::principal("amas-retention", "acme"),
        "retention",
        "purge",
        AuditDecision::Recorded,
    )
    .with_task(task);
    log.append(&[purge]).await?;
    expect_intact(log, "after a purge, recorded").await?;
    Ok(())
}

/// The database itself refuses to update or delete records (except erasing details) and
/// checkpoints, so AMAS code cannot rewrite history by mistake.
pub async fn guards_refuse_updates_and_deletes<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let written = append_n(log, 3, 3).await?;
    checkpoint_at(log, &written[2]).await?;
    for sql in [
        "UPDATE audit_log SET resource = 'x' WHERE seq = 2",
        "UPDATE audit_log SET details = '{}' WHERE seq = 1",
        "UPDATE audit_log SET details = NULL, tenant = 'x' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 3",
        "UPDATE audit_checkpoints SET hash = '00'",
        "DELETE FROM audit_checkpoints",
    ] {
        ensure!(store.exec(sql).await.is_err(), "refused: {sql}");
    }
    expect_intact(log, "after refused changes").await?;
    Ok(())
}

/// Appenders racing (tasks of one process, or processes sharing a database) never link two
/// records to the same predecessor.
pub async fn concurrent_appends_never_fork<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = shared(&store);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let log = log.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "a conformance race: every contender is joined before the check returns"
        )]
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                append_n(log.as_ref(), 2, 2).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    ensure_eq!(
        log.head().await?.map(|h| h.seq),
        Some(80),
        "every record appended once"
    );
    expect_intact(log.as_ref(), "after racing appends").await?;
    Ok(())
}

/// Queries filter by every supported field and page by seq.
pub async fn queries_filter_and_page<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = store.as_ref();
    let (task_a, task_b) = (TaskId::new(), TaskId::new());
    let base = chrono::Utc::now() - ChronoDuration::hours(1);
    let records: Vec<_> = (1..=8u64)
        .map(|i| {
            let mut rec = full_record(i, if i <= 4 { task_a } else { task_b });
            rec.timestamp = base + ChronoDuration::seconds(i64::try_from(i).unwrap_or(0));
            rec
        })
        .collect();
    let written = log.append(&records).await?;
    let seqs = |found: Vec<StoredAuditRecord>| found.iter().map(|r| r.seq).collect::<Vec<_>>();
    let q = AuditQuery::default;
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                task_id: Some(task_a),
                ..q()
            })
            .await?
        ),
        vec![1, 2, 3, 4],
        "by task"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                principal: Some("alice".into()),
                ..q()
            })
            .await?
        ),
        vec![2, 4, 6, 8],
        "by principal"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                trace_id: written[2].record.trace_id.clone(),
                ..q()
            })
            .await?
        ),
        vec![3],
        "by trace"
    );
    let decision = written[0].record.decision;
    let by_decision = log
        .query(&AuditQuery {
            decision: Some(decision),
            ..q()
        })
        .await?;
    ensure!(
        !by_decision.is_empty() && by_decision.iter().all(|r| r.record.decision == decision),
        "by decision"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                decision: Some(AuditDecision::Recorded),
                ..q()
            })
            .await?
        ),
        vec![6],
        "by another decision"
    );
    ensure_eq!(
        log.query(&AuditQuery {
            tenant: Some(TenantId("acme".into())),
            ..q()
        })
        .await?
        .len(),
        8,
        "by tenant"
    );
    ensure!(
        log.query(&AuditQuery {
            tenant: Some(TenantId("other".into())),
            ..q()
        })
        .await?
        .is_empty(),
        "another tenant"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                from_seq: 3,
                limit: 2,
                ..q()
            })
            .await?
        ),
        vec![3, 4],
        "a page"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                to_seq: Some(2),
                ..q()
            })
            .await?
        ),
        vec![1, 2],
        "up to a seq"
    );
    ensure_eq!(
        seqs(
            log.query(&AuditQuery {
                since: Some(written[5].record.timestamp),
                until: Some(written[7].record.timestamp),
                ..q()
            })
            .await?
        ),
        vec![6, 7],
        "since (inclusive) until (exclusive)"
    );
    Ok(())
}
