//! The conformance suite against a real PostgreSQL: `AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`. Every test gets its own schema, dropped afterwards,
//! so parallel runs on one database do not collide.

use std::sync::Arc;

use amas_store::{PostgresStore, StoreError, TaskJournal};
use amas_types::{JournalEvent, Principal, TaskId, TaskSpec};

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[expect(clippy::panic, reason = "a test fixture: no database, no test")]
async fn fresh_store() -> Arc<PostgresStore> {
    let schema = format!("amas_test_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect_in_schema(&database_url(), 8, &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"));
    Arc::new(store)
}

#[expect(clippy::expect_used, reason = "a test fixture")]
async fn drop_store(store: Arc<PostgresStore>) {
    store.drop_schema().await.expect("drop test schema");
}

amas_store::journal_conformance_tests!(fresh_store, drop_store);
amas_store::group_commit_conformance_tests!(fresh_store, drop_store);

fn submission() -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: "research".into(),
            title: "t".into(),
            description: "d".into(),
            parameters: serde_json::Map::new(),
            priority: Default::default(),
        },
        principal: Principal::local_operator(),
        trace_id: None,
        parent_span_id: None,
    }
}

/// Two stores on the same schema (two AMAS processes) see each other's appends, and the second
/// writer of the same seq loses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_journal() {
    let first = fresh_store().await;
    let schema = first.schema().expect("own schema").to_owned();
    let second = PostgresStore::connect_in_schema(&database_url(), 2, &schema)
        .await
        .expect("second connection");
    let id = TaskId::new();
    first.append(id, 0, &[submission()]).await.expect("submit");
    second
        .append(id, 1, &[JournalEvent::TaskStarted])
        .await
        .expect("start");
    let late = first.append(id, 1, &[JournalEvent::TaskStarted]).await;
    assert!(
        matches!(late, Err(StoreError::Conflict { actual: 2, .. })),
        "{late:?}"
    );
    assert_eq!(first.read(id, 0).await.expect("read").len(), 2);
    second.close().await;
    drop_store(first).await;
}

fn audit_record(task: TaskId) -> amas_store::AuditRecord {
    amas_store::AuditRecord::new(
        &Principal::local_operator(),
        "policy",
        "tool_call",
        amas_store::audit::AuditDecision::Allow,
    )
    .with_task(task)
}

/// A group commit is one transaction, not one per append: every journal row, projection row
/// and audit record of the batch carries the same transaction id (`xmin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_is_one_transaction() {
    use amas_store::{Append, GroupCommit};
    let store = fresh_store().await;
    let (old, new_a, new_b) = (TaskId::new(), TaskId::new(), TaskId::new());
    store.append(old, 0, &[submission()]).await.expect("submit");
    let batch = [
        Append {
            task: new_a,
            expected_last_seq: 0,
            events: vec![submission(), JournalEvent::TaskStarted],
            fence: None,
        },
        Append {
            task: old,
            expected_last_seq: 1,
            events: vec![JournalEvent::TaskStarted],
            fence: None,
        },
        Append {
            task: new_b,
            expected_last_seq: 0,
            events: vec![submission()],
            fence: None,
        },
        Append {
            task: new_b,
            expected_last_seq: 1,
            events: vec![JournalEvent::TaskStarted],
            fence: None,
        },
    ];
    let committed = store
        .group_commit(&batch, &[audit_record(old), audit_record(new_a)])
        .await
        .expect("group commit");
    assert!(committed.appends.iter().all(Result::is_ok), "{committed:?}");
    let ids: Vec<uuid::Uuid> = vec![old.0, new_a.0, new_b.0];
    let journal: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT xmin::text FROM journal WHERE task_id = ANY($1) AND seq > 1 OR \
         task_id = ANY($2)",
    )
    .bind(vec![old.0])
    .bind(vec![new_a.0, new_b.0])
    .fetch_all(store.pool())
    .await
    .expect("journal xmin");
    let tasks: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT xmin::text FROM tasks WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(store.pool())
            .await
            .expect("tasks xmin");
    let audit: Vec<String> = sqlx::query_scalar("SELECT DISTINCT xmin::text FROM audit_log")
        .fetch_all(store.pool())
        .await
        .expect("audit xmin");
    assert_eq!(
        journal.len(),
        1,
        "journal rows of one transaction: {journal:?}"
    );
    assert_eq!(
        tasks, journal,
        "the projection moved in the same transaction"
    );
    assert_eq!(audit, journal, "the audit records committed with them");
    assert_eq!(store.read(new_b, 0).await.expect("read").len(), 2);
    drop_store(store).await;
}

/// A task another process creates while a batch wants to create it too: the batch's append of
/// it is a conflict naming the seq that won, and the rest of the batch commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_elsewhere_meanwhile_refuses_only_its_append() {
    use amas_store::{Append, GroupCommit};
    let store = fresh_store().await;
    let (contested, other) = (TaskId::new(), TaskId::new());
    // The other process's creation, still open when the batch starts.
    let mut elsewhere = store.pool().begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO tasks (id, tenant, task_type, title, priority, status, created_at, \
         updated_at, last_seq) VALUES ($1, 'local', 'research', 't', 5, 'queued', now(), now(), 1)",
    )
    .bind(contested.0)
    .execute(&mut *elsewhere)
    .await
    .expect("insert elsewhere");
    let batch = [
        Append {
            task: contested,
            expected_last_seq: 0,
            events: vec![submission()],
            fence: None,
        },
        Append {
            task: other,
            expected_last_seq: 0,
            events: vec![submission()],
            fence: None,
        },
    ];
    let racing = {
        let store = Arc::clone(&store);
        #[expect(clippy::disallowed_methods, reason = "joined below")]
        tokio::spawn(async move { store.group_commit(&batch, &[]).await })
    };
    // The batch either waits on the open insert or has not reached it yet: both end the same.
    tokio::task::yield_now().await;
    elsewhere.commit().await.expect("commit elsewhere");
    let committed = racing.await.expect("join").expect("group commit");
    let mut results = committed.appends.into_iter();
    assert!(
        matches!(
            results.next(),
            Some(Err(StoreError::Conflict { actual: 1, .. }))
        ),
        "the contested append is a conflict"
    );
    assert!(
        matches!(results.next(), Some(Ok(ref r)) if r.len() == 1),
        "the other append committed"
    );
    assert_eq!(store.read(other, 0).await.expect("read").len(), 1);
    assert!(store.read(contested, 0).await.expect("read").is_empty());
    drop_store(store).await;
}
