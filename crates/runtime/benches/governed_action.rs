//! What the audit log costs a governed action, with auditing on and off in the same run, on a
//! real SQLite audit log (a file, WAL, the `AuditWriter` draining in the background):
//!
//! - `audit_throughput/writer`: records appended per second through the writer (enqueue 500,
//!   then flush: every record committed and a checkpoint signed).
//!   (The whole governed tool call, memo on and off, is the `tool_action` bench.)
//! - `governed_task/audit_on`: a whole research report through the runtime as
//!   `amas_runtime::compose` builds it (the production composition: governance and audit are
//!   not optional, journal appends and audit records group-committed in one SQLite database,
//!   `synchronous=NORMAL`) with an instant model whose research step calls the calculator three
//!   times: 10 governed actions per task (the submission, 6 model-call decisions, 3 tool
//!   calls).
//!
//! Run: `cargo bench -p amas-runtime --bench governed_action`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly on unexpected errors"
)]

/// The allocator of the `amas` binary (crates/cli/src/main.rs), so the figures are the
/// production build's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use amas_config::{AmasConfig, BreakerConfig, LoadOptions};
use amas_governance::pipeline::{ActionContext, Pipeline, Stage};
use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_providers::{
    ChatRequest, ChatResponse, ModelProvider, ProviderError, ProviderSet, Role, ToolCall,
};
use amas_runtime::Runtime;
use amas_runtime::compose::{Composition, Governance, compose};
use amas_store::SqliteStore;
use amas_store::audit::{AuditDecision, AuditLog, AuditRecord, AuditWriter, AuditWriterConfig};
use amas_telemetry::Metrics;
use amas_types::{
    AgentId, JournalEvent, Principal, Priority, RequestedTool, StepId, TaskId, TaskSpec,
    TaskStatus, Usage,
};

/// Calculator calls the research step makes before it answers.
const TOOL_CALLS: usize = 3;
/// Records per measured iteration of the throughput case.
const RECORDS: u64 = 500;

/// Answers at once; the research agent first asks for the calculator `TOOL_CALLS` times.
struct InstantModel;

#[async_trait]
impl ModelProvider for InstantModel {
    fn name(&self) -> &str {
        "instant"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let results = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .count();
        let (content, tool_calls) = match request.agent.as_str() {
            "research" if results < TOOL_CALLS => (
                String::new(),
                vec![ToolCall {
                    id: format!("call_{results}"),
                    name: "calculator".into(),
                    arguments: json!({"expression": "6*7"}),
                }],
            ),
            "research" => (
                json!({"findings": ["a"], "summary": "b"}).to_string(),
                vec![],
            ),
            "analysis" => (json!({"insights": ["a"], "risks": []}).to_string(), vec![]),
            _ => (json!({"title": "a", "report": "b"}).to_string(), vec![]),
        };
        Ok(ChatResponse {
            provider: "instant".into(),
            model: "instant".into(),
            content,
            tool_calls,
            usage: Usage::default(),
        })
    }
}

fn config() -> AmasConfig {
    let mut config = amas_config::load(&LoadOptions::default()).expect("config");
    for agent in config.agents.values_mut() {
        agent.providers = vec!["instant".into()];
        agent.quotas.calls_per_minute = u32::MAX;
    }
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["calculator".into()];
    config.provider_trust.insert(
        "instant".into(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    config
}

fn policy() -> Arc<dyn PolicyEngine> {
    Arc::new(RegoPolicyEngine::embedded().expect("embedded policies"))
}

/// The governance of the production composition: the embedded bundle, tools and data
/// protection.
fn governance(policy: Arc<dyn PolicyEngine>) -> Governance {
    Governance {
        tools: amas_tools::ToolRegistry::load(None).expect("tools"),
        protector: amas_dataprotect::DataProtector::shared_embedded().expect("data protection"),
        policy,
        environment: "development".to_owned(),
        redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
        content_safety: None,
    }
}

/// The audit record of an allowed tool call, as the pipeline makes it.
fn tool_audit(principal: &Principal, task: TaskId, arguments: &serde_json::Value) -> AuditRecord {
    let (step, agent) = (StepId::from("research"), AgentId::from("research"));
    let ctx = ActionContext {
        principal,
        task: Some(task),
        step: Some(&step),
        agent: Some(&agent),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
    };
    let call = RequestedTool {
        id: "call_0".into(),
        name: "calculator".to_owned(),
        arguments: arguments.clone(),
    };
    Pipeline::tool_audit(
        &ctx,
        &call,
        Stage::Policy,
        AuditDecision::Allow,
        &["agent research may use calculator".to_owned()],
        None,
    )
}

fn writer(rt: &tokio::runtime::Runtime, log: &Arc<dyn AuditLog>) -> AuditWriter {
    rt.block_on(async {
        AuditWriter::start(
            Arc::clone(log),
            Arc::new(amas_store::audit::conformance::test_signer()),
            AuditWriterConfig::default(),
        )
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(rt.block_on(SqliteStore::open(dir.path())).expect("store"));
    let log: Arc<dyn AuditLog> = store.clone();
    let principal = Principal::local_operator();
    let task = TaskId::new();
    let arguments = json!({"expression": "6*7"});

    let mut group = c.benchmark_group("audit_throughput");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RECORDS));
    let throughput_writer = writer(&rt, &log);
    let records: Vec<AuditRecord> = (0..RECORDS)
        .map(|_| tool_audit(&principal, task, &arguments))
        .collect();
    group.bench_function("writer", |b| {
        b.to_async(&rt).iter(|| async {
            for r in &records {
                black_box(throughput_writer.record(r.clone()).await.ok());
            }
            black_box(throughput_writer.flush().await.ok());
        });
    });
    group.finish();
    let _ = rt.block_on(throughput_writer.shutdown());

    let mut group = c.benchmark_group("governed_task");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        rt.block_on(SqliteStore::open_with(dir.path(), false))
            .expect("store"),
    );
    let runtime = rt.block_on(async { governed_runtime(store, dir.path()) });
    rt.block_on(runtime.scheduler().start());
    group.bench_function("audit_on", |b| {
        b.to_async(&rt).iter(|| run_task(runtime.clone()));
    });
    rt.block_on(runtime.access().close_audit());
    group.finish();
}

/// The runtime of the production composition on `store` (its audit log in the same database,
/// as `amas serve` and `amas run` have it).
fn governed_runtime(store: Arc<SqliteStore>, dir: &std::path::Path) -> Runtime {
    let metrics = Metrics::new();
    let providers = ProviderSet::new(metrics.clone()).with_provider(
        "instant",
        Arc::new(InstantModel),
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        },
    );
    compose(Composition {
        config: Arc::new(config()),
        store,
        providers: &providers,
        metrics,
        governance: governance(policy()),
        audit_signer: Arc::new(amas_store::audit::conformance::test_signer()),
        audit_witnesses: Vec::new(),
        workspaces: dir.join("workspaces"),
    })
    .expect("runtime")
}

/// Submits one task and waits for its terminal event.
async fn run_task(runtime: Runtime) {
    let mut live = runtime.reader().subscribe();
    let spec = TaskSpec {
        task_type: "research_report".into(),
        title: "t".into(),
        description: "d".into(),
        parameters: serde_json::Map::new(),
        priority: Priority::DEFAULT,
    };
    let task = runtime
        .admission()
        .submit(spec, Principal::local_operator(), None)
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
            assert!(
                matches!(record.event, JournalEvent::TaskSucceeded { .. }),
                "{record:?}"
            );
            break;
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
