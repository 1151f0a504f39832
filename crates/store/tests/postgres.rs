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
