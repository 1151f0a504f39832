//! Task leases and their fence against a real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own: what lets
//! several worker processes share one database without two of them ever writing the same task
//! under the same lease.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod pg;

use std::collections::HashSet;
use std::time::Duration;

use amas_store::{Append, Fence, GroupCommit, PostgresStore, StoreError, TaskJournal, TaskLeases};
use amas_types::{JournalEvent, Principal, TaskId, TaskSpec};
use pg::other_process;

const LONG: Duration = Duration::from_secs(60);

async fn fresh_store() -> PostgresStore {
    pg::fresh_store("amas_lease", 8).await
}

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

async fn submit(store: &PostgresStore) -> TaskId {
    let id = TaskId::new();
    store.append(id, 0, &[submission()]).await.expect("submit");
    id
}

/// Two workers claiming at the same time from two connection pools divide the runnable tasks:
/// every task is claimed once, by one of them, under epoch 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_never_get_the_same_task() {
    let store = fresh_store().await;
    let other = other_process(&store).await;
    let mut submitted = HashSet::new();
    for _ in 0..40 {
        submitted.insert(submit(&store).await);
    }
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    // Small claims in rounds, concurrently, so the two really race for the same rows.
    for _ in 0..10 {
        let (a, b) = tokio::join!(store.claim("a", 3, LONG), other.claim("b", 3, LONG));
        mine.extend(a.expect("claim a"));
        theirs.extend(b.expect("claim b"));
    }
    let a: HashSet<TaskId> = mine.iter().map(|l| l.task).collect();
    let b: HashSet<TaskId> = theirs.iter().map(|l| l.task).collect();
    assert_eq!(a.len(), mine.len(), "a claimed a task twice");
    assert_eq!(b.len(), theirs.len(), "b claimed a task twice");
    assert!(a.is_disjoint(&b), "both claimed {:?}", a.intersection(&b));
    let all: HashSet<TaskId> = a.union(&b).copied().collect();
    assert_eq!(all, submitted, "every runnable task is claimed once");
    assert!(mine.iter().chain(&theirs).all(|l| l.epoch == 1));
    // Nothing is left: held leases are not claimed again.
    assert!(store.claim("c", 100, LONG).await.expect("claim").is_empty());
    other.close().await;
    store.drop_schema().await.expect("drop");
}

/// An ended task is never claimed; a held lease is not claimable until it expires, and the
/// next claim then carries a higher epoch, after which the first holder can neither renew nor
/// append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_claimed_again_under_a_higher_epoch() {
    let store = fresh_store().await;
    let ended = submit(&store).await;
    store
        .append(
            ended,
            1,
            &[JournalEvent::TaskCancelled {
                reason: "test".into(),
            }],
        )
        .await
        .expect("cancel");
    let task = submit(&store).await;
    let first = store
        .claim("a", 10, Duration::from_millis(300))
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "only the unfinished task: {first:?}");
    let first = first[0];
    assert_eq!((first.task, first.epoch), (task, 1));
    assert!(store.claim("b", 10, LONG).await.expect("claim").is_empty());

    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = store.claim("b", 10, LONG).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].task, second[0].epoch), (task, 2));

    let renewed = store.renew("a", &[first], LONG).await.expect("renew");
    assert!(
        renewed.is_empty(),
        "a lost lease is not renewed: {renewed:?}"
    );
    let stale = store
        .append_fenced(task, 1, &[JournalEvent::TaskStarted], Some(first.fence()))
        .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost { epoch: 1, .. })),
        "{stale:?}"
    );
    store
        .append_fenced(
            task,
            1,
            &[JournalEvent::TaskStarted],
            Some(second[0].fence()),
        )
        .await
        .expect("the current holder appends");
    // The holder's renewal keeps it.
    let kept = store.renew("b", &second, LONG).await.expect("renew");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].epoch, 2);
    store.drop_schema().await.expect("drop");
}

/// A stale epoch is refused with AMAS-STORE-0014 and writes nothing, in a single append and in
/// a group commit alike, where the others of the batch still commit; an expired lease nobody
/// claimed yet is refused too, and a fenced append never creates a task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_with_a_stale_epoch_is_refused_and_writes_nothing() {
    let store = fresh_store().await;
    let task = submit(&store).await;
    let bystander = submit(&store).await;
    let old = store
        .claim("a", 10, Duration::from_millis(200))
        .await
        .expect("claim");
    assert_eq!(old.len(), 2);
    let old = *old.iter().find(|l| l.task == task).expect("task claimed");

    // Expired, nobody claimed it since: refused all the same.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = store
        .append_fenced(task, 1, &[JournalEvent::TaskStarted], Some(old.fence()))
        .await;
    assert!(
        matches!(expired, Err(StoreError::LeaseLost { .. })),
        "{expired:?}"
    );
    assert_eq!(
        expired.map(drop).err().map(|e| e.code()),
        Some("AMAS-STORE-0014")
    );

    let new = store.claim("b", 10, LONG).await.expect("reclaim");
    let new = *new.iter().find(|l| l.task == task).expect("task reclaimed");
    let batch = [
        Append {
            task,
            expected_last_seq: 1,
            events: vec![JournalEvent::TaskStarted],
            fence: Some(old.fence()),
        },
        Append {
            task: bystander,
            expected_last_seq: 1,
            events: vec![JournalEvent::TaskStarted],
            fence: None,
        },
        Append {
            task: TaskId::new(),
            expected_last_seq: 0,
            events: vec![submission()],
            fence: Some(Fence { epoch: 1 }),
        },
    ];
    let committed = store.group_commit(&batch, &[]).await.expect("group commit");
    assert!(
        matches!(
            committed.appends[0],
            Err(StoreError::LeaseLost { epoch: 1, .. })
        ),
        "{:?}",
        committed.appends[0]
    );
    assert!(committed.appends[1].is_ok(), "{:?}", committed.appends[1]);
    assert!(
        committed.appends[2].is_err(),
        "a fenced append created a task: {:?}",
        committed.appends[2]
    );
    assert_eq!(
        store.read(task, 0).await.expect("read").len(),
        1,
        "nothing written"
    );
    assert_eq!(store.read(batch[2].task, 0).await.expect("read").len(), 0);
    assert_eq!(store.read(bystander, 0).await.expect("read").len(), 2);

    // The group commit honours the current epoch.
    let fresh = [Append {
        task,
        expected_last_seq: 1,
        events: vec![JournalEvent::TaskStarted],
        fence: Some(new.fence()),
    }];
    let committed = store.group_commit(&fresh, &[]).await.expect("group commit");
    assert!(committed.appends[0].is_ok(), "{:?}", committed.appends[0]);
    store.drop_schema().await.expect("drop");
}

/// A worker that stops releases its leases: another claims the tasks at once (no waiting for
/// the expiry) under a higher epoch, and the released holder can no longer append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_are_claimed_at_once() {
    let store = fresh_store().await;
    let other = other_process(&store).await;
    for _ in 0..3 {
        submit(&store).await;
    }
    let held = store.claim("a", 10, LONG).await.expect("claim");
    assert_eq!(held.len(), 3);
    assert!(other.claim("b", 10, LONG).await.expect("claim").is_empty());
    store.release("a", &held).await.expect("release");
    // Releasing again, or somebody else's lease, changes nothing.
    store.release("a", &held).await.expect("release twice");
    let taken = other.claim("b", 10, LONG).await.expect("claim");
    assert_eq!(taken.len(), 3, "released leases are claimable at once");
    assert!(taken.iter().all(|l| l.epoch == 2));
    store.release("a", &held).await.expect("stale release");
    assert!(
        store.claim("c", 10, LONG).await.expect("claim").is_empty(),
        "a stale release does not free b's leases"
    );
    let lease = held[0];
    let late = store
        .append_fenced(
            lease.task,
            1,
            &[JournalEvent::TaskStarted],
            Some(lease.fence()),
        )
        .await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );
    other.close().await;
    store.drop_schema().await.expect("drop");
}
