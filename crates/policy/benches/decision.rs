//! Decision latency of the default bundle at every decision point, on the default guarded
//! evaluation (bytecode for well-formed inputs, the interpreter for the rest), the tree
//! interpreter alone and the bytecode VM alone, against a trivial `allow := true` bundle; with
//! criterion, then a plain loop printing p50/p99 over 20 000 timed calls each.
//!
//! Each evaluation runs three ways: `fresh` (memo off: every call evaluates the bundle),
//! `memo_hit` (the same input again: what a repeated principal/agent/tool pays) and `memo_miss`
//! (a new principal on every call, so every call misses and evaluates: the memo's overhead).
//!
//! `cargo bench -p amas-policy --bench decision` runs both; `DECISION_CASES=bytecode,trivial`
//! keeps the cases whose names contain one of the words, `PERCENTILES_ONLY=1` skips criterion,
//! `DECISION_POLICY_DIR=dir` measures the bundle in `dir` instead of the embedded one (only
//! the embedded bundle runs guarded: another bundle's `guarded` cases run on the interpreter).
//! Instruction counts, repeatable on a busy machine: `DECISION_EVAL_TIMEOUT_MS=10000
//! valgrind --tool=callgrind --toggle-collect='*RegoPolicyEngine*decide*' <bench binary>`.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use amas_policy::{
    DecisionPoint, EngineOptions, Evaluation, PolicyBundle, PolicyEngine, PolicyFile,
    RegoPolicyEngine,
};
use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};

fn options(evaluation: Evaluation, memo_capacity: usize) -> EngineOptions {
    let defaults = EngineOptions::default();
    EngineOptions {
        evaluation,
        memo_capacity,
        // Raised to run under valgrind (callgrind), where the bundle's preparation alone
        // takes longer than the default budget.
        eval_timeout: std::env::var("DECISION_EVAL_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(defaults.eval_timeout, std::time::Duration::from_millis),
    }
}

fn trivial_engine() -> RegoPolicyEngine {
    let files = ["task", "model", "tool", "api"]
        .iter()
        .map(|pkg| PolicyFile {
            name: format!("{pkg}.rego"),
            source: format!(
                "package amas.{pkg}\n\nallow := true\n\ndecision := {{\"allow\": allow, \"require_approval\": false, \"reasons\": []}}\n"
            ),
        })
        .collect();
    RegoPolicyEngine::new(
        PolicyBundle::from_files(files),
        options(Evaluation::Bytecode, 0),
    )
    .unwrap()
}

fn bundle() -> PolicyBundle {
    match std::env::var_os("DECISION_POLICY_DIR") {
        Some(dir) => PolicyBundle::from_dir(std::path::Path::new(&dir)).unwrap(),
        None => PolicyBundle::embedded(),
    }
}

/// The tool-call input as the gate builds it (`Pipeline::policy_input`).
fn tool_input(agent: &str, tool: &str) -> Value {
    json!({
        "principal": {"sub": "alice", "roles": ["submitter"], "tenant": "acme"},
        "agent": {"id": agent, "role": "code_review"},
        "action": {"kind": "tool_call", "name": tool},
        "tool": {"name": tool, "risk": "medium", "side_effects": "read", "idempotent": true, "requires_approval": false},
        "data": {"classification": "internal", "tags": []},
        "task": {"id": "t1", "type": "code_review"},
        "environment": "production",
        "parameters": {"path": "src/lib.rs"},
        "usage": {"tool_calls": 3, "bytes_out": 1200},
        "approvals": [],
        "approver_roles": ["approver", "admin"]
    })
}

fn task_input() -> Value {
    json!({
        "principal": {"sub": "alice", "roles": ["submitter"], "tenant": "acme"},
        "action": {"kind": "task_submit", "name": "code_review"},
        "task": {"type": "code_review"},
        "environment": "production"
    })
}

fn model_input() -> Value {
    json!({
        "principal": {"sub": "alice", "roles": ["submitter"], "tenant": "acme"},
        "agent": {"id": "code_reviewer", "role": "code_review"},
        "action": {"kind": "model_call", "name": "ollama"},
        "provider": {"name": "ollama", "trusted_for": ["public", "internal", "confidential"]},
        "data": {"classification": "internal", "tags": []},
        "task": {"id": "t1", "type": "code_review"},
        "environment": "production"
    })
}

fn api_input() -> Value {
    json!({
        "principal": {"sub": "alice", "roles": ["submitter"], "tenant": "acme"},
        "action": {"kind": "api", "name": "task.cancel"},
        "resource": {"tenant": "acme", "owner": "alice"},
        "environment": "production"
    })
}

struct Case {
    name: String,
    engine: RegoPolicyEngine,
    point: DecisionPoint,
    /// Used in turn, one per call.
    inputs: Vec<Value>,
    expect_allow: bool,
}

/// More than the timed and warm-up calls together, so a `memo_miss` case never repeats one.
const DISTINCT_INPUTS: usize = 22_000;

fn cases() -> Vec<Case> {
    let filter = std::env::var("DECISION_CASES").unwrap_or_default();
    // Only the cases asked for are built: the memo_miss inputs alone are 22 000 documents each.
    let wanted = |name: &str| filter.split(',').any(|f| name.contains(f));
    let mut cases = Vec::new();
    if wanted("trivial/tool_call") {
        cases.push(Case {
            name: "trivial/tool_call".to_owned(),
            engine: trivial_engine(),
            point: DecisionPoint::ToolCall,
            inputs: vec![tool_input("code_reviewer", "code_analyzer")],
            expect_allow: true,
        });
    }
    for (evaluation, label) in [
        (Evaluation::Guarded, "guarded"),
        (Evaluation::Bytecode, "bytecode"),
        (Evaluation::Interpreter, "interpreter"),
    ] {
        let points = [
            (
                "tool_call_allow",
                DecisionPoint::ToolCall,
                tool_input("code_reviewer", "code_analyzer"),
                true,
            ),
            (
                "tool_call_deny",
                DecisionPoint::ToolCall,
                tool_input("code_reviewer", "vulnerability_scanner"),
                false,
            ),
            ("task_submit", DecisionPoint::TaskSubmit, task_input(), true),
            ("model_call", DecisionPoint::ModelCall, model_input(), true),
            ("api", DecisionPoint::Api, api_input(), true),
        ];
        for (name, point, input, expect_allow) in points {
            for (memo, capacity) in [
                ("fresh", 0),
                ("memo_hit", amas_policy::DEFAULT_MEMO_CAPACITY),
                ("memo_miss", amas_policy::DEFAULT_MEMO_CAPACITY),
            ] {
                let name = format!("{label}/{memo}/{name}");
                if !wanted(&name) {
                    continue;
                }
                let inputs = if memo == "memo_miss" {
                    (0..DISTINCT_INPUTS)
                        .map(|i| {
                            let mut input = input.clone();
                            let sub = json!(format!("user-{i}"));
                            if input.pointer("/resource/owner").is_some() {
                                input["resource"]["owner"] = sub.clone();
                            }
                            input["principal"]["sub"] = sub;
                            input
                        })
                        .collect()
                } else {
                    vec![input.clone()]
                };
                cases.push(Case {
                    name,
                    engine: RegoPolicyEngine::new(bundle(), options(evaluation, capacity)).unwrap(),
                    point,
                    inputs,
                    expect_allow,
                });
            }
        }
    }
    for case in &cases {
        let d = case.engine.decide(case.point, &case.inputs[0]);
        assert!(
            d.allow == case.expect_allow && !d.policy_error,
            "{}: {d:?}",
            case.name
        );
    }
    cases
}

fn criterion_benches(c: &mut Criterion) {
    if std::env::var_os("PERCENTILES_ONLY").is_some() {
        return;
    }
    let mut group = c.benchmark_group("decision");
    for case in cases() {
        let mut next = case.inputs.iter().cycle();
        group.bench_function(&case.name, |b| {
            b.iter(|| {
                case.engine
                    .decide(case.point, black_box(next.next().unwrap()))
            });
        });
    }
    group.finish();
}

/// Per-call durations, so the tail is visible (criterion reports means and medians of batches).
fn percentiles() {
    // Fewer under valgrind: `DECISION_CALLS=2000`.
    let calls: usize = std::env::var("DECISION_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    for case in cases() {
        // The first input was decided once by `cases()`; start after it.
        let mut next = case.inputs.iter().cycle().skip(1);
        for _ in 0..1_000 {
            black_box(case.engine.decide(case.point, next.next().unwrap()));
        }
        let mut samples: Vec<Duration> = (0..calls)
            .map(|_| {
                let input = next.next().unwrap();
                let start = Instant::now();
                black_box(case.engine.decide(case.point, black_box(input)));
                start.elapsed()
            })
            .collect();
        samples.sort();
        let at = |q: f64| samples[((calls as f64 * q) as usize).min(calls - 1)];
        let ran = case.engine.evaluator_stats();
        println!(
            "percentiles {:<36} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({calls} calls; evaluated on bytecode {}, interpreter {})",
            case.name,
            at(0.50),
            at(0.99),
            samples[calls - 1],
            ran.bytecode,
            ran.interpreter,
        );
    }
}

criterion_group!(benches, criterion_benches);

fn main() {
    benches();
    percentiles();
    Criterion::default().configure_from_args().final_summary();
}
