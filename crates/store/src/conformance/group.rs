//! Checks of [`GroupCommit`]: many tasks' appends and audit records in one commit, each
//! append judged on its own, and the store's writer that batches them.

use std::sync::Arc;

use amas_types::{JournalEvent, TaskId, TaskStatus};

use super::fixtures::{cancelled, step_started, submission, succeeded};
use super::{CheckResult, ensure, ensure_eq};
use crate::audit::conformance::test_signer;
use crate::audit::{AuditDecision, AuditRecord, AuditWriter, AuditWriterConfig};
use crate::{Append, GroupCommit, StoreError, TaskJournal};

fn record(n: u64, task: TaskId) -> AuditRecord {
    AuditRecord::new(
        &amas_types::Principal::local_operator(),
        "policy",
        "tool_call",
        AuditDecision::Allow,
    )
    .with_task(task)
    .with_resource(format!("tool-{n}"))
}

fn append(task: TaskId, expected_last_seq: u64, events: Vec<JournalEvent>) -> Append {
    Append {
        task,
        expected_last_seq,
        events,
        fence: None,
    }
}

/// Three new tasks and two audit records in one commit: each task gets seqs from 1, reads
/// return exactly what the commit returned, the listing projection follows, and the records
/// are linked into the chain in order.
pub async fn group_commit_writes_every_task_and_the_audit_chain(
    store: Arc<dyn GroupCommit>,
) -> CheckResult {
    let tasks = [TaskId::new(), TaskId::new(), TaskId::new()];
    let batch: Vec<Append> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut events = vec![submission("acme", "research", &format!("t{i}"))];
            if i == 1 {
                events.push(JournalEvent::TaskStarted);
            }
            append(*t, 0, events)
        })
        .collect();
    let audit = [record(1, tasks[0]), record(2, tasks[2])];
    let committed = store.group_commit(&batch, &audit).await?;
    ensure_eq!(committed.appends.len(), 3, "one result per append");
    for (task, result) in tasks.iter().zip(committed.appends) {
        let written = result?;
        let read = store.read(*task, 0).await?;
        ensure_eq!(read, written, "read returns what the group commit returned");
        let seqs: Vec<u64> = written.iter().map(|r| r.seq).collect();
        ensure!(
            seqs.first() == Some(&1),
            "a new task starts at seq 1: {seqs:?}"
        );
    }
    let started = store
        .summary(tasks[1])
        .await?
        .map(|s| (s.status, s.last_seq));
    ensure_eq!(
        started,
        Some((TaskStatus::Running, 2)),
        "the projection follows the committed events"
    );
    let seqs: Vec<u64> = committed.audit.iter().map(|r| r.seq).collect();
    ensure_eq!(seqs, vec![1, 2], "audit records are chained in order");
    ensure_eq!(
        committed.audit[1].prev_hash,
        committed.audit[0].hash,
        "the second record links to the first"
    );
    Ok(())
}

/// A stale expected seq or an invalid batch refuses only its own append; the others of the
/// batch commit, and the refused task's journal is unchanged.
pub async fn a_refused_append_refuses_only_itself(store: Arc<dyn GroupCommit>) -> CheckResult {
    let existing = TaskId::new();
    TaskJournal::append(
        store.as_ref(),
        existing,
        0,
        &[submission("acme", "research", "old")],
    )
    .await?;
    let before = store.read(existing, 0).await?;
    let fresh = TaskId::new();
    let empty = TaskId::new();
    let batch = [
        append(existing, 0, vec![submission("acme", "research", "again")]),
        append(fresh, 0, vec![submission("acme", "research", "new")]),
        append(empty, 0, Vec::new()),
    ];
    let committed = store.group_commit(&batch, &[record(1, fresh)]).await?;
    let mut results = committed.appends.into_iter();
    match results.next() {
        Some(Err(StoreError::Conflict { actual: 1, .. })) => {}
        other => ensure!(
            false,
            "a stale append is a conflict naming seq 1: {other:?}"
        ),
    }
    ensure!(
        matches!(results.next(), Some(Ok(ref r)) if r.len() == 1),
        "the valid append of the batch committed"
    );
    ensure!(
        matches!(results.next(), Some(Err(StoreError::InvalidAppend(_)))),
        "an empty append is invalid"
    );
    ensure_eq!(
        store.read(existing, 0).await?,
        before,
        "the refused append wrote nothing"
    );
    ensure_eq!(
        store.read(fresh, 0).await?.len(),
        1,
        "the new task is there"
    );
    ensure!(
        store.read(empty, 0).await?.is_empty(),
        "the invalid one is not"
    );
    ensure_eq!(committed.audit.len(), 1, "the audit record committed");
    Ok(())
}

/// The fence inside a group commit: an append to a task that has ended (in an earlier commit
/// or earlier in the same batch) is refused alone with `AMAS-STORE-0010`; the others commit.
pub async fn a_group_commit_refuses_appends_after_the_end(
    store: Arc<dyn GroupCommit>,
) -> CheckResult {
    let ended = TaskId::new();
    TaskJournal::append(
        store.as_ref(),
        ended,
        0,
        &[
            submission("acme", "research", "cancelled"),
            JournalEvent::TaskStarted,
            cancelled(),
        ],
    )
    .await?;
    let ending = TaskId::new();
    let fresh = TaskId::new();
    let batch = [
        append(ended, 3, vec![step_started("late")]),
        append(
            ending,
            0,
            vec![submission("acme", "research", "ends"), succeeded()],
        ),
        append(ending, 2, vec![JournalEvent::TaskStarted]),
        append(fresh, 0, vec![submission("acme", "research", "new")]),
    ];
    let committed = store.group_commit(&batch, &[record(1, fresh)]).await?;
    let outcomes: Vec<Option<&'static str>> = committed
        .appends
        .iter()
        .map(|r| r.as_ref().err().map(StoreError::code))
        .collect();
    ensure_eq!(
        outcomes,
        vec![Some("AMAS-STORE-0010"), None, Some("AMAS-STORE-0010"), None],
        "only the appends after an end are refused"
    );
    ensure_eq!(
        store.read(ended, 0).await?.len(),
        3,
        "the ended task is untouched"
    );
    ensure_eq!(
        store.read(ending, 0).await?.len(),
        2,
        "nothing after its end"
    );
    ensure_eq!(
        store.read(fresh, 0).await?.len(),
        1,
        "the other task committed"
    );
    ensure_eq!(committed.audit.len(), 1, "the audit record committed");
    Ok(())
}

/// The same task twice in one batch: its appends apply in order, the second after the first.
pub async fn one_task_twice_in_a_batch_applies_in_order(
    store: Arc<dyn GroupCommit>,
) -> CheckResult {
    let task = TaskId::new();
    let batch = [
        append(task, 0, vec![submission("acme", "research", "twice")]),
        append(task, 1, vec![JournalEvent::TaskStarted, step_started("s")]),
        append(task, 3, vec![succeeded()]),
    ];
    let committed = store.group_commit(&batch, &[]).await?;
    let mut seqs = Vec::new();
    for result in committed.appends {
        seqs.extend(result?.iter().map(|r| r.seq));
    }
    ensure_eq!(
        seqs,
        vec![1, 2, 3, 4],
        "consecutive seqs across the appends"
    );
    let summary = store.summary(task).await?.map(|s| (s.status, s.last_seq));
    ensure_eq!(
        summary,
        Some((TaskStatus::Succeeded, 4)),
        "the projection ends where the journal does"
    );
    Ok(())
}

/// Many tasks appending at once through the store's writer (with audit records beside them):
/// every append is answered with its own records, each durable and readable when answered,
/// and the audit chain holds every record once.
pub async fn the_writer_commits_concurrent_appends(store: Arc<dyn GroupCommit>) -> CheckResult {
    let writer = Arc::new(AuditWriter::start_group(
        Arc::clone(&store),
        Arc::new(test_signer()),
        AuditWriterConfig::default(),
    ));
    let mut handles = Vec::new();
    for i in 0..16_u64 {
        let writer = Arc::clone(&writer);
        let store = Arc::clone(&store);
        #[expect(
            clippy::disallowed_methods,
            reason = "a conformance race: every contender is joined before the check returns"
        )]
        handles.push(tokio::spawn(async move {
            let task = TaskId::new();
            let mut last = 0;
            for (n, events) in [
                vec![submission("acme", "research", &format!("t{i}"))],
                vec![JournalEvent::TaskStarted],
                vec![step_started("s"), succeeded()],
            ]
            .into_iter()
            .enumerate()
            {
                writer
                    .record(record(i * 10 + n as u64, task))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                let written = writer.append(task, last, &events).await?;
                last = written.last().map_or(last, |r| r.seq);
                // Answered means committed: a reader sees it now.
                if store.read(task, 0).await?.len() as u64 != last {
                    return Err(StoreError::Backend(format!(
                        "task {task} not readable at {last}"
                    )));
                }
            }
            Ok::<_, StoreError>(last)
        }));
    }
    for h in handles {
        ensure_eq!(h.await??, 4, "every task has its four events");
    }
    let head = writer
        .shutdown()
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    ensure_eq!(
        head.map(|h| h.seq),
        Some(48),
        "every audit record is in the chain once"
    );
    let stale = writer
        .append(TaskId::new(), 0, &[submission("acme", "r", "late")])
        .await;
    ensure!(
        matches!(stale, Err(StoreError::Closed)),
        "a closed writer refuses appends: {stale:?}"
    );
    Ok(())
}
