//! The whole pre-execution pipeline of one tool call, `Pipeline::check` (policy -> allowlist ->
//! contract -> sandbox -> quota), for `code_reviewer` calling `code_analyzer` with the embedded
//! configuration, tools and Rego bundle; with criterion, then p50/p99 over 20 000 timed calls.
//!
//! The per-minute rate quota would refuse a tight loop after its first few calls, so the
//! `allowed` case raises the agent's `calls_per_minute` (every stage runs and passes); the
//! `rate_refused` case keeps the configured limit (after the limit, the quota stage refuses).
//! Both run on the default (guarded: bytecode for well-formed inputs), the interpreter-only and
//! the bytecode-only policy evaluation, each with
//! the decision memo off (`fresh`: every call evaluates the bundle) and on (`memo`: the repeated
//! call is answered from the memo, as a repeated principal/agent/tool is in a task).
//! Run: `cargo bench -p amas-governance --bench gate` (`PERCENTILES_ONLY=1` skips criterion).

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark fails loudly on unexpected errors"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amas_config::{AgentConfig, LoadOptions};
use amas_governance::pipeline::{Outcome, Pipeline, TaskToolUsage, ToolCallRequest};
use amas_policy::{EngineOptions, Evaluation, PolicyBundle, RegoPolicyEngine};
use amas_telemetry::Metrics;
use amas_types::{Principal, TenantId};
use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};

struct Case {
    name: String,
    gate: Pipeline,
    agent: AgentConfig,
    expect: Outcome,
}

fn gate(evaluation: Evaluation, memo_capacity: usize) -> Pipeline {
    let options = EngineOptions {
        evaluation,
        memo_capacity,
        ..EngineOptions::default()
    };
    let policy = RegoPolicyEngine::new(PolicyBundle::embedded(), options).unwrap();
    let tools = amas_tools::ToolRegistry::load(None).unwrap();
    Pipeline::new(
        Arc::new(policy),
        Arc::new(tools),
        "production",
        Metrics::new(),
    )
}

fn cases() -> Vec<Case> {
    let config = amas_config::load(&LoadOptions::default()).unwrap();
    let reviewer = config.agents["code_reviewer"].clone();
    let mut unlimited = reviewer.clone();
    unlimited.quotas.calls_per_minute = u32::MAX;
    let mut cases = Vec::new();
    for (evaluation, label) in [
        (Evaluation::Guarded, "guarded"),
        (Evaluation::Interpreter, "interpreter"),
        (Evaluation::Bytecode, "bytecode"),
    ] {
        for (memo, capacity) in [("fresh", 0), ("memo", amas_policy::DEFAULT_MEMO_CAPACITY)] {
            cases.push(Case {
                name: format!("{label}/{memo}/allowed"),
                gate: gate(evaluation, capacity),
                agent: unlimited.clone(),
                expect: Outcome::Allow,
            });
            cases.push(Case {
                name: format!("{label}/{memo}/rate_refused"),
                gate: gate(evaluation, capacity),
                agent: reviewer.clone(),
                expect: Outcome::Deny,
            });
        }
    }
    cases
}

struct Call {
    principal: Principal,
    arguments: Value,
    usage: TaskToolUsage,
}

fn call() -> Call {
    Call {
        principal: Principal {
            sub: "alice".to_owned(),
            roles: vec!["submitter".to_owned()],
            tenant: TenantId("acme".to_owned()),
            auth_method: "local_jwt".to_owned(),
            issuer: "amas-local".to_owned(),
        },
        arguments: json!({"path": "src/lib.rs"}),
        usage: TaskToolUsage {
            tool_calls: 3,
            ..TaskToolUsage::default()
        },
    }
}

fn check(case: &Case, call: &Call) -> Outcome {
    let req = ToolCallRequest {
        principal: &call.principal,
        agent: &case.agent,
        task_id: "t1",
        task_type: "code_review",
        tool: "code_analyzer",
        arguments: &call.arguments,
        usage: &call.usage,
        approvals: &[],
    };
    case.gate.check(black_box(&req)).outcome()
}

/// Runs the case until its steady state: `allowed` from the first call, `rate_refused` once the
/// window is full.
fn warm_up(case: &Case, call: &Call) {
    for _ in 0..1_000 {
        black_box(check(case, call));
    }
    let outcome = check(case, call);
    assert_eq!(outcome, case.expect, "{}", case.name);
}

fn criterion_benches(c: &mut Criterion) {
    if std::env::var_os("PERCENTILES_ONLY").is_some() {
        return;
    }
    let call = call();
    let mut group = c.benchmark_group("gate");
    for case in cases() {
        warm_up(&case, &call);
        group.bench_function(&case.name, |b| b.iter(|| check(&case, &call)));
    }
    group.finish();
}

fn percentiles() {
    const CALLS: usize = 20_000;
    let call = call();
    for case in cases() {
        warm_up(&case, &call);
        let mut samples: Vec<Duration> = (0..CALLS)
            .map(|_| {
                let start = Instant::now();
                black_box(check(&case, &call));
                start.elapsed()
            })
            .collect();
        samples.sort();
        let at = |q: f64| samples[((CALLS as f64 * q) as usize).min(CALLS - 1)];
        println!(
            "percentiles gate/{:<32} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({CALLS} calls)",
            case.name,
            at(0.50),
            at(0.99),
            samples[CALLS - 1]
        );
    }
}

criterion_group!(benches, criterion_benches);

fn main() {
    benches();
    percentiles();
    Criterion::default().configure_from_args().final_summary();
}
