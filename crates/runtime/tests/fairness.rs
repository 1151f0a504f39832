//! Scheduling across tenants in one process on a real SQLite journal (the production
//! composition): one tenant's thousands of queued tasks do not hold back another tenant's
//! single task, a tenant's cap on running tasks holds without stopping the others, and a
//! tenant at its queue limit is refused (AMAS-TASK-0007) while another is still admitted.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;

use amas_config::TenantSchedule;
use amas_types::{JournalEvent, Principal, TaskId, TenantId};
use common::{FakeModel, Harness, harness_with, spec, valid};

fn principal(tenant: &str) -> Principal {
    Principal {
        tenant: TenantId(tenant.to_owned()),
        ..Principal::local_operator()
    }
}

async fn fair_harness(edit: impl FnOnce(&mut amas_config::AmasConfig)) -> Harness {
    let mut config = common::config();
    config.runtime.queue_capacity = 20_000;
    edit(&mut config);
    let model = Arc::new(FakeModel::default());
    for agent in ["research", "analysis", "synthesis"] {
        model.answer(agent, vec![valid(agent)]);
    }
    harness_with(config, tempfile::tempdir().unwrap(), model).await
}

/// Submits `n` tasks of `tenant` concurrently (they share group commits).
async fn submit_many(h: &Harness, tenant: &str, n: usize) -> Vec<TaskId> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let submitted = join_all(chunk.iter().map(|_| {
            h.runtime
                .admission()
                .submit(spec("research_report"), principal(tenant), None)
        }))
        .await;
        ids.extend(submitted.into_iter().map(|r| r.expect("admitted").task_id));
    }
    ids
}

/// When the task's journal recorded `kind` (`task_submitted`, `task_started`, an end).
async fn when(h: &Harness, task: TaskId, kind: &str) -> Option<DateTime<Utc>> {
    h.journal
        .read(task, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|r| match kind {
            "end" => matches!(
                r.event,
                JournalEvent::TaskSucceeded { .. } | JournalEvent::TaskFailed { .. }
            ),
            other => r.event.kind() == other,
        })
        .map(|r| r.recorded_at)
}

/// Tenant a has 3,000 tasks queued when two slots start running them; b then submits one.
/// b's task starts after at most two more of a's (the one tied with it, and one racing for the
/// other slot), and ends after a handful of a's end (those already running), not after the
/// thousands queued before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_s_thousands_do_not_starve_another_s_single_task() {
    let h = fair_harness(|c| c.runtime.max_concurrent_tasks = 2).await;
    let a = submit_many(&h, "a", 3000).await;
    h.runtime.scheduler().start().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued = h.runtime.scheduler().queue_depth();
    assert!(queued > 2900, "a's tasks wait: {queued}");
    let b = submit_many(&h, "b", 1).await[0];
    let state = h.wait(b).await;
    assert_eq!(state.status.as_str(), "succeeded");
    let submitted = when(&h, b, "task_submitted").await.unwrap();
    let started = when(&h, b, "task_started").await.unwrap();
    let ended = when(&h, b, "end").await.unwrap();
    let (mut started_between, mut ended_between) = (0, 0);
    for task in &a {
        if when(&h, *task, "task_started")
            .await
            .is_some_and(|t| t > submitted && t < started)
        {
            started_between += 1;
        }
        if when(&h, *task, "end")
            .await
            .is_some_and(|t| t > submitted && t < ended)
        {
            ended_between += 1;
        }
    }
    assert!(
        started_between <= 2,
        "{started_between} of a's tasks started while b's waited"
    );
    assert!(
        ended_between <= 6,
        "{ended_between} of a's tasks ended before b's did"
    );
}

/// Tenant a may run one task at a time; with four slots its tasks never overlap, while b's run
/// beside them (the cap skips a, it does not hold the slots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_s_cap_holds_and_does_not_block_the_others() {
    let h = fair_harness(|c| {
        c.runtime.max_concurrent_tasks = 4;
        c.scheduling.tenants.insert(
            "a".into(),
            TenantSchedule {
                max_running: Some(1),
                ..TenantSchedule::default()
            },
        );
    })
    .await;
    let a = submit_many(&h, "a", 12).await;
    let b = submit_many(&h, "b", 12).await;
    h.runtime.scheduler().start().await;
    let mut spans = Vec::new();
    for task in &a {
        h.wait(*task).await;
        spans.push((
            when(&h, *task, "task_started").await.unwrap(),
            when(&h, *task, "end").await.unwrap(),
        ));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "a ran two at once: {pair:?}");
    }
    let last_a = spans.last().unwrap().1;
    let mut b_before = 0;
    for task in &b {
        h.wait(*task).await;
        if when(&h, *task, "end").await.unwrap() < last_a {
            b_before += 1;
        }
    }
    assert!(
        b_before >= 6,
        "b was held up by a's cap: {b_before} ended first"
    );
}

/// Tenant a may have 3 tasks waiting: the 4th is refused with AMAS-TASK-0007, leaving no
/// trace, while b is admitted; once a's tasks start, a is admitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_queue_limit_is_refused_while_another_is_admitted() {
    let h = fair_harness(|c| {
        c.scheduling.default.max_queued = Some(3);
    })
    .await;
    submit_many(&h, "a", 3).await;
    let err = h
        .runtime
        .admission()
        .submit(spec("research_report"), principal("a"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-TASK-0007", "{err}");
    assert!(err.to_string().contains("retry after"), "{err}");
    assert_eq!(h.journal.unfinished().await.unwrap().len(), 3, "no trace");
    submit_many(&h, "b", 3).await;
    h.runtime.scheduler().start().await;
    for _ in 0..200 {
        if h.runtime.scheduler().queue_depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    submit_many(&h, "a", 1).await;
}
