//! Group commit on PostgreSQL (`AMAS_TEST_DATABASE_URL`, or the local test database; skipped
//! when unreachable) and, for reference, SQLite (a file, WAL, `synchronous=FULL`): a batch of
//! 32 tasks' appends (each a new task's submission and start) with one audit record per task,
//! written by `GroupCommit::group_commit` (one transaction) against one transaction per append
//! and one for the audit records (what a backend without group commit does), in the same run.
//! Criterion reports appends/s.
//!
//! Run: `cargo bench --workspace --bench group_commit`.

use std::hint::black_box;
use std::sync::Arc;

use amas_store::audit::{AuditDecision, AuditLog, AuditRecord};
use amas_store::{Append, GroupCommit, PostgresStore, SqliteStore, TaskJournal};
use amas_types::{JournalEvent, Principal, Priority, TaskId, TaskSpec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Appends (tasks) per batch: the 32 concurrent tasks of the orchestration bench.
const TASKS: usize = 32;

fn batch() -> (Vec<Append>, Vec<AuditRecord>) {
    let mut appends = Vec::with_capacity(TASKS);
    let mut audit = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let task = TaskId::new();
        appends.push(Append {
            task,
            expected_last_seq: 0,
            events: vec![
                JournalEvent::TaskSubmitted {
                    spec: TaskSpec {
                        task_type: "research_report".into(),
                        title: format!("t{i}"),
                        description: "d".into(),
                        parameters: serde_json::Map::new(),
                        priority: Priority::DEFAULT,
                    },
                    principal: Principal::local_operator(),
                    trace_id: None,
                    parent_span_id: None,
                },
                JournalEvent::TaskStarted,
            ],
            fence: None,
        });
        audit.push(
            AuditRecord::new(
                &Principal::local_operator(),
                "policy",
                "task_submit",
                AuditDecision::Allow,
            )
            .with_task(task)
            .with_resource("research_report"),
        );
    }
    (appends, audit)
}

/// One transaction per append, then one for the audit records.
async fn one_by_one<S: GroupCommit>(store: &S, appends: &[Append], audit: &[AuditRecord]) {
    for a in appends {
        black_box(
            TaskJournal::append(store, a.task, a.expected_last_seq, &a.events)
                .await
                .ok(),
        );
    }
    black_box(AuditLog::append(store, audit).await.ok());
}

fn run<S: GroupCommit + 'static>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &Arc<S>,
) {
    let mut group = c.benchmark_group(format!("group_commit_{name}"));
    group.sample_size(20);
    group.throughput(Throughput::Elements(TASKS as u64));
    group.bench_function("one_transaction_per_append", |b| {
        b.to_async(rt).iter_batched(
            batch,
            |(appends, audit)| {
                let store = Arc::clone(store);
                async move { one_by_one(store.as_ref(), &appends, &audit).await }
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("group_commit", |b| {
        b.to_async(rt).iter_batched(
            batch,
            |(appends, audit)| {
                let store = Arc::clone(store);
                async move { black_box(store.group_commit(&appends, &audit).await.ok()) }
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let url = std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("amas_bench_{}", uuid::Uuid::now_v7().simple());
    match rt.block_on(PostgresStore::connect_in_schema(&url, 8, &schema)) {
        Ok(store) => {
            let store = Arc::new(store);
            run(c, &rt, "postgres", &store);
            let _ = rt.block_on(store.drop_schema());
        }
        Err(e) => eprintln!("PostgreSQL unreachable ({e}); its group commit is not measured"),
    }
    let Ok(dir) = tempfile::tempdir() else { return };
    if let Ok(store) = rt.block_on(SqliteStore::open(dir.path())) {
        run(c, &rt, "sqlite", &Arc::new(store));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
