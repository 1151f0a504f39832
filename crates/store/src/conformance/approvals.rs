//! The approvals projection: what the journal's approval events make of the approvals table.

use std::sync::Arc;

use amas_types::{
    ApprovalStatus, Identity, JournalEvent, TaskState, TaskStatus, TenantId, Verdict,
};

use super::fixtures::{AWKWARD, approval_requested, approval_resolved, approval_voted, submit};
use super::{CheckFailure, CheckResult, ensure, ensure_eq};
use crate::{ApprovalFilter, TaskJournal};

/// The approvals projection follows the journal in the same commit: a request makes the task
/// `waiting_approval` (until every pending approval is resolved), votes accumulate, a resolution
/// is final, and listing filters by tenant, status and requester, newest first, page by page.
pub async fn approvals_project_from_the_journal(store: Arc<dyn TaskJournal>) -> CheckResult {
    let id = submit(&store, "acme", "audit", "a").await?;
    let (first, second) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    ensure!(
        store
            .approval(&amas_types::ApprovalId::from(&first))
            .await?
            .is_none(),
        "an unknown approval is None"
    );
    let mut seq = 1;
    let mut expect = |events: Vec<JournalEvent>, status: TaskStatus| {
        let n = u64::try_from(events.len()).unwrap_or(0);
        let at = seq;
        seq += n;
        (at, events, status)
    };
    let steps = [
        expect(
            vec![JournalEvent::TaskStarted, approval_requested(&first, "c1")],
            TaskStatus::WaitingApproval,
        ),
        expect(
            vec![approval_requested(&second, "c2")],
            TaskStatus::WaitingApproval,
        ),
        expect(
            vec![approval_voted(&first, "bob", Verdict::Approve)],
            TaskStatus::WaitingApproval,
        ),
        expect(
            vec![
                approval_voted(&first, "carol", Verdict::Approve),
                approval_resolved(&first, ApprovalStatus::Approved),
            ],
            TaskStatus::WaitingApproval,
        ),
        expect(
            vec![
                approval_voted(&second, "bob", Verdict::Deny),
                approval_resolved(&second, ApprovalStatus::Denied),
                // A late vote after the resolution changes nothing.
                approval_voted(&second, "dave", Verdict::Approve),
            ],
            TaskStatus::Running,
        ),
    ];
    for (at, events, status) in steps {
        store.append(id, at, &events).await?;
        let summary = store.summary(id).await?.map(|s| s.status);
        ensure_eq!(summary, Some(status), "status after seq {at}");
        let folded = TaskState::fold(&store.read(id, 0).await?)
            .ok_or_else(|| CheckFailure("the journal folds".to_owned()))?;
        ensure_eq!(
            Some(folded.status),
            summary,
            "the projection agrees with the fold"
        );
        for approval_id in [&first, &second] {
            let projected = store
                .approval(&amas_types::ApprovalId::from(approval_id))
                .await?;
            ensure_eq!(
                projected.as_ref(),
                folded.approvals.get(approval_id.as_str()),
                "approval {approval_id} as projected and as folded"
            );
        }
    }
    let a = store
        .approval(&amas_types::ApprovalId::from(&first))
        .await?
        .ok_or_else(|| CheckFailure("the first approval exists".to_owned()))?;
    ensure_eq!(a.status, ApprovalStatus::Approved, "first approved");
    ensure_eq!(a.votes.len(), 2, "two votes");
    ensure_eq!(a.tenant.0.as_str(), "acme", "tenant from the task");
    ensure_eq!(a.arguments["command"], AWKWARD, "arguments kept exactly");
    let b = store
        .approval(&amas_types::ApprovalId::from(&second))
        .await?
        .ok_or_else(|| CheckFailure("the second approval exists".to_owned()))?;
    ensure_eq!(b.status, ApprovalStatus::Denied, "second denied");
    ensure_eq!(b.votes.len(), 1, "the late vote is ignored");

    // Listing: pending ones of another tenant's task, filters and pages.
    let other = submit(&store, "globex", "audit", "b").await?;
    let mut pending = Vec::new();
    for n in 0..3 {
        let approval_id = uuid::Uuid::now_v7().to_string();
        let mut events = vec![approval_requested(&approval_id, &format!("p{n}"))];
        if n == 0 {
            events.insert(0, JournalEvent::TaskStarted);
        }
        let last = store.summary(other).await?.map_or(0, |s| s.last_seq);
        store.append(other, last, &events).await?;
        pending.push(approval_id);
    }
    pending.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .approvals(&ApprovalFilter {
                tenant: Some(TenantId("globex".to_owned())),
                status: Some(ApprovalStatus::Pending),
                not_requested_by: None,
                limit: 2,
                cursor: cursor.clone(),
            })
            .await?;
        seen.extend(page.approvals.iter().map(|a| a.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ensure_eq!(seen, pending, "pending approvals of a tenant, newest first");
    let acme_pending = store
        .approvals(&ApprovalFilter {
            tenant: Some(TenantId("acme".to_owned())),
            status: Some(ApprovalStatus::Pending),
            limit: 10,
            ..ApprovalFilter::default()
        })
        .await?;
    ensure!(
        acme_pending.approvals.is_empty(),
        "no pending approvals left in acme"
    );
    let own = store
        .approvals(&ApprovalFilter {
            not_requested_by: Some(Identity::new("https://idp.example", "tester")),
            limit: 10,
            ..ApprovalFilter::default()
        })
        .await?;
    ensure!(
        own.approvals.is_empty(),
        "the requester's own approvals are filtered out"
    );
    // The same `sub` at another issuer is another person: they see the requests.
    let namesake = store
        .approvals(&ApprovalFilter {
            not_requested_by: Some(Identity::new("https://other.example", "tester")),
            limit: 10,
            ..ApprovalFilter::default()
        })
        .await?;
    ensure_eq!(
        namesake.approvals.len(),
        5,
        "a namesake at another issuer sees every request"
    );
    ensure!(
        namesake
            .approvals
            .iter()
            .all(|a| a.requester() == Identity::new("https://idp.example", "tester")),
        "the requester's identity is projected with its issuer"
    );
    let unfinished = store.unfinished().await?;
    ensure!(
        unfinished.contains(&other),
        "a task waiting for approval is unfinished"
    );
    Ok(())
}
