//! The conformance suite against SQLite, in memory and on disk (where several connections
//! really race), and the durability of an append across a close and reopen.

use std::sync::Arc;

use amas_store::{SqliteStore, TaskJournal};
use amas_types::{JournalEvent, Principal, TaskId, TaskSpec, TaskStatus};

mod in_memory {
    use super::*;

    amas_store::journal_conformance_tests!(|| async {
        Arc::new(SqliteStore::in_memory().await.expect("in-memory store"))
    });
    amas_store::group_commit_conformance_tests!(
        || async { Arc::new(SqliteStore::in_memory().await.expect("in-memory store")) },
        |_store| async {}
    );
}

mod on_disk {
    use super::*;

    amas_store::group_commit_conformance_tests!(
        || async {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            Arc::new(SqliteStore::open(&dir).await.expect("store on disk"))
        },
        |store: Arc<SqliteStore>| async move {
            store.close().await;
            if let Some(dir) = store.data_dir() {
                std::fs::remove_dir_all(dir).expect("remove temp dir");
            }
        }
    );

    amas_store::journal_conformance_tests!(
        || async {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            Arc::new(SqliteStore::open(&dir).await.expect("store on disk"))
        },
        |store: Arc<SqliteStore>| async move {
            store.close().await;
            if let Some(dir) = store.data_dir() {
                std::fs::remove_dir_all(dir).expect("remove temp dir");
            }
        }
    );
}

fn submission() -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: "research".into(),
            title: "durable".into(),
            description: "survives a reopen".into(),
            parameters: serde_json::Map::new(),
            priority: Default::default(),
        },
        principal: Principal::local_operator(),
        trace_id: None,
        parent_span_id: None,
    }
}

/// What an append returned must still be there after the store is closed and opened again,
/// projection included, and the reopened store must go on appending from the right seq.
#[tokio::test]
async fn appends_survive_close_and_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("nested").join("data");
    let id = TaskId::new();
    let written = {
        let store = SqliteStore::open(&data_dir).await.expect("open");
        let mut written = store.append(id, 0, &[submission()]).await.expect("submit");
        written.extend(
            store
                .append(id, 1, &[JournalEvent::TaskStarted])
                .await
                .expect("start"),
        );
        store.close().await;
        written
    };
    assert!(
        data_dir.join("amas.db").is_file(),
        "the database file is in the data dir"
    );

    let store = SqliteStore::open(&data_dir).await.expect("reopen");
    assert_eq!(store.read(id, 0).await.expect("read"), written);
    let summary = store
        .summary(id)
        .await
        .expect("summary")
        .expect("known task");
    assert_eq!((summary.status, summary.last_seq), (TaskStatus::Running, 2));
    assert_eq!(store.unfinished().await.expect("unfinished"), vec![id]);
    let stale = store.append(id, 1, &[JournalEvent::TaskStarted]).await;
    assert!(
        matches!(
            stale,
            Err(amas_store::StoreError::Conflict { actual: 2, .. })
        ),
        "{stale:?}"
    );
}

/// Opening twice in a row must not re-run or trip over migrations.
#[tokio::test]
async fn reopening_an_up_to_date_database_is_a_no_op() {
    let dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let store = SqliteStore::open(dir.path()).await.expect("open");
        store.ping().await.expect("ping");
        store.close().await;
    }
}

/// The pragmas that make the journal durable must really be in force on pooled connections.
#[tokio::test]
async fn file_store_runs_in_wal_mode_with_full_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal_mode");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .expect("synchronous");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("foreign_keys");
    assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
}

/// A row changed behind AMAS's back is reported as corrupt, not silently skipped.
#[tokio::test]
async fn an_undecodable_event_is_reported_as_corrupt() {
    let store = SqliteStore::in_memory().await.expect("store");
    let id = TaskId::new();
    store.append(id, 0, &[submission()]).await.expect("submit");
    sqlx::query("UPDATE journal SET event = '{\"type\":\"no_such_event\"}'")
        .execute(store.pool())
        .await
        .expect("tamper");
    let err = store.read(id, 0).await.expect_err("must not decode");
    assert_eq!(err.code(), "AMAS-STORE-0004", "{err}");
}

/// A database created before approvals existed (schema 0001 only, with a task in it) is migrated
/// in place: the task, its journal and its status survive, and the new status is accepted.
#[tokio::test]
async fn an_existing_database_migrates_to_approvals_without_losing_tasks() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    let dir = tempfile::tempdir().expect("temp dir");
    let only_first = dir.path().join("migrations");
    std::fs::create_dir_all(&only_first).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    std::fs::copy(
        source.join("0001_task_journal.sql"),
        only_first.join("0001_task_journal.sql"),
    )
    .unwrap();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.path().join("amas.db"))
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(only_first.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let task = TaskId::new();
    let event = serde_json::to_string(&submission()).unwrap();
    let id = task.0.hyphenated().to_string();
    sqlx::query(
        "INSERT INTO tasks VALUES (?, 'acme', 'research', 'durable', 5, 'running', \
         '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 2)",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();
    for (seq, json) in [(1, event), (2, r#"{"type":"task_started"}"#.to_owned())] {
        sqlx::query("INSERT INTO journal VALUES (?, ?, '2026-01-01T00:00:00.000000Z', 'x', ?)")
            .bind(&id)
            .bind(seq)
            .bind(json)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = SqliteStore::open(dir.path()).await.expect("migrates");
    let summary = store
        .summary(task)
        .await
        .unwrap()
        .expect("the task survived");
    assert_eq!(summary.status, TaskStatus::Running);
    assert_eq!(summary.last_seq, 2);
    assert_eq!(store.read(task, 0).await.unwrap().len(), 2, "journal kept");
    assert_eq!(store.unfinished().await.unwrap(), vec![task]);
    let approval = JournalEvent::ApprovalRequested {
        approval_id: amas_types::ApprovalId::new(),
        step: "research".into(),
        call_id: "c".into(),
        agent: "research".into(),
        tool: "calculator".into(),
        risk: "low".into(),
        arguments: serde_json::json!({}),
        reasons: vec![],
        required_approvals: 1,
        requested_by: "alice".into(),
        expires_at: chrono::Utc::now(),
        requested_by_issuer: "amas-local".into(),
    };
    store.append(task, 2, &[approval]).await.unwrap();
    let summary = store.summary(task).await.unwrap().unwrap();
    assert_eq!(summary.status, TaskStatus::WaitingApproval);
}

/// SQLite runs one process and holds no leases: a fenced append is refused, never written
/// as if unfenced, alone or in a group commit.
#[tokio::test]
async fn sqlite_refuses_fenced_appends() {
    use amas_store::{Append, Fence, GroupCommit, StoreError};
    let store = SqliteStore::in_memory().await.expect("in-memory store");
    let task = TaskId::new();
    store
        .append(task, 0, &[submission()])
        .await
        .expect("submit");
    let fence = Some(Fence { epoch: 1 });
    let single = store
        .append_fenced(task, 1, &[JournalEvent::TaskStarted], fence)
        .await;
    assert!(
        matches!(single, Err(StoreError::InvalidAppend(_))),
        "{single:?}"
    );
    let batch = [Append {
        task,
        expected_last_seq: 1,
        events: vec![JournalEvent::TaskStarted],
        fence,
    }];
    let committed = store.group_commit(&batch, &[]).await.expect("group commit");
    assert!(
        matches!(committed.appends[0], Err(StoreError::InvalidAppend(_))),
        "{:?}",
        committed.appends[0]
    );
    assert_eq!(store.read(task, 0).await.expect("read").len(), 1);
}
