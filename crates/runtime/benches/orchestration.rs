//! Per-step orchestration overhead with an instant model, journal on SQLite.
//!
//! `journal_append` is the baseline: one durable append of one event. `research_report_task`
//! runs a whole three-step task on the production composition (scheduling, prompt building,
//! contract checks, the governance pipeline with its audit records, all journal writes). Report: time per task / 3 = time per step, and its ratio to the baseline append.
//! `group_commit/x32` runs 32 tasks at once through the store's group-committing writer (audit
//! on): its time per iteration / 96 is the amortized cost of one durable step under load.
//! Run: `cargo bench -p amas-runtime --bench orchestration`.

#![expect(
    clippy::expect_used,
    reason = "a benchmark fails loudly on unexpected errors"
)]

/// The allocator of the `amas` binary (crates/cli/src/main.rs), so the figures are the
/// production build's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

use amas_config::{BreakerConfig, LoadOptions};
use amas_providers::{ChatRequest, ChatResponse, ModelProvider, ProviderError, ProviderSet};
use amas_runtime::Runtime;
use amas_runtime::compose::{Composition, Governance, compose};
use amas_store::{SqliteStore, TaskJournal};
use amas_telemetry::Metrics;
use amas_types::{JournalEvent, Principal, Priority, TaskId, TaskSpec, TaskStatus, Usage};

/// Answers every agent at once with a contract-valid document.
struct InstantModel;

#[async_trait]
impl ModelProvider for InstantModel {
    fn name(&self) -> &str {
        "instant"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let content = match request.agent.as_str() {
            "research" => json!({"findings": ["a"], "summary": "b"}),
            "analysis" => json!({"insights": ["a"], "risks": []}),
            _ => json!({"title": "a", "report": "b"}),
        };
        Ok(ChatResponse {
            provider: "instant".into(),
            model: "instant".into(),
            content: content.to_string(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
        })
    }
}

fn spec() -> TaskSpec {
    TaskSpec {
        task_type: "research_report".into(),
        title: "t".into(),
        description: "d".into(),
        parameters: serde_json::Map::new(),
        priority: Priority::DEFAULT,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("orchestration");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(20);
    for (label, full_sync) in [("sync_full", true), ("sync_normal", false)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            rt.block_on(SqliteStore::open_with(dir.path(), full_sync))
                .expect("store"),
        );
        let journal: Arc<dyn TaskJournal> = Arc::clone(&store) as Arc<dyn TaskJournal>;
        group.bench_function(format!("{label}/journal_append"), |b| {
            b.to_async(&rt).iter(|| {
                let journal = Arc::clone(&journal);
                async move {
                    let event = JournalEvent::TaskSubmitted {
                        spec: spec(),
                        principal: Principal::local_operator(),
                        trace_id: None,
                        parent_span_id: None,
                    };
                    journal
                        .append(TaskId::new(), 0, &[event])
                        .await
                        .expect("append");
                }
            });
        });
        // The production composition: every step governed and audited, group-committed.
        let runtime = rt.block_on(async {
            let runtime = instant_runtime(store, dir.path());
            runtime.scheduler().start().await;
            runtime
        });
        group.bench_function(format!("{label}/research_report_task_3_steps"), |b| {
            b.to_async(&rt).iter(|| run_task(runtime.clone()));
        });
        for tasks in [1_usize, 32] {
            group.bench_function(format!("{label}/group_commit/x{tasks}"), |b| {
                b.to_async(&rt).iter(|| run_tasks(runtime.clone(), tasks));
            });
        }
    }
    group.finish();
}

/// Submits `n` tasks at once and waits until all have ended.
async fn run_tasks(runtime: Runtime, n: usize) {
    let mut live = runtime.reader().subscribe();
    let mut open = std::collections::HashSet::new();
    for _ in 0..n {
        open.insert(
            runtime
                .admission()
                .submit(spec(), Principal::local_operator(), None)
                .await
                .expect("submit")
                .task_id,
        );
    }
    while !open.is_empty() {
        let record = live.recv().await.expect("live events");
        if record
            .event
            .status_effect()
            .is_some_and(TaskStatus::is_terminal)
        {
            assert!(matches!(record.event, JournalEvent::TaskSucceeded { .. }));
            open.remove(&record.task_id);
        }
    }
}

/// The runtime as `amas_runtime::compose` builds it, on `store`, every agent answered by the
/// instant model (trusted with every level, as a local model would be).
fn instant_runtime(store: Arc<SqliteStore>, dir: &std::path::Path) -> Runtime {
    let mut config = amas_config::load(&LoadOptions::default()).expect("config");
    config.runtime.max_concurrent_tasks = 32;
    for agent in config.agents.values_mut() {
        agent.providers = vec!["instant".into()];
    }
    config.provider_trust.insert(
        "instant".to_owned(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    let metrics = Metrics::new();
    let providers = ProviderSet::new(metrics.clone()).with_provider(
        "instant",
        Arc::new(InstantModel),
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        },
    );
    let policy: Arc<dyn amas_policy::PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().expect("embedded policies"));
    compose(Composition {
        config: Arc::new(config),
        store,
        providers: &providers,
        metrics,
        governance: Governance {
            tools: amas_tools::ToolRegistry::load(None).expect("embedded tools"),
            protector: amas_dataprotect::DataProtector::shared_embedded()
                .expect("embedded data protection"),
            policy,
            environment: "development".to_owned(),
            redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
            content_safety: None,
        },
        audit_signer: Arc::new(amas_store::audit::conformance::test_signer()),
        audit_witnesses: Vec::new(),
        workspaces: dir.join("workspaces"),
    })
    .expect("runtime")
}

/// Submits one task and waits for its terminal event.
async fn run_task(runtime: Runtime) {
    let mut live = runtime.reader().subscribe();
    let task = runtime
        .admission()
        .submit(spec(), Principal::local_operator(), None)
        .await
        .expect("submit")
        .task_id;
    loop {
        let record = live.recv().await.expect("live events");
        if record.task_id == task
            && record
                .event
                .status_effect()
                .is_some_and(TaskStatus::is_terminal)
        {
            assert!(matches!(record.event, JournalEvent::TaskSucceeded { .. }));
            break;
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
