//! Fail closed: every way a policy can misbehave at evaluation time ends in a deny marked as a
//! policy error, and bundles that cannot work are refused at load. Every evaluation-time case
//! runs on both the bytecode VM and the interpreter.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::time::Duration;

use amas_policy::{
    DecisionPoint, EngineOptions, Evaluation, PolicyBundle, PolicyEngine, PolicyFile,
    RegoPolicyEngine,
};
use serde_json::json;

const ALLOW_ALL: &str = r#"{"allow": true, "require_approval": false, "reasons": ["ok"]}"#;

/// A bundle whose tool policy is `tool_body`; the other points allow everything.
fn bundle(tool_body: &str) -> PolicyBundle {
    let mut files: Vec<PolicyFile> = ["task", "model", "api"]
        .iter()
        .map(|pkg| PolicyFile {
            name: format!("{pkg}.rego"),
            source: format!("package amas.{pkg}\n\ndecision := {ALLOW_ALL}\n"),
        })
        .collect();
    files.push(PolicyFile {
        name: "tool.rego".to_owned(),
        source: format!("package amas.tool\n\n{tool_body}\n"),
    });
    PolicyBundle::from_files(files)
}

/// The bundle on the bytecode VM, then on the interpreter.
fn engines_with(tool_body: &str, eval_timeout: Duration) -> [RegoPolicyEngine; 2] {
    let [bytecode, interpreter] =
        [Evaluation::Bytecode, Evaluation::Interpreter].map(|evaluation| {
            let options = EngineOptions {
                eval_timeout,
                evaluation,
                ..EngineOptions::default()
            };
            RegoPolicyEngine::new(bundle(tool_body), options).unwrap()
        });
    assert!(
        bytecode.is_compiled(),
        "the test bundle compiles to bytecode"
    );
    assert!(!interpreter.is_compiled());
    [bytecode, interpreter]
}

fn engines(tool_body: &str) -> [RegoPolicyEngine; 2] {
    engines_with(tool_body, EngineOptions::default().eval_timeout)
}

fn assert_policy_error(engine: &RegoPolicyEngine, input: serde_json::Value, needle: &str) {
    let d = engine.decide(DecisionPoint::ToolCall, &input);
    assert!(!d.allow && !d.require_approval, "{d:?}");
    assert!(d.policy_error, "{d:?}");
    assert!(d.reasons[0].starts_with("policy error: "), "{d:?}");
    assert!(
        d.reasons[0].contains(needle),
        "{:?} lacks {needle:?}",
        d.reasons
    );
    // The other points are unaffected.
    assert!(engine.decide(DecisionPoint::Api, &input).allow);
}

#[test]
fn the_test_bundle_allows_when_well_formed() {
    for e in engines(&format!("decision := {ALLOW_ALL}")) {
        let d = e.decide(DecisionPoint::ToolCall, &json!({}));
        assert!(d.allow && !d.policy_error, "{d:?}");
    }
}

#[test]
fn undefined_decision_is_a_deny() {
    for e in engines(&format!("decision := {ALLOW_ALL} if input.magic == 42")) {
        assert!(
            e.decide(DecisionPoint::ToolCall, &json!({"magic": 42}))
                .allow
        );
        assert_policy_error(&e, json!({"magic": 1}), "undefined");
    }
}

#[test]
fn evaluation_error_is_a_deny() {
    // Two complete definitions of one rule with different values: a runtime conflict.
    for e in engines(&format!(
        "decision := {ALLOW_ALL} if input.a\n\ndecision := {{\"allow\": false, \"require_approval\": false, \"reasons\": []}} if input.b"
    )) {
        assert!(e.decide(DecisionPoint::ToolCall, &json!({"a": true})).allow);
        // The interpreter reports the conflict; the bytecode VM makes the rule undefined.
        let needle = if e.is_compiled() {
            "data.amas.tool.decision is undefined"
        } else {
            "data.amas.tool.decision failed"
        };
        assert_policy_error(&e, json!({"a": true, "b": true}), needle);
    }
}

#[test]
fn a_failed_run_does_not_poison_later_decisions() {
    // The bytecode engine reuses VMs: one that failed mid-run must not leak into the next call.
    for e in engines(&format!(
        "decision := {ALLOW_ALL} if input.a\n\ndecision := {{\"allow\": false, \"require_approval\": false, \"reasons\": []}} if input.b"
    )) {
        for _ in 0..3 {
            assert_policy_error(&e, json!({"a": true, "b": true}), "data.amas.tool.decision");
            let d = e.decide(DecisionPoint::ToolCall, &json!({"a": true}));
            assert!(d.allow && !d.policy_error, "{d:?}");
            assert_policy_error(&e, json!({}), "undefined");
        }
    }
}

#[test]
fn wrong_shape_is_a_deny() {
    for body in [
        "decision := true",
        r#"decision := {"allow": "yes", "require_approval": false, "reasons": []}"#,
        r#"decision := {"allow": true, "reasons": []}"#,
        r#"decision := {"allow": true, "require_approval": false, "reasons": [], "extra": 1}"#,
        r#"decision := {"allow": true, "require_approval": false, "reasons": [1]}"#,
    ] {
        for e in engines(body) {
            assert_policy_error(&e, json!({}), "wrong shape");
        }
    }
}

#[test]
fn runaway_evaluation_is_cut_off_and_denied() {
    let body = format!(
        "decision := {ALLOW_ALL} if {{\n  input.heavy\n  n := count([1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000)])\n  n > input.min\n}}"
    );
    for e in engines_with(&body, Duration::from_millis(20)) {
        // Without the heavy branch the same engine decides normally.
        assert!(e.decide(DecisionPoint::Api, &json!({})).allow);
        assert_policy_error(&e, json!({"heavy": true, "min": 0}), "exceeded time limit");
    }
}

#[test]
fn syntax_error_is_refused_at_load() {
    let err = RegoPolicyEngine::new(bundle("decision := {"), EngineOptions::default()).unwrap_err();
    assert_eq!(err.code(), "AMAS-POL-0002", "{err}");
    assert!(err.to_string().contains("tool.rego"), "{err}");
}

#[test]
fn unknown_function_is_refused_at_load() {
    let err = RegoPolicyEngine::new(
        bundle("decision := no_such_fn(1)"),
        EngineOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "AMAS-POL-0002", "{err}");
}

#[test]
fn missing_decision_point_is_refused_at_load() {
    let files = vec![PolicyFile {
        name: "tool.rego".to_owned(),
        source: format!("package amas.tool\n\ndecision := {ALLOW_ALL}\n"),
    }];
    let err = RegoPolicyEngine::new(PolicyBundle::from_files(files), EngineOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-POL-0003", "{err}");
}
