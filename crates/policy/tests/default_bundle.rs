//! The shipped bundle passes its shipped YAML cases, both embedded and read from `policies/`,
//! so `amas policy test` in CI and the binary's defaults cannot drift apart.

use std::path::Path;

use amas_policy::{PolicyBundle, RegoPolicyEngine, embedded_cases, run_cases, run_tests};

fn policies_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
}

fn print_failures(report: &amas_policy::TestReport) {
    for o in report.outcomes.iter().filter(|o| !o.passed()) {
        eprintln!(
            "FAIL {} / {}: {:?}\n  decision: {:?}",
            o.file, o.name, o.failures, o.decision
        );
    }
}

#[test]
fn embedded_bundle_passes_embedded_cases() {
    let engine = RegoPolicyEngine::embedded().unwrap();
    let cases = embedded_cases().unwrap();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let report = run_cases(&engine, &cases);
    print_failures(&report);
    assert!(report.all_passed(), "{} case(s) failed", report.failed());
    assert!(report.outcomes.iter().all(|o| !o.decision.policy_error));
}

#[test]
fn directory_bundle_is_the_embedded_bundle_and_passes_its_cases() {
    let from_dir = RegoPolicyEngine::from_dir(policies_dir()).unwrap();
    assert_eq!(from_dir.bundle_hash(), PolicyBundle::embedded().hash());
    let report = run_tests(&from_dir, &policies_dir().join("tests")).unwrap();
    print_failures(&report);
    assert!(report.all_passed(), "{} case(s) failed", report.failed());
}

#[test]
fn decision_carries_reasons_rules_and_hash() {
    let engine = RegoPolicyEngine::embedded().unwrap();
    let input = serde_json::json!({
        "principal": {"sub": "root", "roles": ["admin"], "tenant": "acme"},
        "agent": {"id": "code_reviewer", "role": "code_review"},
        "action": {"kind": "tool_call", "name": "system_executor"},
        "tool": {"name": "system_executor", "risk": "high", "side_effects": "write"},
        "environment": "development",
        "approvals": []
    });
    let d =
        amas_policy::PolicyEngine::decide(&engine, amas_policy::DecisionPoint::ToolCall, &input);
    assert!(!d.allow && d.require_approval, "{d:?}");
    assert_eq!(
        d.reasons,
        vec!["system_executor requires an approval".to_owned()]
    );
    assert_eq!(
        d.rules_fired,
        vec![
            "tool.admin_grant".to_owned(),
            "tool.system_executor_approval".to_owned()
        ]
    );
    assert_eq!(d.bundle_hash, engine.bundle_hash());
    assert_eq!(d.outcome(), "require_approval");
}
