//! A copy is exact: every task's journal (payloads with NUL, purge tombstones), listing row and
//! approval, every audit record (with erased details) and checkpoint read back the same from
//! PostgreSQL as from SQLite, and the chain verifies there. Against the real PostgreSQL
//! (`AMAS_TEST_DATABASE_URL`, or the local `test` database), in a schema of its own.

use amas_types::{ApprovalStatus, JournalEvent, TaskId, TaskStatus};

use super::sqlite_to_postgres;
use crate::audit::AuditLog;
use crate::audit::conformance::fixtures::{checkpoint_at, full_record, test_signer};
use crate::conformance::fixtures::{approval_requested, approval_resolved, every_variant};
use crate::{ApprovalFilter, PostgresStore, SqliteStore, StoreError, TaskFilter, TaskJournal};

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Everything a reader can see of a store, in one comparable value.
async fn everything(store: &(impl TaskJournal + AuditLog)) -> String {
    let filter = TaskFilter {
        limit: 500,
        ..TaskFilter::default()
    };
    let tasks = store.list(&filter).await.unwrap().tasks;
    let mut out = format!("{tasks:?}");
    for task in &tasks {
        out.push_str(&format!("{:?}", store.read(task.id, 0).await.unwrap()));
    }
    let approvals = ApprovalFilter {
        limit: 500,
        ..ApprovalFilter::default()
    };
    out.push_str(&format!("{:?}", store.approvals(&approvals).await.unwrap()));
    out.push_str(&format!(
        "{:?}",
        store.chain(1, u64::MAX, 10_000).await.unwrap()
    ));
    out.push_str(&format!("{:?}", store.checkpoints(1, None).await.unwrap()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reads_back_exactly_and_a_foreign_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).await.unwrap();
    // Every event variant, one task per way of ending; a task through an approval, ended and
    // purged.
    let (ends, body): (Vec<JournalEvent>, Vec<JournalEvent>) = every_variant()
        .into_iter()
        .partition(|e| e.status_effect().is_some_and(TaskStatus::is_terminal));
    for end in ends {
        let mut events = body.clone();
        events.push(end);
        TaskJournal::append(&sqlite, TaskId::new(), 0, &events)
            .await
            .unwrap();
    }
    let approved = TaskId::new();
    let approval = "0190a1b2-0000-7000-8000-0000000000bb";
    TaskJournal::append(
        &sqlite,
        approved,
        0,
        &[
            crate::conformance::fixtures::submission("acme", "research", "approved"),
            JournalEvent::TaskStarted,
            approval_requested(approval, "call_1"),
            approval_resolved(approval, ApprovalStatus::Approved),
            JournalEvent::TaskSucceeded {
                result: serde_json::json!({"email": "jane@example.com"}),
            },
        ],
    )
    .await
    .unwrap();
    let purged = sqlite
        .purge_payloads(approved, &[1, 3, 5], chrono::Utc::now())
        .await
        .unwrap();
    assert!(!purged.is_empty());
    let records: Vec<_> = (1..=7).map(|i| full_record(i, approved)).collect();
    let stored = AuditLog::append(&sqlite, &records).await.unwrap();
    checkpoint_at(&sqlite, &stored[6]).await.unwrap();
    // Record 2's details erased by a retention purge, recorded as such.
    assert!(sqlite.redact_details(2).await.unwrap());
    let purge = crate::audit::AuditRecord::new(
        &crate::audit::conformance::fixtures::principal("amas-retention", "acme"),
        "retention",
        "purge",
        crate::audit::AuditDecision::Recorded,
    )
    .with_task(approved);
    AuditLog::append(&sqlite, &[purge]).await.unwrap();

    let schema = format!("amas_copy_{}", uuid::Uuid::now_v7().simple());
    let pg = PostgresStore::connect_in_schema(&database_url(), 2, &schema)
        .await
        .expect("PostgreSQL at the test URL must be reachable");
    let report = sqlite_to_postgres(&sqlite, &pg).await.unwrap();
    // Two tasks of every variant (one per way of ending), the approved one; an approval each.
    assert_eq!(
        (
            report.tasks,
            report.approvals,
            report.audit_records,
            report.checkpoints
        ),
        (4, 2, 8, 1)
    );
    assert!(!report.already_copied);
    assert_eq!(everything(&pg).await, everything(&sqlite).await);
    let verifier = test_signer().verifier();
    let verified = crate::audit::verify(&pg, &verifier, 1, None).await.unwrap();
    assert!(verified.is_intact(), "{verified:?}");

    // Again: nothing to do. After the target moved on: refused, and nothing written.
    assert!(
        sqlite_to_postgres(&sqlite, &pg)
            .await
            .unwrap()
            .already_copied
    );
    AuditLog::append(&pg, &[full_record(8, approved)])
        .await
        .unwrap();
    let before = everything(&pg).await;
    let refused = sqlite_to_postgres(&sqlite, &pg).await;
    assert!(
        matches!(refused, Err(StoreError::TargetNotEmpty(_))),
        "{refused:?}"
    );
    assert_eq!(everything(&pg).await, before);
    pg.drop_schema().await.unwrap();
    sqlite.close().await;
}
