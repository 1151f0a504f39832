//! Decision latency of the default bundle at every decision point, on the bytecode VM (the
//! default) and on the tree interpreter (the reference), against a trivial `allow := true`
//! bundle; with criterion, then a plain loop printing p50/p99 over 20 000 timed calls each.
//!
//! `cargo bench -p amas-policy --bench decision` runs both; `DECISION_CASES=bytecode,trivial`
//! keeps the cases whose names contain one of the words, `PERCENTILES_ONLY=1` skips criterion.

#![allow(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use amas_policy::{
    DecisionPoint, EngineOptions, Evaluation, PolicyBundle, PolicyEngine, PolicyFile,
    RegoPolicyEngine,
};
use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};

fn options(evaluation: Evaluation) -> EngineOptions {
    EngineOptions {
        evaluation,
        ..EngineOptions::default()
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
        options(Evaluation::Bytecode),
    )
    .unwrap()
}

/// The tool-call input as the gate builds it (`ToolGate::policy_input`).
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
    input: Value,
    expect_allow: bool,
}

fn cases() -> Vec<Case> {
    let filter = std::env::var("DECISION_CASES").unwrap_or_default();
    let mut cases = vec![Case {
        name: "trivial/tool_call".to_owned(),
        engine: trivial_engine(),
        point: DecisionPoint::ToolCall,
        input: tool_input("code_reviewer", "code_analyzer"),
        expect_allow: true,
    }];
    for (evaluation, label) in [
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
            cases.push(Case {
                name: format!("{label}/{name}"),
                engine: RegoPolicyEngine::new(PolicyBundle::embedded(), options(evaluation))
                    .unwrap(),
                point,
                input,
                expect_allow,
            });
        }
    }
    cases.retain(|c| filter.split(',').any(|f| c.name.contains(f)));
    for case in &cases {
        let d = case.engine.decide(case.point, &case.input);
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
        group.bench_function(&case.name, |b| {
            b.iter(|| case.engine.decide(case.point, black_box(&case.input)));
        });
    }
    group.finish();
}

/// Per-call durations, so the tail is visible (criterion reports means and medians of batches).
fn percentiles() {
    const CALLS: usize = 20_000;
    for case in cases() {
        for _ in 0..1_000 {
            black_box(case.engine.decide(case.point, &case.input));
        }
        let mut samples: Vec<Duration> = (0..CALLS)
            .map(|_| {
                let start = Instant::now();
                black_box(case.engine.decide(case.point, black_box(&case.input)));
                start.elapsed()
            })
            .collect();
        samples.sort();
        let at = |q: f64| samples[((CALLS as f64 * q) as usize).min(CALLS - 1)];
        println!(
            "percentiles {:<28} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({CALLS} calls)",
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
