//! Audit append throughput on SQLite (a file, WAL, `synchronous=FULL` as `amas serve` runs):
//! one transaction per record, against batches, against the `AuditWriter` end to end (enqueue
//! then flush), in the same run. Criterion reports records/s.

use std::hint::black_box;
use std::sync::Arc;

use amas_store::SqliteStore;
use amas_store::audit::{
    AuditDecision, AuditLog, AuditRecord, AuditWriter, AuditWriterConfig, conformance::test_signer,
};
use amas_types::{Principal, TaskId};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Records per measured iteration.
const RECORDS: u64 = 500;

fn record(i: u64, task: TaskId) -> AuditRecord {
    AuditRecord::new(
        &Principal::local_operator(),
        "authorize",
        "tool_call",
        AuditDecision::Allow,
    )
    .with_task(task)
    .with_agent("researcher")
    .with_step("research")
    .with_trace_id(format!("{i:032x}"))
    .with_resource("tool:http_fetch")
    .with_policy("2024.1", "sha256:abcd")
    .with_classification("internal")
    .with_duration(std::time::Duration::from_micros(250))
    .with_details(serde_json::json!({"args_sha256": amas_store::audit::hash_payload(b"args")}))
}

fn bench(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(store) = rt.block_on(SqliteStore::open(dir.path())) else {
        return;
    };
    let log: Arc<dyn AuditLog> = Arc::new(store);
    let task = TaskId::new();
    let records: Vec<AuditRecord> = (0..RECORDS).map(|i| record(i, task)).collect();

    let mut group = c.benchmark_group("audit_append_sqlite");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("one_per_transaction", |b| {
        b.to_async(&rt).iter(|| async {
            for rec in &records {
                black_box(log.append(std::slice::from_ref(rec)).await.ok());
            }
        });
    });
    for batch in [64usize, 512] {
        group.bench_with_input(BenchmarkId::new("batched", batch), &batch, |b, &batch| {
            b.to_async(&rt).iter(|| async {
                for chunk in records.chunks(batch) {
                    black_box(log.append(chunk).await.ok());
                }
            });
        });
    }
    group.bench_function("writer_enqueue_and_flush", |b| {
        let writer = rt.block_on(async {
            AuditWriter::start(
                log.clone(),
                Arc::new(test_signer()),
                AuditWriterConfig::default(),
            )
        });
        b.to_async(&rt).iter(|| async {
            for rec in &records {
                black_box(writer.record(rec.clone()).await.ok());
            }
            black_box(writer.flush().await.ok());
        });
        let _ = rt.block_on(writer.shutdown());
    });
    group.finish();

    // What a caller on the task path pays: the enqueue alone. The queue is drained (flush)
    // every 256 records outside the timed part, so this is the latency below saturation.
    let mut group = c.benchmark_group("audit_enqueue");
    group.throughput(Throughput::Elements(1));
    let writer = rt.block_on(async {
        AuditWriter::start(
            log.clone(),
            Arc::new(test_signer()),
            AuditWriterConfig::default(),
        )
    });
    let one = record(0, task);
    group.bench_function("record", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (writer, one) = (&writer, &one);
            async move {
                let mut timed = std::time::Duration::ZERO;
                for i in 0..iters {
                    let start = std::time::Instant::now();
                    black_box(writer.record(one.clone()).await.ok());
                    timed += start.elapsed();
                    if i % 256 == 255 {
                        black_box(writer.flush().await.ok());
                    }
                }
                timed
            }
        });
    });
    group.finish();
    let _ = rt.block_on(writer.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
