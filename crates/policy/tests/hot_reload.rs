//! Hot reload: a broken bundle is rejected with its error and the old one stays in force; a
//! fixed bundle is picked up, both by an explicit reload and by the polling watcher.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amas_policy::{DecisionPoint, EngineOptions, PolicyEngine, ReloadingPolicyEngine};
use serde_json::json;

fn write_bundle(dir: &Path, tool_allow: bool) {
    for pkg in ["task", "model", "api"] {
        std::fs::write(
            dir.join(format!("{pkg}.rego")),
            format!(
                "package amas.{pkg}\n\ndecision := {{\"allow\": false, \"require_approval\": false, \"reasons\": [\"no\"]}}\n"
            ),
        )
        .unwrap();
    }
    write_tool(
        dir,
        &format!(
            "package amas.tool\n\ndecision := {{\"allow\": {tool_allow}, \"require_approval\": false, \"reasons\": [\"v\"]}}\n"
        ),
    );
}

fn write_tool(dir: &Path, source: &str) {
    // Write then rename, as editors and config managers do, so a poll never sees half a file.
    let tmp = dir.join("tool.rego.tmp");
    std::fs::write(&tmp, source).unwrap();
    std::fs::rename(&tmp, dir.join("tool.rego")).unwrap();
}

fn tool_allowed(engine: &ReloadingPolicyEngine) -> bool {
    let d = engine.decide(DecisionPoint::ToolCall, &json!({}));
    assert!(!d.policy_error, "{d:?}");
    d.allow
}

#[test]
fn broken_bundle_is_rejected_and_fixed_bundle_is_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), false);
    let engine = ReloadingPolicyEngine::new(dir.path(), EngineOptions::default()).unwrap();
    let first_hash = engine.bundle_hash();
    assert!(!tool_allowed(&engine));
    assert!(
        !engine.reload().unwrap(),
        "unchanged files are not a reload"
    );

    write_tool(
        dir.path(),
        "package amas.tool\n\ndecision := {\"allow\": true,\n",
    );
    let err = engine.reload().unwrap_err();
    assert_eq!(err.code(), "AMAS-POL-0002");
    assert!(!tool_allowed(&engine), "the old bundle must stay in force");
    assert_eq!(engine.bundle_hash(), first_hash);
    assert!(engine.last_error().unwrap().contains("tool.rego"));
    assert_eq!((engine.reload_count(), engine.failure_count()), (0, 1));
    // The same broken files are not recompiled (nor re-logged) on every poll.
    assert!(!engine.reload().unwrap());
    assert_eq!(engine.failure_count(), 1);

    write_bundle(dir.path(), true);
    assert!(engine.reload().unwrap());
    assert!(tool_allowed(&engine));
    assert_ne!(engine.bundle_hash(), first_hash);
    assert_eq!(engine.last_error(), None);
    assert_eq!(engine.reload_count(), 1);
}

#[test]
fn bundle_missing_a_decision_point_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), true);
    let engine = ReloadingPolicyEngine::new(dir.path(), EngineOptions::default()).unwrap();
    std::fs::remove_file(dir.path().join("api.rego")).unwrap();
    assert_eq!(engine.reload().unwrap_err().code(), "AMAS-POL-0003");
    assert!(tool_allowed(&engine));
}

#[test]
fn watcher_picks_up_changes() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), false);
    let engine =
        Arc::new(ReloadingPolicyEngine::new(dir.path(), EngineOptions::default()).unwrap());
    let _watch = engine.watch(Duration::from_millis(10));
    write_bundle(dir.path(), true);
    // Not a timing assertion: wait (generously) for an event that must eventually happen.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.reload_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tool_allowed(&engine));
}

#[test]
fn observers_hear_of_every_swap_and_rejection_once() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), false);
    let engine = ReloadingPolicyEngine::new(dir.path(), EngineOptions::default()).unwrap();
    let first = engine.bundle_hash();
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    engine.on_change(move |c| sink.lock().unwrap().push(c.clone()));

    assert!(!engine.reload().unwrap());
    write_tool(dir.path(), "package amas.tool\n\ndecision := {\n");
    let _ = engine.reload().unwrap_err();
    let _ = engine.reload();
    write_bundle(dir.path(), true);
    assert!(engine.reload().unwrap());
    let second = engine.bundle_hash();

    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2, "{heard:?}");
    match &heard[0] {
        amas_policy::PolicyChange::Rejected {
            in_force,
            rejected,
            code,
            ..
        } => {
            assert_eq!(in_force, &first);
            assert_ne!(rejected, &first);
            assert_eq!(*code, "AMAS-POL-0002");
        }
        other => panic!("expected a rejection first: {other:?}"),
    }
    assert_eq!(
        heard[1],
        amas_policy::PolicyChange::Applied {
            from_hash: first,
            to_hash: second
        }
    );
}
