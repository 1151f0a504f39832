//! Fair claims across tenants on a real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own: one tenant's
//! thousand queued tasks do not hold back another's single task, weights divide the claims,
//! a tenant's priorities order its own tasks, an idle tenant banks no credit, and a per-tenant
//! cap holds across two claimers racing from two connection pools. Also the counts admission
//! and the queue metrics read.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod pg;

use std::time::Duration;

use amas_store::{
    Append, Fairness, GroupCommit, Lease, PostgresStore, TaskJournal, TaskLeases, TaskQueue,
    TenantShare,
};
use amas_types::{JournalEvent, Principal, Priority, TaskId, TaskSpec, TenantId};
use pg::database_url;

const LONG: Duration = Duration::from_secs(60);

async fn fresh_store() -> PostgresStore {
    pg::fresh_store("amas_fair", 8).await
}

fn submission(tenant: &str, priority: u8) -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: "research".into(),
            title: "t".into(),
            description: "d".into(),
            parameters: serde_json::Map::new(),
            priority: Priority::new(i64::from(priority)).expect("priority"),
        },
        principal: Principal {
            tenant: TenantId(tenant.to_owned()),
            ..Principal::local_operator()
        },
        trace_id: None,
        parent_span_id: None,
    }
}

/// Submits `n` tasks of `tenant`, oldest first, in group commits.
async fn submit(store: &PostgresStore, tenant: &str, priority: u8, n: usize) -> Vec<TaskId> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<Append> = chunk
            .iter()
            .map(|_| Append {
                task: TaskId::new(),
                expected_last_seq: 0,
                events: vec![submission(tenant, priority)],
                fence: None,
            })
            .collect();
        let committed = store.group_commit(&batch, &[]).await.expect("submit");
        assert!(committed.appends.iter().all(Result::is_ok));
        ids.extend(batch.iter().map(|a| a.task));
    }
    ids
}

/// The tenant of each claimed task.
async fn tenants_of(store: &PostgresStore, leases: &[Lease]) -> Vec<String> {
    let mut out = Vec::new();
    for lease in leases {
        let summary = store.summary(lease.task).await.expect("summary");
        out.push(summary.expect("the task exists").tenant.0);
    }
    out
}

/// The task ends (it is no longer runnable) and its lease goes.
async fn finish(store: &PostgresStore, worker: &str, leases: &[Lease]) {
    for lease in leases {
        store
            .append_fenced(
                lease.task,
                1,
                &[JournalEvent::TaskCancelled {
                    reason: "done".into(),
                }],
                Some(lease.fence()),
            )
            .await
            .expect("end the task");
    }
    store.release(worker, leases).await.expect("release");
}

/// Claims `rounds` times one task at a time (a single slot), finishing each: the tenants in
/// the order they were served.
async fn serve_one_by_one(
    store: &PostgresStore,
    fairness: &Fairness,
    rounds: usize,
) -> Vec<String> {
    let mut order = Vec::new();
    for _ in 0..rounds {
        let leases = store
            .claim_fair("w", 1, LONG, fairness)
            .await
            .expect("claim");
        order.extend(tenants_of(store, &leases).await);
        finish(store, "w", &leases).await;
    }
    order
}

fn weights(tenants: &[(&str, u32)]) -> Fairness {
    Fairness {
        tenants: tenants
            .iter()
            .map(|(t, w)| TenantShare {
                tenant: (*t).to_owned(),
                weight: *w,
                max_running: None,
            })
            .collect(),
        ..Fairness::default()
    }
}

/// Tenant a has been served for a while and has a thousand tasks waiting, all at the highest
/// priority; b then submits one task at the lowest. With one slot, b's task is among the next
/// two claims (a's next may tie with it and be older), not after a's thousand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_task_is_not_starved_by_another_tenant_s_thousand() {
    let store = fresh_store().await;
    submit(&store, "a", 10, 1000).await;
    let fairness = Fairness::default();
    let before = serve_one_by_one(&store, &fairness, 20).await;
    assert!(before.iter().all(|t| t == "a"));
    submit(&store, "b", 1, 1).await;
    let after = serve_one_by_one(&store, &fairness, 2).await;
    assert!(
        after.contains(&"b".to_owned()),
        "b waits behind a: {after:?}"
    );
    // The same with a batch claim of several slots: b's task is in it.
    submit(&store, "b", 1, 1).await;
    let batch = store
        .claim_fair("w", 4, LONG, &fairness)
        .await
        .expect("claim");
    let tenants = tenants_of(&store, &batch).await;
    assert!(tenants.contains(&"b".to_owned()), "{tenants:?}");
    store.drop_schema().await.expect("drop");
}

/// While both have tasks waiting, a tenant of weight 3 is served three times as often as one
/// of weight 1, one at a time and in batches alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_divide_the_claims() {
    let store = fresh_store().await;
    submit(&store, "a", 5, 300).await;
    submit(&store, "c", 5, 300).await;
    let fairness = weights(&[("c", 3)]);
    let order = serve_one_by_one(&store, &fairness, 40).await;
    let c = order.iter().filter(|t| *t == "c").count();
    assert_eq!(c, 30, "c served 3:1 one at a time: {order:?}");
    // In any window of 8 consecutive claims, each tenant got its share within one task.
    for window in order.windows(8) {
        let c = window.iter().filter(|t| *t == "c").count();
        assert!((5..=7).contains(&c), "{window:?} in {order:?}");
    }
    let mut c = 0;
    for _ in 0..10 {
        let leases = store
            .claim_fair("w", 8, LONG, &fairness)
            .await
            .expect("claim");
        assert_eq!(leases.len(), 8);
        c += tenants_of(&store, &leases)
            .await
            .iter()
            .filter(|t| *t == "c")
            .count();
        finish(&store, "w", &leases).await;
    }
    assert_eq!(c, 60, "c served 3:1 in batches of 8");
    store.drop_schema().await.expect("drop");
}

/// Within a tenant, the highest priority first, then the oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_then_age_orders_a_tenant_s_tasks() {
    let store = fresh_store().await;
    let low = submit(&store, "a", 2, 2).await;
    let high = submit(&store, "a", 9, 2).await;
    let mid = submit(&store, "a", 5, 1).await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let leases = store
            .claim_fair("w", 1, LONG, &Fairness::default())
            .await
            .expect("claim");
        order.extend(leases.iter().map(|l| l.task));
        finish(&store, "w", &leases).await;
    }
    let want: Vec<TaskId> = [high, mid, low].concat();
    assert_eq!(order, want, "9, 9, 5, 2, 2, each pair oldest first");
    store.drop_schema().await.expect("drop");
}

/// Tenant c is idle while a is served a hundred times; when c then submits a hundred tasks it
/// restarts from the system's virtual time: the two alternate, c does not take a hundred slots
/// in a row to catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tenant_banks_no_credit() {
    let store = fresh_store().await;
    submit(&store, "a", 5, 200).await;
    let fairness = Fairness::default();
    serve_one_by_one(&store, &fairness, 100).await;
    submit(&store, "c", 5, 100).await;
    let order = serve_one_by_one(&store, &fairness, 20).await;
    let a = order.iter().filter(|t| *t == "a").count();
    assert!((9..=11).contains(&a), "a and c alternate: {order:?}");
    store.drop_schema().await.expect("drop");
}

/// Many tenants: one at a time, each is served once before any is served twice; and tenants
/// whose tasks are all running (nothing to claim) never crowd out the one that has work, however
/// many there are (a claim looks at the next tenants in line that have a task to claim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tenants_take_turns_and_busy_ones_do_not_crowd_out_others() {
    let store = fresh_store().await;
    let names: Vec<String> = (0..50).map(|i| format!("t{i:02}")).collect();
    for name in &names {
        submit(&store, name, 5, 3).await;
    }
    let fairness = Fairness::default();
    let order = serve_one_by_one(&store, &fairness, 50).await;
    let mut served = order.clone();
    served.sort();
    served.dedup();
    assert_eq!(served.len(), 50, "each of the 50 once: {order:?}");
    // Now every tenant's remaining tasks are held (running), and z has tasks waiting.
    let held = store
        .claim_fair("w", 1000, LONG, &fairness)
        .await
        .expect("claim");
    assert_eq!(held.len(), 100);
    submit(&store, "z", 5, 2).await;
    let next = store
        .claim_fair("w", 1, LONG, &fairness)
        .await
        .expect("claim");
    assert_eq!(tenants_of(&store, &next).await, ["z"]);
    store.drop_schema().await.expect("drop");
}

/// Tenant a may run 2 tasks at once. Two claimers race from two pools, again and again, for
/// more than that: a never holds more than 2 live leases, b (uncapped) takes the rest of the
/// slots, and once one of a's tasks ends, a gets exactly one more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_across_racing_claimers() {
    let store = fresh_store().await;
    let schema = store.schema().expect("own schema").to_owned();
    let other = PostgresStore::connect_in_schema(&database_url(), 4, &schema)
        .await
        .expect("second pool");
    submit(&store, "a", 10, 50).await;
    submit(&store, "b", 1, 50).await;
    let fairness = Fairness {
        tenants: vec![TenantShare {
            tenant: "a".into(),
            weight: 1,
            max_running: Some(2),
        }],
        ..Fairness::default()
    };
    let mut held: Vec<(String, Lease)> = Vec::new();
    for _ in 0..10 {
        let (x, y) = tokio::join!(
            store.claim_fair("x", 3, LONG, &fairness),
            other.claim_fair("y", 3, LONG, &fairness)
        );
        for (worker, leases) in [("x", x.expect("claim x")), ("y", y.expect("claim y"))] {
            for (tenant, lease) in tenants_of(&store, &leases).await.into_iter().zip(leases) {
                held.push((format!("{worker}:{tenant}"), lease));
            }
        }
    }
    let of_a: Vec<&(String, Lease)> = held.iter().filter(|(k, _)| k.ends_with(":a")).collect();
    assert_eq!(of_a.len(), 2, "a holds exactly its cap: {held:?}");
    assert_eq!(held.len(), 52, "b took every other claim");
    let (key, lease) = of_a[0];
    finish(&store, key.split(':').next().expect("worker"), &[*lease]).await;
    submit(&store, "b", 1, 5).await;
    let more = other
        .claim_fair("y", 10, LONG, &fairness)
        .await
        .expect("claim");
    let tenants = tenants_of(&store, &more).await;
    assert_eq!(
        tenants.iter().filter(|t| *t == "a").count(),
        1,
        "one of a's ended, one more starts: {tenants:?}"
    );
    other.close().await;
    store.drop_schema().await.expect("drop");
}

/// Admission's counts stop at the limits asked about; the backlog counts only tasks no live
/// lease holds, names the tenants asked about, and sums the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_counts_and_backlog_read_the_queue() {
    let store = fresh_store().await;
    submit(&store, "a", 5, 30).await;
    submit(&store, "b", 5, 4).await;
    submit(&store, "c", 5, 2).await;
    let waiting = store.waiting("b", Some(100), 1000).await.expect("waiting");
    assert_eq!((waiting.tenant, waiting.total), (4, 36));
    let bounded = store.waiting("a", Some(10), 20).await.expect("waiting");
    assert_eq!(
        (bounded.tenant, bounded.total),
        (10, 20),
        "counts stop at the limits"
    );
    let unlimited = store.waiting("a", None, 1000).await.expect("waiting");
    assert_eq!(unlimited.tenant, 0, "no tenant limit: not counted");

    let leases = store
        .claim_fair("w", 6, LONG, &Fairness::default())
        .await
        .expect("claim");
    let claimed = tenants_of(&store, &leases).await;
    let of_a = u64::try_from(claimed.iter().filter(|t| *t == "a").count()).expect("count");
    let backlog = store.backlog(&["a".to_owned()]).await.expect("backlog");
    let depth = |t: Option<&str>| {
        backlog
            .iter()
            .find(|b| b.tenant.as_deref() == t)
            .map(|b| b.depth)
    };
    assert_eq!(
        depth(Some("a")),
        Some(30 - of_a),
        "leased tasks are not waiting: {backlog:?}"
    );
    assert_eq!(
        depth(None),
        Some(6 - (6 - of_a)),
        "b and c together: {backlog:?}"
    );
    assert!(
        backlog
            .iter()
            .all(|b| b.oldest_age < Duration::from_secs(60))
    );
    store.drop_schema().await.expect("drop");
}
