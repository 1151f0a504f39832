//! The checks themselves, one behaviour each.

use std::collections::BTreeSet;
use std::sync::Arc;

use amas_types::{JournalEvent, TaskId, TaskState, TaskStatus, TenantId, Verdict};

use super::fixtures::{
    AWKWARD, VARIANT_COUNT, approval_requested, approval_voted, cancelled, every_variant, failed,
    step_started, submission, submit, succeeded, variant_number,
};
use super::{CheckFailure, CheckResult, ensure, ensure_eq};
use crate::{StoreError, TaskFilter, TaskJournal};

/// Appended events come back from `read` in order, with seqs 1, 2, 3... and equal to what
/// `append` returned; `after_seq` skips what the reader already has.
pub async fn append_then_read_roundtrips(store: Arc<dyn TaskJournal>) -> CheckResult {
    let id = TaskId::new();
    let mut written = store
        .append(id, 0, &[submission("t", "research", "a")])
        .await?;
    written.extend(
        store
            .append(id, 1, &[JournalEvent::TaskStarted, step_started("s1")])
            .await?,
    );
    written.extend(store.append(id, 3, &[step_started("s2")]).await?);
    let seqs: Vec<u64> = written.iter().map(|r| r.seq).collect();
    ensure_eq!(seqs, vec![1, 2, 3, 4], "append returns consecutive seqs");
    ensure!(
        written.iter().all(|r| r.task_id == id),
        "records carry their task id"
    );
    let read = store.read(id, 0).await?;
    ensure_eq!(read, written, "read returns exactly what append returned");
    let tail = store.read(id, 2).await?;
    ensure_eq!(
        tail,
        written[2..].to_vec(),
        "read after seq 2 returns seq 3 and 4"
    );
    ensure!(
        store.read(id, 4).await?.is_empty(),
        "nothing after the last seq"
    );
    Ok(())
}

/// A writer whose expected seq is stale, or ahead of the journal, gets a conflict reporting the
/// real last seq, and nothing of its batch is written.
pub async fn stale_expected_seq_is_rejected(store: Arc<dyn TaskJournal>) -> CheckResult {
    let id = submit(&store, "t", "research", "a").await?;
    store.append(id, 1, &[JournalEvent::TaskStarted]).await?;
    let before = store.read(id, 0).await?;
    for expected in [0, 1, 5] {
        let events = if expected == 0 {
            vec![submission("t", "research", "again")]
        } else {
            vec![step_started("late"), succeeded()]
        };
        match store.append(id, expected, &events).await {
            Err(StoreError::Conflict {
                task,
                expected: e,
                actual,
            }) => {
                ensure_eq!(task, id, "conflict names the task");
                ensure_eq!(e, expected, "conflict repeats the expected seq");
                ensure_eq!(actual, 2, "conflict reports the real last seq");
            }
            other => {
                return Err(CheckFailure(format!(
                    "append with expected seq {expected} when the last is 2 must conflict, got {other:?}"
                )));
            }
        }
    }
    ensure_eq!(
        store.read(id, 0).await?,
        before,
        "rejected batches leave no trace"
    );
    let summary = store.summary(id).await?;
    ensure_eq!(
        summary.map(|s| (s.last_seq, s.status)),
        Some((2, TaskStatus::Running)),
        "the projection is unchanged"
    );
    Ok(())
}

/// Several writers racing with the same expected seq: exactly one wins, every other one gets a
/// conflict naming the winner's last seq, and the journal holds the winner's batch only. Run for
/// a new task (the race to create it) and for an existing one.
pub async fn concurrent_appends_have_one_winner(store: Arc<dyn TaskJournal>) -> CheckResult {
    const CONTENDERS: usize = 4;
    let id = TaskId::new();
    for (expected, make) in [
        (0_u64, race_to_create as fn(usize) -> Vec<JournalEvent>),
        (2, race_to_extend),
    ] {
        let mut handles = Vec::with_capacity(CONTENDERS);
        for contender in 0..CONTENDERS {
            let store = Arc::clone(&store);
            let events = make(contender);
            #[expect(
                clippy::disallowed_methods,
                reason = "a conformance race: every contender is joined before the check returns"
            )]
            handles.push(tokio::spawn(async move {
                (contender, store.append(id, expected, &events).await)
            }));
        }
        let mut winners = Vec::new();
        for handle in handles {
            let (contender, result) = handle.await?;
            match result {
                Ok(records) => winners.push((contender, records)),
                Err(StoreError::Conflict { actual, .. }) => ensure_eq!(
                    actual,
                    expected + 2,
                    "a loser's conflict reports the winner's last seq"
                ),
                Err(other) => {
                    return Err(CheckFailure(format!(
                        "a racing append must win or conflict, got {} {other}",
                        other.code()
                    )));
                }
            }
        }
        ensure_eq!(
            winners.len(),
            1,
            "exactly one of {CONTENDERS} racing appends wins"
        );
        let (winner, records) = winners.remove(0);
        let after = store.read(id, expected).await?;
        ensure_eq!(after, records, "the journal holds the winner's batch");
        let expected_events = make(winner);
        let stored: Vec<&JournalEvent> = after.iter().map(|r| &r.event).collect();
        ensure_eq!(
            stored,
            expected_events.iter().collect::<Vec<_>>(),
            "no other contender's event slipped in"
        );
    }
    let all = store.read(id, 0).await?;
    let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    ensure_eq!(seqs, vec![1, 2, 3, 4], "the journal stays gapless");
    Ok(())
}

fn race_to_create(contender: usize) -> Vec<JournalEvent> {
    vec![
        submission("t", "research", &format!("contender {contender}")),
        JournalEvent::TaskStarted,
    ]
}

fn race_to_extend(contender: usize) -> Vec<JournalEvent> {
    vec![
        step_started(&format!("step of {contender}")),
        step_started(&format!("second step of {contender}")),
    ]
}

/// A journal starts with its submission, and only there; an empty batch is refused. None of
/// the refused batches writes anything.
pub async fn first_event_must_be_a_submission(store: Arc<dyn TaskJournal>) -> CheckResult {
    let id = TaskId::new();
    let refused: [(u64, Vec<JournalEvent>); 3] = [
        (0, vec![JournalEvent::TaskStarted]),
        (0, vec![]),
        (
            0,
            vec![submission("t", "r", "a"), submission("t", "r", "b")],
        ),
    ];
    for (expected, events) in refused {
        let result = store.append(id, expected, &events).await;
        ensure!(
            matches!(result, Err(StoreError::InvalidAppend(_))),
            "batch {:?} must be invalid, got {result:?}",
            events.iter().map(JournalEvent::kind).collect::<Vec<_>>()
        );
    }
    let nul_title = submission("t", "r", "a\u{0}b");
    let result = store.append(id, 0, &[nul_title]).await;
    ensure!(
        matches!(result, Err(StoreError::InvalidAppend(_))),
        "a NUL in a listed field must be invalid, got {result:?}"
    );
    ensure!(
        store.read(id, 0).await?.is_empty(),
        "refused batches write nothing"
    );
    ensure!(
        store.summary(id).await?.is_none(),
        "refused batches create no task"
    );

    store.append(id, 0, &[submission("t", "r", "a")]).await?;
    let late = store.append(id, 1, &[submission("t", "r", "again")]).await;
    ensure!(
        matches!(late, Err(StoreError::InvalidAppend(_))),
        "a second submission must be invalid, got {late:?}"
    );
    let empty = store.append(id, 1, &[]).await;
    ensure!(
        matches!(empty, Err(StoreError::InvalidAppend(_))),
        "an empty batch must be invalid, got {empty:?}"
    );
    ensure_eq!(
        store.read(id, 0).await?.len(),
        1,
        "only the submission is stored"
    );
    Ok(())
}

/// The listing projection follows the journal's status effects, keeps the submitted fields, and
/// never leaves a terminal status (the journal refuses anything after it), agreeing with
/// `TaskState::fold`.
pub async fn status_projection_follows_events(store: Arc<dyn TaskJournal>) -> CheckResult {
    let id = TaskId::new();
    let first = store
        .append(id, 0, &[submission("acme", "review", AWKWARD)])
        .await?;
    let created_at = first[0].recorded_at;
    let mut last_seq = 1;
    for (event, status) in [
        (None, TaskStatus::Queued),
        (Some(JournalEvent::TaskStarted), TaskStatus::Running),
        (Some(step_started("s")), TaskStatus::Running),
        (Some(succeeded()), TaskStatus::Succeeded),
    ] {
        let mut updated_at = created_at;
        if let Some(event) = event {
            let kind = event.kind();
            let records = store.append(id, last_seq, &[event]).await?;
            last_seq += 1;
            updated_at = records[0].recorded_at;
            ensure!(records[0].seq == last_seq, "{kind} got seq {last_seq}");
        }
        let summary = store
            .summary(id)
            .await?
            .ok_or_else(|| CheckFailure("a submitted task has a summary".to_owned()))?;
        ensure_eq!(summary.status, status, "status after seq {last_seq}");
        ensure_eq!(summary.last_seq, last_seq, "last seq of the projection");
        ensure_eq!(
            summary.created_at,
            created_at,
            "created_at is the submission's time"
        );
        ensure_eq!(
            summary.updated_at,
            updated_at,
            "updated_at is the last event's time"
        );
        ensure_eq!(
            (
                summary.id,
                summary.tenant.0.as_str(),
                summary.task_type.as_str()
            ),
            (id, "acme", "review"),
            "submitted fields"
        );
        ensure_eq!(summary.title, AWKWARD, "title is kept exactly");
        ensure_eq!(summary.priority.get(), 5, "priority");
        let folded = TaskState::fold(&store.read(id, 0).await?).map(|s| s.status);
        ensure_eq!(
            folded,
            Some(summary.status),
            "the projection agrees with the fold"
        );
    }
    for late in [failed(), JournalEvent::TaskStarted] {
        let kind = late.kind();
        match store.append(id, last_seq, &[late]).await {
            Err(StoreError::TaskEnded { task, status }) => {
                ensure_eq!((task, status), (id, TaskStatus::Succeeded), "the refusal");
            }
            other => {
                return Err(CheckFailure(format!(
                    "{kind} after the task's end must be refused as ended, got {other:?}"
                )));
            }
        }
    }
    let status = store.summary(id).await?.map(|s| (s.status, s.last_seq));
    ensure_eq!(
        status,
        Some((TaskStatus::Succeeded, last_seq)),
        "the projection stays at the end"
    );

    // Within one batch: nothing may follow the end, and nothing of such a batch is stored.
    let other = TaskId::new();
    let refused = store
        .append(
            other,
            0,
            &[
                submission("acme", "review", "b"),
                JournalEvent::TaskStarted,
                cancelled(),
                JournalEvent::TaskStarted,
            ],
        )
        .await;
    ensure!(
        matches!(refused, Err(StoreError::InvalidAppend(_))),
        "a batch with an event after the end is invalid: {refused:?}"
    );
    ensure!(
        store.summary(other).await?.is_none() && store.read(other, 0).await?.is_empty(),
        "nothing of a refused batch is stored"
    );
    Ok(())
}

/// Cancel is a fence: once a task's end (succeeded, failed or cancelled) is in its journal,
/// every later append is refused with `AMAS-STORE-0010`, whatever seq it expects, and the
/// journal, the listing and the approvals stay as the end left them.
pub async fn an_ended_task_refuses_appends(store: Arc<dyn TaskJournal>) -> CheckResult {
    for (end, status) in [
        (succeeded(), TaskStatus::Succeeded),
        (failed(), TaskStatus::Failed),
        (cancelled(), TaskStatus::Cancelled),
    ] {
        let id = submit(&store, "t", "review", "fenced").await?;
        store
            .append(id, 1, &[JournalEvent::TaskStarted, end])
            .await?;
        for (expected, late) in [
            (3, step_started("late")),
            (3, approval_voted("a-1", "bob", Verdict::Approve)),
            (2, JournalEvent::TaskStarted),
            (7, succeeded()),
        ] {
            let kind = late.kind();
            match store.append(id, expected, &[late]).await {
                Err(e @ StoreError::TaskEnded { .. }) => {
                    ensure_eq!(e.code(), "AMAS-STORE-0010", "the fence's code");
                }
                other => {
                    return Err(CheckFailure(format!(
                        "{kind} after {} must be refused as ended, got {other:?}",
                        status.as_str()
                    )));
                }
            }
        }
        ensure_eq!(
            store.read(id, 0).await?.len(),
            3,
            "the journal ends at the end"
        );
        let summary = store.summary(id).await?.map(|s| (s.status, s.last_seq));
        ensure_eq!(summary, Some((status, 3)), "the listing ends at the end");
    }
    Ok(())
}

/// Moves a task to `status` with the events a runtime would append.
async fn drive(store: &Arc<dyn TaskJournal>, id: TaskId, status: TaskStatus) -> CheckResult {
    let events = match status {
        TaskStatus::Queued => vec![],
        TaskStatus::Running => vec![JournalEvent::TaskStarted],
        TaskStatus::WaitingApproval => vec![
            JournalEvent::TaskStarted,
            approval_requested(&uuid::Uuid::now_v7().to_string(), "call"),
        ],
        TaskStatus::Succeeded => vec![JournalEvent::TaskStarted, succeeded()],
        TaskStatus::Failed => vec![JournalEvent::TaskStarted, failed()],
        TaskStatus::Cancelled => vec![cancelled()],
    };
    if !events.is_empty() {
        store.append(id, 1, &events).await?;
    }
    Ok(())
}

fn newest_first(mut ids: Vec<TaskId>) -> Vec<TaskId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// Each filter (and their combinations) returns exactly the matching tasks, newest first.
pub async fn list_filters_by_status_type_and_tenant(store: Arc<dyn TaskJournal>) -> CheckResult {
    let mut tasks = Vec::new();
    for (tenant, task_type, status) in [
        ("a", "research", TaskStatus::Queued),
        ("a", "review", TaskStatus::Running),
        ("b", "research", TaskStatus::Succeeded),
        ("b", "review", TaskStatus::Queued),
        ("a", "research", TaskStatus::Failed),
        ("b", "research", TaskStatus::Cancelled),
    ] {
        let id = submit(&store, tenant, task_type, "t").await?;
        drive(&store, id, status).await?;
        tasks.push((id, tenant, task_type, status));
    }
    let filters = [
        (None, None, None),
        (Some("a"), None, None),
        (None, Some(TaskStatus::Queued), None),
        (None, None, Some("research")),
        (Some("a"), None, Some("research")),
        (Some("b"), Some(TaskStatus::Queued), None),
        (Some("b"), Some(TaskStatus::Cancelled), Some("research")),
        (Some("a"), Some(TaskStatus::Succeeded), None),
        (Some("nobody"), None, None),
    ];
    for (tenant, status, task_type) in filters {
        let filter = TaskFilter {
            tenant: tenant.map(|t| TenantId(t.to_owned())),
            status,
            task_type: task_type.map(str::to_owned),
            limit: 100,
            cursor: None,
        };
        let page = store.list(&filter).await?;
        let expected = newest_first(
            tasks
                .iter()
                .filter(|(_, te, ty, st)| {
                    tenant.is_none_or(|t| t == *te)
                        && status.is_none_or(|s| s == *st)
                        && task_type.is_none_or(|t| t == *ty)
                })
                .map(|(id, ..)| *id)
                .collect(),
        );
        let got: Vec<TaskId> = page.tasks.iter().map(|t| t.id).collect();
        ensure_eq!(got, expected, "list with {filter:?}");
        ensure!(
            page.next_cursor.is_none(),
            "one page holds everything for {filter:?}"
        );
        for summary in &page.tasks {
            let (_, te, ty, st) = tasks
                .iter()
                .find(|(id, ..)| *id == summary.id)
                .ok_or_else(|| CheckFailure("listed an unknown task".to_owned()))?;
            ensure_eq!(
                (
                    summary.tenant.0.as_str(),
                    summary.task_type.as_str(),
                    summary.status
                ),
                (*te, *ty, *st),
                "listed summary fields"
            );
        }
    }
    Ok(())
}

/// Following `next_cursor` visits every task exactly once, newest first, with a cursor on every
/// page but the last, also when the last page is exactly full.
pub async fn pagination_returns_every_task_once(store: Arc<dyn TaskJournal>) -> CheckResult {
    let mut all = Vec::new();
    let mut in_b = Vec::new();
    for n in 0..13 {
        let tenant = if n % 2 == 0 { "a" } else { "b" };
        let id = submit(&store, tenant, "research", &format!("task {n}")).await?;
        all.push(id);
        if tenant == "b" {
            in_b.push(id);
        }
    }
    // 13 tasks by 5 (partial last page), 6 of tenant b by 3 (full last page), all by 13, by 1.
    for (tenant, limit, expected, pages) in [
        (None, 5, all.clone(), 3),
        (Some("b"), 3, in_b.clone(), 2),
        (None, 13, all.clone(), 1),
        (None, 500, all.clone(), 1),
        (Some("b"), 1, in_b.clone(), 6),
    ] {
        let expected = newest_first(expected);
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut visited = 0;
        loop {
            visited += 1;
            ensure!(visited <= pages, "more than {pages} pages at limit {limit}");
            let page = store
                .list(&TaskFilter {
                    tenant: tenant.map(|t| TenantId(t.to_owned())),
                    limit,
                    cursor,
                    ..TaskFilter::default()
                })
                .await?;
            ensure!(
                page.tasks.len() <= limit as usize,
                "page of {} exceeds limit {limit}",
                page.tasks.len()
            );
            seen.extend(page.tasks.iter().map(|t| t.id));
            match page.next_cursor {
                Some(next) => {
                    ensure_eq!(
                        Some(next),
                        page.tasks.last().map(|t| t.id),
                        "the cursor is the page's last id"
                    );
                    cursor = Some(next);
                }
                None => break,
            }
        }
        ensure_eq!(
            visited,
            pages,
            "pages at limit {limit} for tenant {tenant:?}"
        );
        ensure_eq!(
            seen,
            expected,
            "every task once, newest first, at limit {limit}"
        );
    }
    Ok(())
}

/// Recovery's list: queued and running tasks only, oldest first.
pub async fn unfinished_lists_open_tasks_oldest_first(store: Arc<dyn TaskJournal>) -> CheckResult {
    ensure!(
        store.unfinished().await?.is_empty(),
        "an empty store has nothing unfinished"
    );
    let mut open = Vec::new();
    for (n, status) in [
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::WaitingApproval,
        TaskStatus::Queued,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Queued,
        TaskStatus::Running,
    ]
    .into_iter()
    .enumerate()
    {
        let id = submit(&store, "t", "research", &format!("task {n}")).await?;
        drive(&store, id, status).await?;
        if !status.is_terminal() {
            open.push(id);
        }
    }
    open.sort_unstable();
    ensure_eq!(
        store.unfinished().await?,
        open,
        "unfinished tasks, oldest first"
    );

    let finishing = open[0];
    let last_seq = store.summary(finishing).await?.map_or(0, |s| s.last_seq);
    store.append(finishing, last_seq, &[succeeded()]).await?;
    let rest: Vec<TaskId> = open[1..].to_vec();
    ensure_eq!(
        store.unfinished().await?,
        rest,
        "a finished task leaves the list"
    );
    Ok(())
}

/// An unknown task has no events and no summary, and reading past the end is empty.
pub async fn unknown_task_reads_empty(store: Arc<dyn TaskJournal>) -> CheckResult {
    let known = submit(&store, "t", "research", "a").await?;
    let unknown = TaskId::new();
    ensure!(
        store.read(unknown, 0).await?.is_empty(),
        "unknown task has no events"
    );
    ensure!(
        store.summary(unknown).await?.is_none(),
        "unknown task has no summary"
    );
    ensure!(
        store.read(known, 1).await?.is_empty(),
        "nothing after the last seq"
    );
    ensure!(
        store.read(known, u64::MAX).await?.is_empty(),
        "nothing after u64::MAX"
    );
    store.ping().await?;
    Ok(())
}

/// Every variant survives storage exactly: awkward unicode, NUL, extreme numbers and a 1 MiB
/// payload, in one batch per way of ending (nothing follows an end).
pub async fn events_roundtrip_exactly(store: Arc<dyn TaskJournal>) -> CheckResult {
    let events = every_variant();
    let covered: BTreeSet<usize> = events.iter().map(variant_number).collect();
    ensure_eq!(
        covered.len(),
        VARIANT_COUNT,
        "the fixture covers every variant"
    );
    // A task has one end, and nothing follows it: one task per way of ending.
    let (ends, body): (Vec<JournalEvent>, Vec<JournalEvent>) = events
        .into_iter()
        .partition(|e| e.status_effect().is_some_and(TaskStatus::is_terminal));
    for end in ends {
        let mut events = body.clone();
        events.push(end);
        let id = TaskId::new();
        let written = store.append(id, 0, &events).await?;
        let read = store.read(id, 0).await?;
        ensure_eq!(read.len(), events.len(), "every event is stored");
        for ((record, original), returned) in read.iter().zip(&events).zip(&written) {
            ensure!(
                record.event == *original,
                "event {} (seq {}) changed in storage",
                original.kind(),
                record.seq
            );
            ensure!(
                record == returned,
                "read and append disagree at seq {}",
                record.seq
            );
        }
    }
    Ok(())
}
