//! The whole governed tool action, as the pipeline's tool-call entry runs it, with the policy
//! memo on and off in the same run:
//!
//! `Pipeline::tool_call` on the production pipeline (`amas_runtime::compose::pipeline`, the
//! embedded Rego bundle, tools, data protection, content safety): registry -> DLP facts ->
//! authorize -> allowlist -> input contract -> sandbox -> quota -> DLP out -> a no-op tool (the
//! closure answers the calculator's output at once) -> output contract -> content safety ->
//! prompt-injection screening -> DLP in / classification; then the audit records it made are
//! appended to the audit log's writer (a real SQLite file in WAL mode, the writer
//! group-committing in the background; flushed every 256 actions outside the timed part, so
//! this is the latency below saturation, as a step sees it).
//!
//! - `memo_on`: the default engine; the same call every time, so policy answers from its memo.
//! - `memo_off`: an engine with `memo_capacity: 0`, so every call is a fresh (uncached)
//!   decision.
//!
//! criterion's figures, then a plain loop printing p50/p99 over 20 000 timed actions each
//! (`TOOL_ACTION_CALLS`); `PERCENTILES_ONLY=1` skips criterion.
//! Run: `cargo bench --workspace --bench tool_action`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly on unexpected errors"
)]

/// The allocator of the `amas` binary (crates/cli/src/main.rs), so the figures are the
/// production build's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use amas_config::{AmasConfig, LoadOptions};
use amas_governance::pipeline::{
    ActionContext, Outcome, Pipeline, TaskToolUsage, ToolAction, ToolCallRequest, ToolCallSite,
};
use amas_policy::{EngineOptions, PolicyBundle, PolicyEngine, RegoPolicyEngine};
use amas_runtime::compose::Governance;
use amas_store::SqliteStore;
use amas_store::audit::{AuditLog, AuditWriter, AuditWriterConfig};
use amas_telemetry::Metrics;
use amas_types::{Principal, RequestedTool, StepId, TaskId};

fn config() -> AmasConfig {
    let mut config = amas_config::load(&LoadOptions::default()).expect("config");
    for agent in config.agents.values_mut() {
        agent.quotas.calls_per_minute = u32::MAX;
    }
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["calculator".into()];
    config
}

fn pipeline(config: &AmasConfig, memo_capacity: usize) -> Pipeline {
    let policy: Arc<dyn PolicyEngine> = Arc::new(
        RegoPolicyEngine::new(
            PolicyBundle::embedded(),
            EngineOptions {
                memo_capacity,
                ..EngineOptions::default()
            },
        )
        .expect("embedded policies"),
    );
    let governance = Governance {
        tools: amas_tools::ToolRegistry::load(None).expect("tools"),
        protector: amas_dataprotect::DataProtector::shared_embedded().expect("data protection"),
        policy,
        environment: "development".to_owned(),
        redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
        content_safety: None,
    };
    amas_runtime::compose::pipeline(config, governance, Metrics::new()).expect("pipeline")
}

/// One governed action: the pipeline's tool-call entry with a no-op tool, then its audit
/// records appended. Panics unless the tool ran and its result was allowed.
struct Action<'a> {
    pipeline: &'a Pipeline,
    config: &'a AmasConfig,
    writer: &'a AuditWriter,
    principal: Principal,
    task: TaskId,
    task_id: String,
    step: StepId,
    call: RequestedTool,
    usage: TaskToolUsage,
}

impl Action<'_> {
    async fn run(&self) {
        let agent = &self.config.agents["research"];
        let ctx = ActionContext {
            principal: &self.principal,
            task: Some(self.task),
            step: Some(&self.step),
            agent: Some(&agent.id),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        };
        let site = ToolCallSite {
            ctx: &ctx,
            step: &self.step,
            call: &self.call,
            request: ToolCallRequest {
                principal: &self.principal,
                agent,
                task_id: &self.task_id,
                task_type: "research_report",
                tool: "calculator",
                arguments: &self.call.arguments,
                usage: &self.usage,
                approvals: &[],
            },
            granted: false,
        };
        let mut decided = None;
        let action = self
            .pipeline
            .tool_call(&site, |cleared| {
                decided = Some(cleared.audit);
                async { Ok::<Value, Infallible>(json!({"expression": "6*7", "result": 42.0})) }
            })
            .await;
        let ToolAction::Ran {
            outcome: Ok((output, verdict)),
            ..
        } = action
        else {
            panic!("the no-op tool did not run: {action:?}");
        };
        assert!(
            verdict
                .decisions
                .iter()
                .all(|d| d.outcome == Outcome::Allow),
            "{:?}",
            verdict.decisions
        );
        black_box(output);
        for record in decided.into_iter().chain(verdict.governed.audit) {
            self.writer.record(record).await.expect("audit append");
        }
    }
}

struct Setup {
    rt: tokio::runtime::Runtime,
    writer: AuditWriter,
    config: AmasConfig,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let writer = rt.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
        let log: Arc<dyn AuditLog> = store;
        AuditWriter::start(
            log,
            Arc::new(amas_store::audit::conformance::test_signer()),
            AuditWriterConfig::default(),
        )
    });
    Setup {
        rt,
        writer,
        config: config(),
        _dir: dir,
    }
}

fn action<'a>(setup: &'a Setup, pipeline: &'a Pipeline) -> Action<'a> {
    let task = TaskId::new();
    Action {
        pipeline,
        config: &setup.config,
        writer: &setup.writer,
        principal: Principal::local_operator(),
        task,
        task_id: task.to_string(),
        step: StepId::from("research"),
        call: RequestedTool {
            id: "call_0".into(),
            name: "calculator".to_owned(),
            arguments: json!({"expression": "6*7"}),
        },
        usage: TaskToolUsage::default(),
    }
}

const MEMO: [(&str, usize); 2] = [
    ("memo_on", amas_policy::DEFAULT_MEMO_CAPACITY),
    ("memo_off", 0),
];

fn criterion_benches(c: &mut Criterion) {
    if std::env::var_os("PERCENTILES_ONLY").is_some() {
        return;
    }
    let setup = setup();
    let mut group = c.benchmark_group("tool_action");
    for (label, capacity) in MEMO {
        let pipeline = pipeline(&setup.config, capacity);
        let action = action(&setup, &pipeline);
        group.bench_function(label, |b| {
            b.to_async(&setup.rt).iter_custom(|iters| {
                let action = &action;
                async move {
                    let mut timed = Duration::ZERO;
                    for i in 0..iters {
                        let start = Instant::now();
                        action.run().await;
                        timed += start.elapsed();
                        if i % 256 == 255 {
                            action.writer.flush().await.expect("flush");
                        }
                    }
                    timed
                }
            });
        });
    }
    group.finish();
    let _ = setup.rt.block_on(setup.writer.shutdown());
}

/// Per-action durations, so the tail is visible (criterion reports means of batches).
fn percentiles() {
    let calls: usize = std::env::var("TOOL_ACTION_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let setup = setup();
    for (label, capacity) in MEMO {
        let pipeline = pipeline(&setup.config, capacity);
        let action = action(&setup, &pipeline);
        let samples = setup.rt.block_on(async {
            for _ in 0..1_000 {
                action.run().await;
            }
            action.writer.flush().await.expect("flush");
            let mut samples = Vec::with_capacity(calls);
            for i in 0..calls {
                let start = Instant::now();
                action.run().await;
                samples.push(start.elapsed());
                if i % 256 == 255 {
                    action.writer.flush().await.expect("flush");
                }
            }
            samples
        });
        let mut samples = samples;
        samples.sort();
        let at = |q: f64| samples[((calls as f64 * q) as usize).min(calls - 1)];
        println!(
            "percentiles tool_action/{label:<9} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({calls} actions)",
            at(0.50),
            at(0.99),
            samples[calls - 1],
        );
    }
    let _ = setup.rt.block_on(setup.writer.shutdown());
}

fn all(c: &mut Criterion) {
    criterion_benches(c);
    percentiles();
}

criterion_group!(benches, all);
criterion_main!(benches);
