//! Memoized decisions are the decisions the bundle would make: equal to a fresh evaluation on
//! every shipped case and on random variations of them, never stale when a field the bundle
//! reads changes, and never used for a bundle that reads the clock.

#![expect(clippy::unwrap_used, reason = "test code fails loudly")]

use amas_policy::{
    Decision, DecisionPoint, EngineOptions, PolicyBundle, PolicyEngine, PolicyFile,
    RegoPolicyEngine, embedded_cases,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn engine(memo_capacity: usize) -> RegoPolicyEngine {
    let options = EngineOptions {
        memo_capacity,
        // Decisions, not speed: a descheduled evaluation on a loaded machine must not outlast
        // the default 50 ms budget and turn into a policy error.
        eval_timeout: std::time::Duration::from_secs(60),
        ..EngineOptions::default()
    };
    RegoPolicyEngine::new(PolicyBundle::embedded(), options).unwrap()
}

/// Everything but the timing.
fn verdict(d: &Decision) -> (bool, bool, Vec<String>, Vec<String>, bool, String) {
    (
        d.allow,
        d.require_approval,
        d.reasons.clone(),
        d.rules_fired.clone(),
        d.policy_error,
        d.bundle_hash.clone(),
    )
}

#[test]
fn remembered_decisions_equal_fresh_ones_on_every_shipped_case() {
    let memo = engine(4096);
    let fresh = engine(0);
    assert!(fresh.memo_stats().is_none());
    let cases = embedded_cases().unwrap();
    for (_, case) in &cases {
        let expected = verdict(&fresh.decide(case.point, &case.input));
        // First a miss, then a hit: both must be the fresh decision.
        for round in 0..2 {
            let got = verdict(&memo.decide(case.point, &case.input));
            assert_eq!(got, expected, "{} (round {round})", case.name);
        }
    }
    let stats = memo.memo_stats().unwrap();
    assert_eq!(stats.hits + stats.misses, 2 * cases.len() as u64);
    assert!(
        stats.hits >= cases.len() as u64,
        "every second evaluation is a hit: {stats:?}"
    );
}

/// A tool call whose unread parts (task id, arguments, usage) change on every call is still
/// answered from the memo, and the answer is the fresh one.
#[test]
fn unread_fields_do_not_split_the_memo() {
    let memo = engine(4096);
    let fresh = engine(0);
    let mut input = tool_input(
        "alice",
        &["submitter"],
        "code_reviewer",
        "code_analyzer",
        "medium",
    );
    for i in 0..20 {
        input["task"]["id"] = json!(format!("task-{i}"));
        input["parameters"] = json!({"path": format!("src/{i}.rs")});
        input["usage"]["tool_calls"] = json!(i);
        let got = memo.decide(DecisionPoint::ToolCall, &input);
        assert!(got.allow, "{got:?}");
        assert_eq!(
            verdict(&got),
            verdict(&fresh.decide(DecisionPoint::ToolCall, &input))
        );
    }
    let stats = memo.memo_stats().unwrap();
    assert_eq!((stats.misses, stats.hits), (1, 19), "{stats:?}");
}

#[test]
fn a_change_in_a_read_field_is_never_answered_from_the_memo() {
    let memo = engine(4096);
    let api = |roles: Value, op: &str| {
        json!({
            "principal": {"sub": "bob", "roles": roles, "tenant": "acme"},
            "action": {"kind": "api", "name": op},
            "environment": "production",
        })
    };
    assert!(
        memo.decide(DecisionPoint::Api, &api(json!(["auditor"]), "audit.read"))
            .allow
    );
    // Same caller, roles taken away: denied, not the remembered allow.
    let denied = memo.decide(DecisionPoint::Api, &api(json!(["viewer"]), "audit.read"));
    assert!(!denied.allow && !denied.policy_error, "{denied:?}");
    // A tool turned high risk in production needs two approvals now.
    let low = tool_input(
        "alice",
        &["submitter"],
        "security_auditor",
        "vulnerability_scanner",
        "medium",
    );
    assert!(memo.decide(DecisionPoint::ToolCall, &low).allow);
    let mut high = low.clone();
    high["tool"]["risk"] = json!("high");
    let d = memo.decide(DecisionPoint::ToolCall, &high);
    assert!(!d.allow && d.require_approval, "{d:?}");
    // The same values at another decision point are another decision.
    let d = memo.decide(DecisionPoint::TaskSubmit, &low);
    assert_eq!(
        verdict(&d),
        verdict(&engine(0).decide(DecisionPoint::TaskSubmit, &low))
    );
}

#[test]
fn a_bundle_that_reads_the_clock_is_never_memoized() {
    let files = ["task", "model", "tool", "api"]
        .iter()
        .map(|pkg| PolicyFile {
            name: format!("{pkg}.rego"),
            source: format!(
                "package amas.{pkg}\n\nallow if time.now_ns() > 0\n\ndecision := {{\"allow\": allow, \"require_approval\": false, \"reasons\": []}}\n"
            ),
        })
        .collect();
    let engine =
        RegoPolicyEngine::new(PolicyBundle::from_files(files), EngineOptions::default()).unwrap();
    assert!(engine.memo_stats().is_none());
    assert!(engine.decide(DecisionPoint::Api, &json!({})).allow);
}

#[test]
fn large_read_values_are_evaluated_every_time() {
    let memo = engine(4096);
    let mut input = tool_input(
        "alice",
        &["submitter"],
        "code_reviewer",
        "code_analyzer",
        "medium",
    );
    input["approvals"] =
        json!([{"approver": "x".repeat(4096), "decision": "approve", "roles": ["approver"]}]);
    for _ in 0..3 {
        let d = memo.decide(DecisionPoint::ToolCall, &input);
        assert_eq!(
            verdict(&d),
            verdict(&engine(0).decide(DecisionPoint::ToolCall, &input))
        );
    }
    let stats = memo.memo_stats().unwrap();
    assert_eq!(
        (stats.hits, stats.misses, stats.uncacheable),
        (0, 0, 3),
        "{stats:?}"
    );
}

#[test]
fn the_oldest_decisions_are_evicted_at_capacity() {
    let memo = engine(2);
    let input = |sub: &str| {
        tool_input(
            sub,
            &["submitter"],
            "code_reviewer",
            "code_analyzer",
            "medium",
        )
    };
    for sub in ["a", "b", "c", "a"] {
        memo.decide(DecisionPoint::ToolCall, &input(sub));
    }
    // "a" was evicted by "c", so all four were misses; "c" is still there.
    memo.decide(DecisionPoint::ToolCall, &input("c"));
    let stats = memo.memo_stats().unwrap();
    assert_eq!((stats.misses, stats.hits), (4, 1), "{stats:?}");
}

fn tool_input(sub: &str, roles: &[&str], agent: &str, tool: &str, risk: &str) -> Value {
    json!({
        "principal": {"sub": sub, "roles": roles, "tenant": "acme"},
        "agent": {"id": agent, "role": "r"},
        "action": {"kind": "tool_call", "name": tool},
        "tool": {"name": tool, "risk": risk, "side_effects": "read", "idempotent": true, "requires_approval": false},
        "data": {"classification": "internal", "tags": []},
        "task": {"id": "t1", "type": "code_review"},
        "environment": "production",
        "parameters": {},
        "usage": {"tool_calls": 0, "bytes_out": 0},
        "approvals": [],
        "approver_roles": ["approver", "admin"]
    })
}

fn arb_tool_input() -> impl Strategy<Value = Value> {
    let pick = |xs: &'static [&'static str]| proptest::sample::select(xs);
    (
        pick(&["alice", "bob", "root"]),
        proptest::sample::subsequence(vec!["viewer", "submitter", "approver", "admin"], 0..3),
        pick(&["code_reviewer", "security_auditor", "research", "analysis", "ghost"]),
        pick(&["code_analyzer", "vulnerability_scanner", "http_fetch", "system_executor", "file_write"]),
        pick(&["low", "medium", "high", "critical", "bogus"]),
        pick(&["none", "read", "write", "external"]),
        pick(&["production", "development"]),
        pick(&["public", "internal", "restricted"]),
        proptest::collection::vec(
            (pick(&["", "alice", "carol", "dave"]), pick(&["approve", "deny"]), pick(&["approver", "viewer"])),
            0..3,
        ),
        any::<u32>(),
    )
        .prop_map(|(sub, roles, agent, tool, risk, effects, env, class, approvals, noise)| {
            let mut input = tool_input(sub, &roles, agent, tool, risk);
            input["tool"]["side_effects"] = json!(effects);
            input["environment"] = json!(env);
            input["data"]["classification"] = json!(class);
            input["approvals"] = approvals
                .iter()
                .map(|(who, decision, role)| json!({"approver": who, "decision": decision, "roles": [role]}))
                .collect();
            input["task"]["id"] = json!(format!("t{noise}"));
            input
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// One memo across all generated inputs (so later ones hit entries made by earlier ones):
    /// every answer equals a fresh evaluation.
    #[test]
    fn memoized_tool_decisions_equal_fresh_evaluation(inputs in proptest::collection::vec(arb_tool_input(), 1..8)) {
        let memo = engine(4096);
        let fresh = engine(0);
        for input in inputs.iter().chain(inputs.iter()) {
            let got = memo.decide(DecisionPoint::ToolCall, input);
            let want = fresh.decide(DecisionPoint::ToolCall, input);
            prop_assert_eq!(verdict(&got), verdict(&want));
        }
    }
}
