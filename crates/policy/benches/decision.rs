//! Decision latency of the default bundle (tool_call allow and deny) against a trivial
//! `allow := true` bundle, with criterion, then a plain loop printing p50/p99 per call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use amas_policy::{
    DecisionPoint, EngineOptions, PolicyBundle, PolicyEngine, PolicyFile, RegoPolicyEngine,
};
use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};

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
    RegoPolicyEngine::new(PolicyBundle::from_files(files), EngineOptions::default())
        .unwrap_or_else(|e| unreachable!("trivial bundle: {e}"))
}

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
        "usage": {"tool_calls": 3, "tokens": 1200, "window_requests": 2},
        "approvals": []
    })
}

struct Case {
    name: &'static str,
    engine: RegoPolicyEngine,
    input: Value,
    expect_allow: bool,
}

fn cases() -> Vec<Case> {
    let default = || RegoPolicyEngine::embedded().unwrap_or_else(|e| unreachable!("bundle: {e}"));
    vec![
        Case {
            name: "trivial_allow",
            engine: trivial_engine(),
            input: tool_input("code_reviewer", "code_analyzer"),
            expect_allow: true,
        },
        Case {
            name: "default_tool_allow",
            engine: default(),
            input: tool_input("code_reviewer", "code_analyzer"),
            expect_allow: true,
        },
        Case {
            name: "default_tool_deny",
            engine: default(),
            input: tool_input("code_reviewer", "vulnerability_scanner"),
            expect_allow: false,
        },
    ]
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    for case in cases() {
        let d = case.engine.decide(DecisionPoint::ToolCall, &case.input);
        assert!(
            d.allow == case.expect_allow && !d.policy_error,
            "{}: {d:?}",
            case.name
        );
        group.bench_function(case.name, |b| {
            b.iter(|| {
                case.engine
                    .decide(DecisionPoint::ToolCall, black_box(&case.input))
            });
        });
    }
    group.finish();
}

/// Per-call durations, so the tail is visible (criterion reports means and medians of batches).
fn percentiles() {
    const CALLS: usize = 20_000;
    for case in cases() {
        for _ in 0..1_000 {
            black_box(case.engine.decide(DecisionPoint::ToolCall, &case.input));
        }
        let mut samples: Vec<Duration> = (0..CALLS)
            .map(|_| {
                let start = Instant::now();
                black_box(
                    case.engine
                        .decide(DecisionPoint::ToolCall, black_box(&case.input)),
                );
                start.elapsed()
            })
            .collect();
        samples.sort();
        let at = |q: f64| samples[((CALLS as f64 * q) as usize).min(CALLS - 1)];
        println!(
            "percentiles {:<20} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  ({CALLS} calls)",
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
