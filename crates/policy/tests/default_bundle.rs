//! The shipped bundle passes its shipped YAML cases, both embedded and read from `policies/`,
//! so `amas policy test` in CI and the binary's defaults cannot drift apart.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::path::Path;

use amas_policy::{
    EngineOptions, Evaluation, PolicyBundle, RegoPolicyEngine, embedded_cases, run_cases, run_tests,
};

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

fn engine(evaluation: Evaluation) -> RegoPolicyEngine {
    let options = EngineOptions {
        evaluation,
        ..EngineOptions::default()
    };
    RegoPolicyEngine::new(PolicyBundle::embedded(), options).unwrap()
}

/// The interpreter is the reference; the bytecode VM and the default guarded evaluation must
/// return the same document, reasons and rule ids included, on every shipped case, and the
/// guarded one runs every shipped case (all well-formed) on bytecode.
#[test]
fn bytecode_guarded_and_interpreter_decide_every_case_alike() {
    let guarded = RegoPolicyEngine::embedded().unwrap();
    assert!(
        guarded.is_compiled(),
        "the default evaluation runs well-formed inputs as bytecode"
    );
    let bytecode = engine(Evaluation::Bytecode);
    assert!(
        bytecode.is_compiled(),
        "the default bundle compiles to bytecode"
    );
    let interpreter = engine(Evaluation::Interpreter);
    assert!(!interpreter.is_compiled());
    let cases = embedded_cases().unwrap();
    let fast = run_cases(&bytecode, &cases);
    let default = run_cases(&guarded, &cases);
    let reference = run_cases(&interpreter, &cases);
    let doc = |o: &amas_policy::CaseOutcome| {
        let d = &o.decision;
        (
            d.allow,
            d.require_approval,
            d.reasons.clone(),
            d.rules_fired.clone(),
            d.obligations.clone(),
            d.policy_error,
        )
    };
    for ((f, g), r) in fast
        .outcomes
        .iter()
        .zip(&default.outcomes)
        .zip(&reference.outcomes)
    {
        assert_eq!(doc(f), doc(r), "bytecode: {} / {}", f.file, f.name);
        assert_eq!(doc(g), doc(r), "guarded: {} / {}", g.file, g.name);
    }
    let ran = guarded.evaluator_stats();
    assert_eq!(ran.interpreter, 0, "{ran:?}");
    assert!(ran.bytecode > 0, "{ran:?}");
}

/// The guard's shape was verified for the embedded bundle only: a bundle one comment away from
/// it runs every decision on the interpreter.
#[test]
fn another_bundle_is_never_guarded_onto_bytecode() {
    let mut files = PolicyBundle::embedded().files().to_vec();
    files[0].source.push_str("\n# edited\n");
    let edited =
        RegoPolicyEngine::new(PolicyBundle::from_files(files), EngineOptions::default()).unwrap();
    assert!(!edited.is_compiled());
    let report = run_cases(&edited, &embedded_cases().unwrap());
    assert!(report.all_passed(), "{} case(s) failed", report.failed());
    let ran = edited.evaluator_stats();
    assert_eq!(ran.bytecode, 0, "{ran:?}");
    assert!(ran.interpreter > 0, "{ran:?}");
}

/// Why bytecode alone is not the default (regorus 0.14): on a malformed input the interpreter
/// fails closed with a policy error, the VM skips the failing rule body and asks for an
/// approval. The default guarded evaluation sends that input to the interpreter. If the raw VM
/// starts agreeing, it has caught up; the guard may go.
#[test]
fn bytecode_is_more_permissive_than_the_interpreter_on_malformed_input() {
    let input = serde_json::json!({
        "principal": {"sub": "alice", "roles": ["submitter"], "tenant": "acme"},
        "agent": {"id": "synthesis", "role": "synthesis"},
        "tool": {"name": "file_write", "risk": "medium", "side_effects": "write", "requires_approval": true},
        "environment": "development",
        "approvals": null
    });
    let point = amas_policy::DecisionPoint::ToolCall;
    let reference =
        amas_policy::PolicyEngine::decide(&engine(Evaluation::Interpreter), point, &input);
    assert!(
        reference.policy_error && !reference.allow && !reference.require_approval,
        "{reference:?}"
    );
    let vm = amas_policy::PolicyEngine::decide(&engine(Evaluation::Bytecode), point, &input);
    assert!(
        !vm.policy_error && !vm.allow && vm.require_approval,
        "{vm:?}"
    );
    let guarded = RegoPolicyEngine::embedded().unwrap();
    let default = amas_policy::PolicyEngine::decide(&guarded, point, &input);
    assert_eq!(default.reasons, reference.reasons);
    assert!(default.policy_error && !default.allow && !default.require_approval);
    assert_eq!(guarded.evaluator_stats().interpreter, 1);
}
