//! The gate asks the policy through the decision memo: calls in a task that differ only in what
//! the bundle does not read (task, arguments, usage) are answered from the memo with the same
//! verdict, a call that differs in what it reads is evaluated, and `/metrics` shows which.

use std::sync::Arc;

use amas_config::LoadOptions;
use amas_governance::pipeline::{Outcome, Pipeline, TaskToolUsage, ToolCallRequest};
use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_telemetry::Metrics;
use amas_types::{Principal, TenantId};
use serde_json::json;

fn principal(sub: &str) -> Principal {
    Principal {
        sub: sub.to_owned(),
        roles: vec!["submitter".to_owned()],
        tenant: TenantId("acme".to_owned()),
        auth_method: "local_jwt".to_owned(),
        issuer: "amas-local".to_owned(),
    }
}

fn count(metrics: &Metrics, source: &str) -> u64 {
    let needle = format!("amas_policy_decisions_total{{point=\"tool_call\",source=\"{source}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn repeated_calls_are_answered_from_the_memo_with_the_same_verdict() {
    let config = amas_config::load(&LoadOptions::default()).unwrap();
    let mut reviewer = config.agents["code_reviewer"].clone();
    reviewer.quotas.calls_per_minute = u32::MAX;
    let policy: Arc<dyn PolicyEngine> = Arc::new(RegoPolicyEngine::embedded().unwrap());
    let metrics = Metrics::new();
    let gate = Pipeline::new(
        policy,
        Arc::new(amas_tools::ToolRegistry::load(None).unwrap()),
        "production",
        metrics.clone(),
    );
    let check = |sub: &str, task: &str, tool: &str, path: &str, calls: u32| {
        let principal = principal(sub);
        let arguments = json!({"path": path});
        let usage = TaskToolUsage {
            tool_calls: calls,
            ..TaskToolUsage::default()
        };
        let req = ToolCallRequest {
            principal: &principal,
            agent: &reviewer,
            task_id: task,
            task_type: "code_review",
            tool,
            arguments: &arguments,
            usage: &usage,
            approvals: &[],
        };
        gate.check(&req)
    };

    let first = check("alice", "t1", "code_analyzer", "src/a.rs", 0);
    assert_eq!(first.outcome(), Outcome::Allow, "{first:?}");
    for i in 1..5 {
        let again = check(
            "alice",
            &format!("t{i}"),
            "code_analyzer",
            &format!("src/{i}.rs"),
            i,
        );
        assert_eq!(again.outcome(), Outcome::Allow);
        assert_eq!(again.stages[0].reasons, first.stages[0].reasons);
    }
    assert_eq!(
        (count(&metrics, "evaluated"), count(&metrics, "memo")),
        (1, 4)
    );

    // Another tool is another decision: evaluated, and denied by its own rule.
    let denied = check("alice", "t9", "vulnerability_scanner", "src/a.rs", 0);
    assert_eq!(denied.outcome(), Outcome::Deny);
    // Another principal is read by the bundle: evaluated too.
    check("bob", "t9", "code_analyzer", "src/a.rs", 0);
    assert_eq!(
        (count(&metrics, "evaluated"), count(&metrics, "memo")),
        (3, 4)
    );
}
