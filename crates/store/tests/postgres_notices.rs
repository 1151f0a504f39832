//! Commit notices against a real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own: what lets an
//! API process stream the steps a worker process commits. A notice arrives after each commit
//! (single append and group commit), one per task per transaction, with the task's last seq;
//! none for an append that was refused or a transaction that rolled back at its commit; and a
//! listener whose connection was cut says so (`Resync`) and hears the next commits again.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod pg;

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use amas_store::{
    Append, CommitListener, CommitNotice, GroupCommit, PostgresStore, StoreError, TaskJournal,
};
use amas_types::{JournalEvent, Principal, TaskId, TaskSpec};
use pg::database_url;
use pg::other_process;

/// Longer than any notice takes on a quiet machine.
const PATIENCE: Duration = Duration::from_secs(10);

async fn fresh_store() -> PostgresStore {
    pg::fresh_store("amas_notice", 4).await
}

fn submission(title: &str) -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: "research".into(),
            title: title.into(),
            description: "d".into(),
            parameters: serde_json::Map::new(),
            priority: Default::default(),
        },
        principal: Principal::local_operator(),
        trace_id: None,
        parent_span_id: None,
    }
}

async fn next(listener: &mut Box<dyn CommitListener>) -> CommitNotice {
    tokio::time::timeout(PATIENCE, listener.next())
        .await
        .unwrap_or_else(|_| panic!("no notice within {PATIENCE:?}"))
}

/// A listener that is listening (its first notice says so).
async fn listening(store: &PostgresStore) -> Box<dyn CommitListener> {
    let mut listener: Box<dyn CommitListener> = Box::new(store.commit_listener());
    assert_eq!(next(&mut listener).await, CommitNotice::Resync);
    listener
}

/// One notice per committed append, after the commit, from another process's store; one per
/// task for a group commit that appends to a task twice; nothing for a refused append (the
/// next notice heard is the next commit's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_is_noticed_once_per_task_and_refusals_are_not() {
    let store = fresh_store().await;
    let writer = other_process(&store).await;
    let mut listener = listening(&store).await;

    let a = TaskId::new();
    writer
        .append(a, 0, &[submission("a")])
        .await
        .expect("submit");
    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Appended {
            task: a,
            last_seq: 1
        }
    );
    writer
        .append(a, 1, &[JournalEvent::TaskStarted])
        .await
        .expect("append");
    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Appended {
            task: a,
            last_seq: 2
        }
    );

    // A group commit: two appends of `a` (rounds), a new task `b`, a stale append of `a`.
    let b = TaskId::new();
    let append = |task, expected_last_seq, events| Append {
        task,
        expected_last_seq,
        events,
        fence: None,
    };
    let committed = writer
        .group_commit(
            &[
                append(a, 2, vec![JournalEvent::TaskStarted]),
                append(b, 0, vec![submission("b")]),
                append(a, 3, vec![JournalEvent::TaskStarted]),
                append(a, 1, vec![JournalEvent::TaskStarted]),
            ],
            &[],
        )
        .await
        .expect("group commit");
    assert!(
        matches!(committed.appends[3], Err(StoreError::Conflict { .. })),
        "the stale append alone is refused"
    );
    let mut heard = vec![next(&mut listener).await, next(&mut listener).await];
    heard.sort_by_key(|n| match n {
        CommitNotice::Appended { task, .. } => *task != a,
        CommitNotice::Resync => true,
    });
    assert_eq!(
        heard,
        [
            CommitNotice::Appended {
                task: a,
                last_seq: 4
            },
            CommitNotice::Appended {
                task: b,
                last_seq: 1
            },
        ],
        "one notice per task, with its last seq"
    );

    // Refused: a stale single append, a group commit whose only append is stale.
    let refused = writer.append(a, 1, &[JournalEvent::TaskStarted]).await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })));
    let committed = writer
        .group_commit(&[append(b, 0, vec![submission("b")])], &[])
        .await
        .expect("group commit");
    assert!(committed.appends[0].is_err());
    let c = TaskId::new();
    writer
        .append(c, 0, &[submission("c")])
        .await
        .expect("submit");
    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Appended {
            task: c,
            last_seq: 1
        },
        "nothing was heard of the refusals"
    );
    writer.close().await;
    store.drop_schema().await.expect("drop");
}

/// A transaction that fails at its commit (a deferred check, run after the notice was sent
/// inside it) rolls back with its notice: the listener hears only the next commit. Both the
/// single append and the group commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_rolled_back_at_commit_sends_no_notice() {
    let store = fresh_store().await;
    let schema = store.schema().expect("own schema").to_owned();
    let mut conn = PgConnection::connect(&database_url()).await.expect("admin");
    // Fails the commit of any journal row whose event mentions ROLLBACK-ME, at COMMIT time.
    for sql in [
        format!(
            "CREATE FUNCTION \"{schema}\".refuse_marked() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.event::text LIKE '%ROLLBACK-ME%' THEN \
             RAISE EXCEPTION 'refused at commit'; END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE CONSTRAINT TRIGGER refuse_marked AFTER INSERT ON \"{schema}\".journal \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \
             \"{schema}\".refuse_marked()"
        ),
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("trigger");
    }
    let writer = other_process(&store).await;
    let mut listener = listening(&store).await;

    let doomed = TaskId::new();
    let failed = writer.append(doomed, 0, &[submission("ROLLBACK-ME")]).await;
    assert!(failed.is_err(), "the commit failed: {failed:?}");
    let failed = writer
        .group_commit(
            &[Append {
                task: doomed,
                expected_last_seq: 0,
                events: vec![submission("ROLLBACK-ME")],
                fence: None,
            }],
            &[],
        )
        .await;
    assert!(failed.is_err(), "the group's commit failed: {failed:?}");
    assert!(
        writer.read(doomed, 0).await.expect("read").is_empty(),
        "rolled back"
    );

    let kept = TaskId::new();
    writer
        .append(kept, 0, &[submission("kept")])
        .await
        .expect("submit");
    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Appended {
            task: kept,
            last_seq: 1
        },
        "the rolled-back transactions' notices were never delivered"
    );
    writer.close().await;
    conn.close().await.expect("close");
    store.drop_schema().await.expect("drop");
}

/// The listener's connection is cut (the server ends its backend): it reconnects, says
/// `Resync` (what committed meanwhile went unheard), and hears the next commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_listener_reconnects_and_says_so() {
    let store = fresh_store().await;
    let schema = store.schema().expect("own schema").to_owned();
    let mut listener = listening(&store).await;
    let mut conn = PgConnection::connect(&database_url()).await.expect("admin");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("LISTEN \"amas_journal_{schema}\""))
    .fetch_all(&mut conn)
    .await
    .expect("terminate");
    assert_eq!(cut, [true], "one listening backend, cut");

    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Resync,
        "the cut is noticed and said"
    );
    let task = TaskId::new();
    store
        .append(task, 0, &[submission("t")])
        .await
        .expect("submit");
    assert_eq!(
        next(&mut listener).await,
        CommitNotice::Appended { task, last_seq: 1 },
        "listening again"
    );
    conn.close().await.expect("close");
    store.drop_schema().await.expect("drop");
}
