//! Retention purges: payloads replaced by tombstones, everything else kept.

use std::sync::Arc;

use amas_types::{ApprovalStatus, JournalEvent, TaskId, TaskState, TaskStatus};

use super::fixtures::{approval_requested, approval_resolved, step_started, submission, submit};
use super::{CheckFailure, CheckResult, ensure, ensure_eq};
use crate::{StoreError, TaskJournal};

/// A purge replaces payloads with tombstones carrying their SHA-256 and keeps everything else:
/// seqs, kinds, step names, the status and the approval projection (arguments tombstoned too).
/// Running it again purges nothing more; a task that has not ended is refused and untouched;
/// ended tasks are listed by end time.
pub async fn purge_leaves_tombstones(store: Arc<dyn TaskJournal>) -> CheckResult {
    use crate::retention::{TOMBSTONE_KEY, is_tombstone};

    let id = TaskId::new();
    let secret = serde_json::json!({ "email": "jane@example.com" });
    let approval_id = "0190a1b2-0000-7000-8000-0000000000aa";
    store
        .append(
            id,
            0,
            &[
                submission("t", "research", "Jane's ticket"),
                JournalEvent::TaskStarted,
                step_started("s1"),
                approval_requested(approval_id, "call_9"),
                approval_resolved(approval_id, ApprovalStatus::Approved),
                JournalEvent::StepSucceeded {
                    step: "s1".into(),
                    output: secret.clone(),
                },
                JournalEvent::TaskSucceeded {
                    result: secret.clone(),
                },
            ],
        )
        .await?;
    let running = submit(&store, "t", "research", "still running").await?;
    store
        .append(running, 1, &[JournalEvent::TaskStarted])
        .await?;

    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    let ended = store.ended_before(later, None, 100).await?;
    ensure_eq!(
        ended.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![id],
        "only the ended task is listed"
    );
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(3600);
    ensure!(
        store.ended_before(earlier, None, 100).await?.is_empty(),
        "a task that ended after the cutoff is not listed"
    );

    let before = store.read(id, 0).await?;
    let at = crate::shared::now();
    let purged = store
        .purge_payloads(id, &[1, 2, 3, 4, 5, 6, 7, 99], at)
        .await?;
    ensure_eq!(purged, vec![1, 3, 4, 6, 7], "payload events are purged");
    let after = store.read(id, 0).await?;
    ensure_eq!(after.len(), before.len(), "no event is removed");
    for (old, new) in before.iter().zip(&after) {
        ensure_eq!(old.seq, new.seq, "seqs are kept");
        ensure_eq!(old.event.kind(), new.event.kind(), "kinds are kept");
    }
    let text = serde_json::to_string(&after).map_err(|e| CheckFailure(e.to_string()))?;
    ensure!(
        !text.contains("jane@example.com") && !text.contains("Jane's ticket"),
        "no payload survives the purge: {text}"
    );
    let expected = crate::audit::hash_payload(
        serde_json::to_string(&secret)
            .map_err(|e| CheckFailure(e.to_string()))?
            .as_bytes(),
    );
    match &after[6].event {
        JournalEvent::TaskSucceeded { result } => {
            ensure!(is_tombstone(result), "the result is a tombstone: {result}");
            ensure_eq!(
                result[TOMBSTONE_KEY]["sha256"],
                serde_json::json!(expected),
                "the tombstone carries the payload's SHA-256"
            );
        }
        other => return Err(CheckFailure(format!("seq 7 is {}", other.kind()))),
    }
    let state = TaskState::fold(&after)
        .ok_or_else(|| CheckFailure("the purged journal still folds".to_owned()))?;
    ensure_eq!(state.status, TaskStatus::Succeeded, "the status is kept");
    let summary = store
        .summary(id)
        .await?
        .ok_or_else(|| CheckFailure("the task is still listed".to_owned()))?;
    ensure!(
        summary.title.starts_with("[purged sha256:"),
        "the listing title is purged: {}",
        summary.title
    );
    let approval = store
        .approval(&amas_types::ApprovalId::from(approval_id))
        .await?
        .ok_or_else(|| CheckFailure("the approval is still projected".to_owned()))?;
    ensure!(
        is_tombstone(&approval.arguments),
        "the approval's arguments are purged"
    );
    ensure_eq!(
        approval.status,
        ApprovalStatus::Approved,
        "the approval keeps its status"
    );

    let again = store
        .purge_payloads(id, &[1, 3, 4, 6, 7], crate::shared::now())
        .await?;
    ensure!(
        again.is_empty(),
        "a second purge changes nothing: {again:?}"
    );
    ensure_eq!(store.read(id, 0).await?, after, "the journal is unchanged");

    match store.purge_payloads(running, &[1], at).await {
        Err(StoreError::NotPurgeable { .. }) => {}
        other => {
            return Err(CheckFailure(format!(
                "purging a running task must be refused, got {other:?}"
            )));
        }
    }
    match store.purge_payloads(TaskId::new(), &[1], at).await {
        Err(StoreError::NotPurgeable { .. }) => {}
        other => {
            return Err(CheckFailure(format!(
                "purging an unknown task must be refused, got {other:?}"
            )));
        }
    }
    let untouched = store.read(running, 0).await?;
    ensure!(
        matches!(&untouched[0].event, JournalEvent::TaskSubmitted { spec, .. } if spec.title == "still running"),
        "the running task is untouched"
    );
    Ok(())
}
