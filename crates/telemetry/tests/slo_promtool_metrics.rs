//! `promtool check metrics` on the real registry's exposition with every family populated: the
//! naming convention in docs/metrics.md is checked by Prometheus's own linter, not by us.
//! promtool reads the classic text format only, hence `render_text` (the server's OpenMetrics
//! output carries the same names).

mod slo_common;

use amas_telemetry::Metrics;
use amas_telemetry::metrics::{
    ContractLabels, CostLabels, DecisionLabels, HttpLabels, ProviderLabels, ProviderNameLabels,
    QueueTenantLabels, ReasonLabels, RouteLabels, StepLabels, TaskLabels, TokenLabels, ToolLabels,
};

fn populated() -> Metrics {
    let m = Metrics::new();
    let route = || RouteLabels {
        method: "POST".into(),
        route: "/api/v1/tasks".into(),
    };
    m.http_requests
        .get_or_create(&HttpLabels {
            method: "POST".into(),
            route: "/api/v1/tasks".into(),
            status: 202,
        })
        .inc();
    m.http_request_duration
        .get_or_create(&route())
        .observe(0.003);
    let task = TaskLabels {
        task_type: "research_report".into(),
        status: "succeeded".into(),
    };
    m.tasks.get_or_create(&task).inc();
    m.task_duration.get_or_create(&task).observe(12.0);
    let step = StepLabels {
        agent: "research".into(),
        status: "succeeded".into(),
    };
    m.steps.get_or_create(&step).inc();
    m.step_duration.get_or_create(&step).observe(4.0);
    m.provider_calls
        .get_or_create(&ProviderLabels {
            provider: "local".into(),
            outcome: "ok".into(),
        })
        .inc();
    let provider = ProviderNameLabels {
        provider: "local".into(),
    };
    m.provider_call_duration
        .get_or_create(&provider)
        .observe(3.5);
    m.provider_breaker_state.get_or_create(&provider).set(0);
    m.tokens
        .get_or_create(&TokenLabels {
            provider: "local".into(),
            model: "smollm2".into(),
            tenant: "default".into(),
            direction: "output".into(),
        })
        .inc_by(42);
    m.estimated_cost
        .get_or_create(&CostLabels {
            provider: "local".into(),
            model: "smollm2".into(),
            tenant: "default".into(),
        })
        .inc_by(0.0042);
    m.contract_checks
        .get_or_create(&ContractLabels {
            agent: "research".into(),
            outcome: "ok".into(),
        })
        .inc();
    m.queue_depth.set(3);
    m.queue_capacity.set(1000);
    m.queue.oldest_age.set(1.5);
    m.queue
        .tenant_depth
        .get_or_create(&QueueTenantLabels {
            tenant: "other".into(),
        })
        .set(3);
    m.queue.claim_duration.observe(0.0008);
    m.queue.lease_lost("renewal");
    m.tasks_running.set(2);
    m.auth_failures
        .get_or_create(&ReasonLabels {
            reason: "expired".into(),
        })
        .inc();
    m.governance_decisions
        .get_or_create(&DecisionLabels {
            stage: "authorize".into(),
            outcome: "allow".into(),
        })
        .inc();
    m.governance_duration.observe(0.00002);
    let tool = ToolLabels {
        tool: "http_fetch".into(),
        outcome: "ok".into(),
    };
    m.tool_calls.get_or_create(&tool).inc();
    m.tool_call_duration.get_or_create(&tool).observe(0.2);
    m
}

#[test]
fn promtool_check_metrics_accepts_the_exposition() {
    let text = populated().render_text();
    // Guard against a vacuous pass: every family must have produced samples.
    for series in [
        "amas_http_requests_total{",
        "amas_step_duration_seconds_bucket{",
        "amas_queue_depth ",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    let out = slo_common::run_tool_with_input("promtool", &["check", "metrics"], None, &text).all();
    assert!(
        out.trim().is_empty(),
        "promtool check metrics reported problems:\n{out}"
    );
}

#[test]
fn text_format_names_counters_by_their_total_series_and_has_no_eof() {
    let text = populated().render_text();
    assert!(
        text.contains("# TYPE amas_http_requests_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# HELP amas_http_requests_total "), "{text}");
    assert!(
        text.contains("# TYPE amas_http_request_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}
