//! The rendered SLO files checked by the real tools: promtool validates the rules and runs unit
//! tests proving a fast burn pages and a slow burn only tickets; amtool validates the
//! Alertmanager configuration and its routing. Missing tools fail the tests (CI installs them
//! with scripts/install-observability-tools.sh); they are never skipped.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

mod slo_common;

use std::path::Path;

use amas_telemetry::slo::{self, SloConfig};
use serde_json::{Value, json};

use slo_common::{parse_yaml, run_tool};

fn render_embedded(dir: &Path) -> slo::RenderedFiles {
    let config = SloConfig::embedded().unwrap();
    slo::render(&config, dir).unwrap()
}

#[test]
fn rendered_rules_pass_promtool_check_rules() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_embedded(dir.path());
    let out = run_tool(
        "promtool",
        &["check", "rules", files.rules.to_str().unwrap()],
        None,
    )
    .all();
    // 7 SLOs: 8 recorded ratios + budget + 2 alerts each.
    assert!(out.contains("SUCCESS: 77 rules found"), "{out}");
}

/// The annotations and labels promtool must see on a firing alert of the rendered rules.
fn expected_alert(rules: &Value, alert: &str, severity: &str, burn: &str) -> Value {
    let rule = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == alert && r["labels"]["burn"] == burn)
        .unwrap_or_else(|| panic!("no {burn} rule for {alert}"));
    let runbook = rule["annotations"]["runbook_url"].as_str().unwrap();
    assert_eq!(runbook, format!("docs/runbooks/{alert}.md"));
    json!({
        "exp_labels": {
            "slo": "api-availability",
            "service": "api",
            "severity": severity,
            "burn": burn,
        },
        "exp_annotations": rule["annotations"],
    })
}

fn http_series(status: &str, values: &str) -> Value {
    json!({
        "series": format!(
            "amas_http_requests_total{{method=\"POST\",route=\"/api/v1/tasks\",status=\"{status}\"}}"
        ),
        "values": values,
    })
}

/// 100 requests a minute. Fast burn: every request fails for 20 minutes, then all succeed again.
/// Slow burn: 0.75% of requests fail for three days, 1.5 times the 0.5% budget; a control run
/// at 0.9 times the budget alerts nobody.
#[test]
fn fast_burn_pages_and_slow_burn_only_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_embedded(dir.path());
    let rules = parse_yaml(&std::fs::read_to_string(&files.rules).unwrap());
    let alert = "AmasApiAvailabilityBudgetBurn";
    let page = expected_alert(&rules, alert, "page", "fast");
    let ticket = expected_alert(&rules, alert, "ticket", "slow");

    let fast = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                // t=0..60 good, t=61..80 only errors, t=81..140 good again.
                http_series("200", "0+100x60 6000+0x19 6100+100x59"),
                http_series("500", "0+0x60 100+100x19 2000+0x59"),
            ],
            "alert_rule_test": [
                { "eval_time": "50m", "alertname": alert, "exp_alerts": [] },
                // 1h and 5m both far above 14.4x: the page fires (the ticket too; Alertmanager
                // inhibits it while the page is active).
                { "eval_time": "75m", "alertname": alert, "exp_alerts": [page, ticket] },
                // 45 minutes after the burn stopped the short windows are clean: the page
                // resolves, the ticket stays because the day's budget really was spent.
                { "eval_time": "125m", "alertname": alert, "exp_alerts": [ticket] },
            ],
        }],
    });
    let slow = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "5m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                http_series("200", "0+99.25x4320"),
                http_series("500", "0+0.75x4320"),
            ],
            "alert_rule_test": [
                { "eval_time": "1d", "alertname": alert, "exp_alerts": [ticket] },
                { "eval_time": "3d", "alertname": alert, "exp_alerts": [ticket] },
            ],
            "promql_expr_test": [{
                // 1.5x the budget rate over three days (of a 30d window with no older data):
                // the remaining budget is 1 - 1.5 = -0.5.
                "expr": "(slo:error_budget_remaining:ratio{slo=\"api-availability\"} > bool -0.51) \
                         * (slo:error_budget_remaining:ratio{slo=\"api-availability\"} < bool -0.49)",
                "eval_time": "3d",
                "exp_samples": [{
                    "labels": "{service=\"api\", slo=\"api-availability\"}",
                    "value": 1,
                }],
            }],
        }, {
            // 0.9x the budget rate for three days: within budget, nobody is told.
            "interval": "1m",
            "input_series": [
                http_series("200", "0+99.55x4320"),
                http_series("500", "0+0.45x4320"),
            ],
            "alert_rule_test": [
                { "eval_time": "3d", "alertname": alert, "exp_alerts": [] },
            ],
        }],
    });
    let prom_dir = files.rules.parent().unwrap();
    std::fs::write(prom_dir.join("fast.test.yml"), fast.to_string()).unwrap();
    std::fs::write(prom_dir.join("slow.test.yml"), slow.to_string()).unwrap();
    let out = run_tool(
        "promtool",
        &["test", "rules", "fast.test.yml", "slow.test.yml"],
        Some(prom_dir),
    )
    .all();
    assert!(out.matches("SUCCESS").count() == 2, "{out}");
}

#[test]
fn alertmanager_config_passes_amtool_and_routes_by_severity_and_service() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_embedded(dir.path());
    let config = files.alertmanager.to_str().unwrap();
    let out = run_tool("amtool", &["check-config", config], None).all();
    assert!(out.contains("SUCCESS"), "{out}");
    for (labels, receiver) in [
        (["severity=page", "service=api"], "pager-api"),
        (["severity=page", "service=auth"], "pager-auth"),
        (["severity=ticket", "service=providers"], "ticket-providers"),
        (["severity=ticket", "service=runtime"], "ticket-runtime"),
        (["severity=page", "service=unknown"], "pager"),
    ] {
        let file_arg = format!("--config.file={config}");
        let args = ["config", "routes", "test", &file_arg, labels[0], labels[1]];
        let out = run_tool("amtool", &args, None);
        assert_eq!(out.stdout.trim(), receiver, "route for {labels:?}");
    }
    let am = parse_yaml(&std::fs::read_to_string(&files.alertmanager).unwrap());
    let inhibit = &am["inhibit_rules"][0];
    assert_eq!(inhibit["source_matchers"], json!(["severity=\"page\""]));
    assert_eq!(inhibit["target_matchers"], json!(["severity=\"ticket\""]));
    assert_eq!(inhibit["equal"][0], "slo");
    for receiver in am["receivers"].as_array().unwrap() {
        let url = receiver["webhook_configs"][0]["url"].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }
}

#[test]
fn every_alert_links_to_an_existing_runbook() {
    let config = SloConfig::embedded().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for slo in &config.slos {
        assert_eq!(slo.runbook_url, format!("docs/runbooks/{}.md", slo.alert));
        let page = repo.join(&slo.runbook_url);
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        for section in ["## Meaning", "## First checks", "## Mitigation"] {
            assert!(text.contains(section), "{} lacks {section}", page.display());
        }
    }
}

#[test]
fn dashboard_panels_all_query_and_every_slo_has_a_budget_panel() {
    let dir = tempfile::tempdir().unwrap();
    let files = render_embedded(dir.path());
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&files.dashboard).unwrap()).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus")
    );

    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id in {panel}"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24 && grid["h"].as_u64().unwrap() > 0, "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty(),
            "panel without query: {}",
            panel["title"]
        );
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(!expr.is_empty(), "{}", panel["title"]);
            assert_eq!(target["datasource"]["uid"], "${datasource}");
            exprs.push(expr.to_owned());
        }
    }
    for slo in SloConfig::embedded().unwrap().slos {
        let budget = format!("slo:error_budget_remaining:ratio{{slo=\"{}\"}}", slo.name);
        assert!(exprs.contains(&budget), "no budget panel for {}", slo.name);
    }
    for needle in [
        "histogram_quantile(0.99, sum by (route, le) (rate(amas_http_request_duration_seconds_bucket",
        "amas_queue_depth",
        "amas_tasks_running",
        "amas_tokens_total",
        "amas_provider_calls_total{outcome!=\"ok\"}",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needle)),
            "no panel queries {needle}"
        );
    }
}

#[test]
fn every_rendered_expression_parses_in_promtool() {
    // Dashboard queries are not rules, so `promtool check rules` does not see them: wrap each in
    // a recording rule (Grafana's $-variables replaced by values) and let promtool parse it.
    let dir = tempfile::tempdir().unwrap();
    let files = render_embedded(dir.path());
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&files.dashboard).unwrap()).unwrap();
    let rules: Vec<Value> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .enumerate()
        .map(|(i, t)| {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$__range", "6h")
                .replace("$max_concurrent_tasks", "4");
            json!({ "record": format!("dashboard:query{i}"), "expr": expr })
        })
        .collect();
    assert!(rules.len() > 20);
    let path = dir.path().join("dashboard-queries.yml");
    let file = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(&path, file.to_string()).unwrap();
    let out = run_tool(
        "promtool",
        &["check", "rules", path.to_str().unwrap()],
        None,
    )
    .all();
    assert!(out.contains("SUCCESS"), "{out}");
}
