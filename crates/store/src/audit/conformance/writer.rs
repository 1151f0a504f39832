//! The batched writer's checks: nothing accepted is lost, and checkpoints come on schedule.

use std::sync::Arc;

use amas_types::TaskId;

use super::Tamper;
use super::checks::expect_intact;
use super::fixtures::{full_record, shared, test_signer};
use crate::audit::{AuditError, AuditQuery, AuditWriter, AuditWriterConfig};
use crate::conformance::{CheckFailure, CheckResult, ensure, ensure_eq};

/// Shutting the writer down with records still queued (from producers that were held back by a
/// full queue) commits every one of them and signs the end; afterwards it refuses new records.
pub async fn writer_shutdown_loses_nothing<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = shared(&store);
    let config = AuditWriterConfig {
        capacity: 16,
        max_batch: 8,
        checkpoint_every: 1_000_000,
        ..AuditWriterConfig::default()
    };
    let writer = Arc::new(AuditWriter::start(
        log.clone(),
        Arc::new(test_signer()),
        config,
    ));
    let mut producers = Vec::new();
    for p in 0..5u64 {
        let writer = writer.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "a conformance race: every contender is joined before the check returns"
        )]
        producers.push(tokio::spawn(async move {
            let task = TaskId::new();
            for i in 0..60u64 {
                writer.record(full_record(p * 1000 + i, task)).await?;
            }
            Ok::<_, AuditError>(task)
        }));
    }
    let mut tasks = Vec::new();
    for producer in producers {
        tasks.push(producer.await?.map_err(|e| CheckFailure(e.to_string()))?);
    }
    let end = writer
        .shutdown()
        .await
        .map_err(|e| CheckFailure(e.to_string()))?;
    ensure_eq!(
        end.map(|l| l.seq),
        Some(300),
        "shutdown returns the last record"
    );
    ensure_eq!(
        log.head().await?.map(|h| h.seq),
        Some(300),
        "every accepted record is stored"
    );
    for task in tasks {
        let mine = log
            .query(&AuditQuery {
                task_id: Some(task),
                ..AuditQuery::default()
            })
            .await?;
        ensure_eq!(mine.len(), 60, "all of one producer's records, in order");
    }
    let report = expect_intact(log.as_ref(), "after shutdown").await?;
    ensure_eq!(
        report.last_checkpoint,
        Some(300),
        "shutdown signs the end of the chain"
    );
    let late = writer.record(full_record(1, TaskId::new())).await;
    ensure!(
        matches!(late, Err(AuditError::Closed)),
        "closed after shutdown: {late:?}"
    );
    ensure!(
        matches!(writer.flush().await, Err(AuditError::Closed)),
        "flush after shutdown"
    );
    Ok(())
}

/// The writer signs a checkpoint once N records have gone by since the last, and on flush; all
/// of them verify.
pub async fn writer_checkpoints_every_n_records<S: Tamper + 'static>(store: Arc<S>) -> CheckResult {
    let log = shared(&store);
    let config = AuditWriterConfig {
        max_batch: 4,
        checkpoint_every: 10,
        ..AuditWriterConfig::default()
    };
    let writer = AuditWriter::start(log.clone(), Arc::new(test_signer()), config);
    let task = TaskId::new();
    for i in 0..45 {
        writer
            .record(full_record(i, task))
            .await
            .map_err(|e| CheckFailure(e.to_string()))?;
    }
    let flushed = writer
        .flush()
        .await
        .map_err(|e| CheckFailure(e.to_string()))?;
    ensure_eq!(
        flushed.map(|l| l.seq),
        Some(45),
        "flush commits everything before it"
    );
    let checkpoints = log.checkpoints(1, None).await?;
    let seqs: Vec<u64> = checkpoints.iter().map(|c| c.up_to_seq).collect();
    // Batches hold up to 4 records, so a checkpoint falls 10 to 13 records after the last one;
    // the flush signs the end.
    ensure!(
        seqs.len() >= 4 && seqs.last() == Some(&45),
        "periodic checkpoints and one on flush: {seqs:?}"
    );
    let mut previous = 0;
    for &seq in &seqs[..seqs.len() - 1] {
        ensure!((10..=13).contains(&(seq - previous)), "spacing: {seqs:?}");
        previous = seq;
    }
    let report = expect_intact(log.as_ref(), "with the writer's checkpoints").await?;
    ensure_eq!(
        (report.checkpoints_checked, report.last_checkpoint),
        (u64::try_from(checkpoints.len()).unwrap_or(0), Some(45)),
        "each checkpoint verified"
    );
    ensure!(
        checkpoints.iter().all(|c| c.tree_root.is_some()),
        "the writer signs tree roots: {checkpoints:?}"
    );
    ensure_eq!(
        report.roots_checked,
        report.checkpoints_checked,
        "each root recomputed from the records"
    );
    let range = crate::audit::verify(log.as_ref(), &test_signer().verifier(), 20, None).await?;
    ensure!(
        range.is_intact() && range.roots_checked > 0,
        "a range verification checks the roots too: {range:?}"
    );
    writer
        .shutdown()
        .await
        .map_err(|e| CheckFailure(e.to_string()))?;
    Ok(())
}

/// Records that trickle in below `checkpoint_every` still get a checkpoint, once
/// `checkpoint_interval` has passed since the last: a quiet server's newest decisions are not
/// left unsigned (and unwitnessed) until the next flush.
pub async fn writer_checkpoints_after_the_interval<S: Tamper + 'static>(
    store: Arc<S>,
) -> CheckResult {
    let log = shared(&store);
    let config = AuditWriterConfig {
        checkpoint_every: 1_000_000,
        checkpoint_interval: std::time::Duration::from_millis(20),
        ..AuditWriterConfig::default()
    };
    let writer = AuditWriter::start(log.clone(), Arc::new(test_signer()), config);
    let task = TaskId::new();
    for i in 0..3 {
        writer
            .record(full_record(i, task))
            .await
            .map_err(|e| CheckFailure(e.to_string()))?;
    }
    let mut signed = None;
    for _ in 0..500 {
        signed = log.last_checkpoint().await?;
        if signed.as_ref().is_some_and(|c| c.up_to_seq == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ensure!(
        signed
            .as_ref()
            .is_some_and(|c| c.up_to_seq == 3 && c.tree_root.is_some()),
        "signed without a flush: {signed:?}"
    );
    expect_intact(log.as_ref(), "with the timed checkpoint").await?;
    writer
        .shutdown()
        .await
        .map_err(|e| CheckFailure(e.to_string()))?;
    Ok(())
}
