//! Parking and task commands against a real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own: a parked task
//! is not claimed until its deadline or a command for it; a command and its outcome are
//! signalled to listeners in other processes; the first outcome wins; a short claim of one
//! task is refused while another process holds it.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod pg;

use std::time::Duration;

use serde_json::json;

use amas_store::{
    CommandKind, CommandSignal, PostgresStore, TaskCommands, TaskJournal, TaskLeases,
};
use amas_types::{JournalEvent, Principal, TaskId, TaskSpec};
use pg::other_process;

const LONG: Duration = Duration::from_secs(60);

async fn fresh_store() -> PostgresStore {
    pg::fresh_store("amas_cmd", 8).await
}

async fn submit(store: &PostgresStore) -> TaskId {
    let id = TaskId::new();
    let submitted = JournalEvent::TaskSubmitted {
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
    };
    store.append(id, 0, &[submitted]).await.expect("submit");
    id
}

/// A parked task is skipped by claims until its deadline; a pending command wakes it at once
/// (the next claim clears the mark), and once the command is answered a parked task sleeps
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_task_is_claimed_at_its_deadline_or_when_a_command_comes() {
    let store = fresh_store().await;
    let task = submit(&store).await;
    let lease = store.claim("w", 10, LONG).await.expect("claim")[0];

    // Parked an hour: nobody claims it, although its lease is released.
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    store.park("w", &lease, later).await.expect("park");
    assert!(store.claim("x", 10, LONG).await.expect("claim").is_empty());

    // A vote recorded for it: claimable now, under the next epoch.
    let vote = store
        .record(task, CommandKind::Vote, &json!({"approval": "a-1"}))
        .await
        .expect("record");
    let woken = store.claim("x", 10, LONG).await.expect("claim");
    assert_eq!(woken.len(), 1, "the command wakes the parked task");
    assert_eq!((woken[0].task, woken[0].epoch), (task, 2));
    let pending = store.pending(&[task]).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id, pending[0].kind, &pending[0].body),
        (vote, CommandKind::Vote, &json!({"approval": "a-1"}))
    );

    // Answered, then parked again: asleep until the deadline.
    assert!(store.complete(vote, &json!({"ok": 1})).await.expect("done"));
    assert!(store.pending(&[task]).await.expect("pending").is_empty());
    store.park("x", &woken[0], later).await.expect("park");
    assert!(store.claim("y", 10, LONG).await.expect("claim").is_empty());

    // A deadline that passed makes it claimable without any command.
    let lease = store
        .claim_task("z", task, LONG)
        .await
        .expect("short claim");
    let lease = lease.expect("nobody holds the parked task");
    assert_eq!(lease.epoch, 3, "a short claim raises the epoch too");
    store
        .park(
            "z",
            &lease,
            chrono::Utc::now() - chrono::TimeDelta::seconds(1),
        )
        .await
        .expect("park");
    let due = store.claim("y", 10, LONG).await.expect("claim");
    assert_eq!(due.len(), 1, "the deadline passed");
    assert_eq!(due[0].epoch, 4);
    // Parking with a lease that is not held changes nothing.
    store.park("z", &lease, later).await.expect("stale park");
    assert!(
        store
            .renew("y", &due, LONG)
            .await
            .expect("renew")
            .iter()
            .any(|l| l.task == task),
        "the holder keeps its lease"
    );
    store.drop_schema().await.expect("drop");
}

/// Another process hears of a recorded command and of its outcome, and nothing of another
/// schema's commands; the first outcome wins, and answering a task's commands answers only
/// those still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_outcomes_are_signalled_and_the_first_outcome_wins() {
    let store = fresh_store().await;
    let other = other_process(&store).await;
    let mut listener = other.listen().await.expect("listen");
    let task = submit(&store).await;
    // Another installation in the same database: its signals share the channel.
    let neighbour = fresh_store().await;
    let theirs = submit(&neighbour).await;
    neighbour
        .record(theirs, CommandKind::Cancel, &json!({"reason": "theirs"}))
        .await
        .expect("record");

    let id = store
        .record(task, CommandKind::Cancel, &json!({"reason": "stop"}))
        .await
        .expect("record");
    // Signals arrive in commit order: the task's submission (a new task wants a worker),
    // then its command; the neighbour's came in between and was not reported.
    assert_eq!(next(&mut listener).await, CommandSignal::Recorded(task));
    assert_eq!(next(&mut listener).await, CommandSignal::Recorded(task));
    neighbour.drop_schema().await.expect("drop");

    assert_eq!(store.outcome(id).await.expect("outcome"), None);
    assert!(
        other
            .complete(id, &json!({"first": true}))
            .await
            .expect("complete")
    );
    assert_eq!(next(&mut listener).await, CommandSignal::Done(id));
    assert!(
        !store
            .complete(id, &json!({"second": true}))
            .await
            .expect("complete"),
        "an outcome is recorded once"
    );
    assert_eq!(
        store.outcome(id).await.expect("outcome"),
        Some(json!({"first": true}))
    );

    let a = store
        .record(task, CommandKind::Vote, &json!({"n": 1}))
        .await
        .expect("record");
    let b = store
        .record(task, CommandKind::Vote, &json!({"n": 2}))
        .await
        .expect("record");
    assert!(store.complete(a, &json!({"n": 1})).await.expect("complete"));
    assert_eq!(
        store
            .complete_task(task, &json!({"ended": true}))
            .await
            .expect("complete task"),
        1,
        "only the pending one"
    );
    assert_eq!(store.outcome(a).await.expect("a"), Some(json!({"n": 1})));
    assert_eq!(
        store.outcome(b).await.expect("b"),
        Some(json!({"ended": true}))
    );
    assert!(store.pending(&[task]).await.expect("pending").is_empty());
    drop(listener);
    other.close().await;
    store.drop_schema().await.expect("drop");
}

/// A short claim of one task is refused while another process holds it, and for an ended
/// task; it succeeds once the holder released it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_claim_waits_for_nobody_to_hold_the_task() {
    let store = fresh_store().await;
    let task = submit(&store).await;
    let held = store.claim("worker", 10, LONG).await.expect("claim")[0];
    assert_eq!(
        store.claim_task("api", task, LONG).await.expect("short"),
        None,
        "the worker holds it"
    );
    store.release("worker", &[held]).await.expect("release");
    let short = store
        .claim_task("api", task, LONG)
        .await
        .expect("short")
        .expect("nobody holds it");
    assert_eq!(short.epoch, 2);
    store
        .append_fenced(
            task,
            1,
            &[JournalEvent::TaskCancelled {
                reason: "stop".into(),
            }],
            Some(short.fence()),
        )
        .await
        .expect("the short lease's append");
    store.release("api", &[short]).await.expect("release");
    assert_eq!(
        store.claim_task("api", task, LONG).await.expect("short"),
        None,
        "an ended task is never claimed"
    );
    assert_eq!(
        store
            .claim_task("api", TaskId::new(), LONG)
            .await
            .expect("short"),
        None,
        "nor an unknown one"
    );
    store.drop_schema().await.expect("drop");
}

/// The next signal, within 10 s.
async fn next(listener: &mut amas_store::CommandListener) -> CommandSignal {
    tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("a signal within 10 s")
        .expect("signal")
}
