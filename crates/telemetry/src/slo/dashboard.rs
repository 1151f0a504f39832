//! The Grafana dashboard: error budget per SLO, then RED per route, task, step and provider,
//! saturation (USE), error classes, tokens and cost. Rows laid out top to bottom.

use serde_json::{Value, json};

use super::catalog::Catalog;
use super::config::SloConfig;
use super::promql::{self, BUDGET_REMAINING};

const RATE: &str = "[$__rate_interval]";
const WIDTH: u32 = 24;

/// Places panels on Grafana's 24-column grid and numbers them.
struct Layout {
    panels: Vec<Value>,
    next_id: u32,
    x: u32,
    y: u32,
    row_height: u32,
}

impl Layout {
    fn new() -> Self {
        Self {
            panels: Vec::new(),
            next_id: 1,
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    fn row(&mut self, title: &str) {
        self.newline();
        let id = self.id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false, "panels": [],
            "gridPos": { "h": 1, "w": WIDTH, "x": 0, "y": self.y },
        }));
        self.y += 1;
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a panel `w` wide and `h` high; `targets` are `(expr, legend)` pairs.
    fn panel(
        &mut self,
        kind: &str,
        title: &str,
        w: u32,
        h: u32,
        unit: &str,
        targets: &[(String, String)],
    ) -> &mut Value {
        if self.x + w > WIDTH {
            self.newline();
        }
        let id = self.id();
        let targets: Vec<Value> = targets
            .iter()
            .zip(b'A'..)
            .map(|((expr, legend), ref_id)| {
                json!({
                    "datasource": datasource(),
                    "expr": expr,
                    "legendFormat": legend,
                    "refId": char::from(ref_id).to_string(),
                })
            })
            .collect();
        self.panels.push(json!({
            "type": kind, "id": id, "title": title,
            "datasource": datasource(),
            "gridPos": { "h": h, "w": w, "x": self.x, "y": self.y },
            "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
            "options": {},
            "targets": targets,
        }));
        self.x += w;
        self.row_height = self.row_height.max(h);
        let last = self.panels.len() - 1;
        &mut self.panels[last]
    }

    fn timeseries(&mut self, title: &str, unit: &str, targets: &[(String, String)]) -> &mut Value {
        self.panel("timeseries", title, 12, 8, unit, targets)
    }
}

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// One query: `(expr, legend)`.
fn q(expr: impl Into<String>, legend: impl Into<String>) -> (String, String) {
    (expr.into(), legend.into())
}

fn quantiles(metric: &str, by: &str) -> Vec<(String, String)> {
    ["0.95", "0.99"]
        .into_iter()
        .map(|quantile| {
            q(
                format!("histogram_quantile({quantile}, sum by ({by}, le) (rate({metric}_bucket{RATE})))"),
                format!("p{} {{{{{by}}}}}", &quantile[2..]),
            )
        })
        .collect()
}

/// The dashboard JSON.
#[must_use]
pub fn dashboard(config: &SloConfig, catalog: &Catalog) -> Value {
    let mut l = Layout::new();
    slo_rows(&mut l, config);
    red_rows(&mut l);
    saturation_rows(&mut l);
    cost_rows(&mut l, catalog);
    json!({
        "uid": "amas-overview",
        "title": "AMAS overview",
        "tags": ["amas", "slo"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "templating": { "list": [
            {
                "name": "datasource", "label": "Data source", "type": "datasource",
                "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": [],
            },
            {
                // No metric carries the worker limit yet; runtime.max_concurrent_tasks defaults to 4.
                "name": "max_concurrent_tasks", "label": "Max concurrent tasks", "type": "textbox",
                "query": "4", "current": { "text": "4", "value": "4" }, "hide": 0, "options": [],
            },
        ]},
        "annotations": { "list": [] },
        "panels": l.panels,
    })
}

fn slo_rows(l: &mut Layout, config: &SloConfig) {
    l.row("Service level objectives: error budget left over the SLO window");
    for slo in &config.slos {
        let legend = if slo.by.is_empty() {
            slo.name.clone()
        } else {
            let labels: Vec<String> = slo.by.iter().map(|b| format!("{{{{{b}}}}}")).collect();
            labels.join(" ")
        };
        let expr = format!("{BUDGET_REMAINING}{{slo=\"{}\"}}", slo.name);
        let title = format!("Error budget: {}", slo.name);
        let panel = l.panel("stat", &title, 6, 5, "percentunit", &[q(expr, legend)]);
        panel["description"] = json!(format!(
            "{} Objective {}% over {}.",
            slo.description, slo.objective, slo.window
        ));
        panel["fieldConfig"]["defaults"]["thresholds"] = json!({ "mode": "absolute", "steps": [
            { "color": "red", "value": null },
            { "color": "orange", "value": 0 },
            { "color": "green", "value": 0.25 },
        ]});
    }
    l.newline();
    let burn: Vec<(String, String)> = config
        .slos
        .iter()
        .map(|s| {
            let record = promql::ratio_record("1h");
            q(
                format!("{record}{{slo=\"{}\"}} / {}", s.name, s.error_budget()),
                s.name.clone(),
            )
        })
        .collect();
    let title = "Burn rate over 1h (1 = spends exactly the budget over the window)";
    let panel = l.panel("timeseries", title, WIDTH, 8, "none", &burn);
    panel["description"] = json!("Fast-burn alerts fire above 14.4 (1h and 5m) or 6 (6h and 30m).");
}

fn red_rows(l: &mut Layout) {
    let http = "amas_http_requests_total";
    l.row("HTTP API: rate, errors, duration per route");
    l.timeseries(
        "Requests per second by route",
        "reqps",
        &[q(
            format!("sum by (route) (rate({http}{RATE}))"),
            "{{route}}",
        )],
    );
    l.timeseries(
        "5xx ratio by route",
        "percentunit",
        &[q(
            format!(
                "sum by (route) (rate({http}{{status=~\"5..\"}}{RATE})) \
                 / sum by (route) (rate({http}{RATE}))"
            ),
            "{{route}}",
        )],
    );
    l.timeseries(
        "Latency p95 / p99 by route",
        "s",
        &quantiles("amas_http_request_duration_seconds", "route"),
    );
    l.timeseries(
        "Error classes: responses by status",
        "reqps",
        &[q(
            format!("sum by (status) (rate({http}{{status=~\"[45]..\"}}{RATE}))"),
            "{{status}}",
        )],
    );

    l.row("Tasks and steps: rate, errors, duration");
    l.timeseries(
        "Tasks ended per second by type and status",
        "ops",
        &[q(
            format!("sum by (task_type, status) (rate(amas_tasks_total{RATE}))"),
            "{{task_type}} {{status}}",
        )],
    );
    l.timeseries(
        "Task latency p95 / p99 by type",
        "s",
        &quantiles("amas_task_duration_seconds", "task_type"),
    );
    l.timeseries(
        "Steps ended per second by agent and status",
        "ops",
        &[q(
            format!("sum by (agent, status) (rate(amas_steps_total{RATE}))"),
            "{{agent}} {{status}}",
        )],
    );
    l.timeseries(
        "Step latency p95 / p99 by agent",
        "s",
        &quantiles("amas_step_duration_seconds", "agent"),
    );

    let calls = "amas_provider_calls_total";
    l.row("Model providers: calls, error classes, latency, breakers");
    l.timeseries(
        "Calls per second by provider and outcome",
        "ops",
        &[q(
            format!("sum by (provider, outcome) (rate({calls}{RATE}))"),
            "{{provider}} {{outcome}}",
        )],
    );
    l.timeseries(
        "Error classes: failed calls by outcome",
        "ops",
        &[q(
            format!("sum by (provider, outcome) (rate({calls}{{outcome!=\"ok\"}}{RATE}))"),
            "{{provider}} {{outcome}}",
        )],
    );
    l.timeseries(
        "Provider latency p95 / p99",
        "s",
        &quantiles("amas_provider_call_duration_seconds", "provider"),
    );
    l.timeseries(
        "Circuit breaker state (0 closed, 1 half-open, 2 open)",
        "none",
        &[q(
            "max by (provider) (amas_provider_breaker_state)",
            "{{provider}}",
        )],
    );
}

fn saturation_rows(l: &mut Layout) {
    l.row("Saturation and governance");
    l.timeseries(
        "Queue depth and capacity",
        "none",
        &[
            q("sum(amas_queue_depth)", "waiting"),
            q("sum(amas_queue_capacity)", "capacity"),
        ],
    );
    l.timeseries(
        "Utilisation: queue fill and workers busy",
        "percentunit",
        &[
            q(
                "sum(amas_queue_depth) / sum(amas_queue_capacity)",
                "queue fill",
            ),
            q(
                "sum(amas_tasks_running) / $max_concurrent_tasks",
                "workers busy",
            ),
        ],
    );
    l.timeseries(
        "Error classes: authentication failures by reason",
        "ops",
        &[q(
            format!("sum by (reason) (rate(amas_auth_failures_total{RATE}))"),
            "{{reason}}",
        )],
    );
    l.timeseries(
        "Output contract checks by agent and outcome",
        "ops",
        &[q(
            format!("sum by (agent, outcome) (rate(amas_contract_checks_total{RATE}))"),
            "{{agent}} {{outcome}}",
        )],
    );
}

fn cost_rows(l: &mut Layout, catalog: &Catalog) {
    l.row("Tokens and cost");
    l.timeseries(
        "Tokens per second by provider and direction",
        "short",
        &[q(
            format!("sum by (provider, direction) (rate(amas_tokens_total{RATE}))"),
            "{{provider}} {{direction}}",
        )],
    );
    // Cost appears once a cost counter is exported; until then the panel says it shows tokens.
    let cost = catalog
        .counter_starting_with("amas_cost")
        .or_else(|| catalog.counter_starting_with("amas_estimated_cost"));
    match cost {
        Some(series) => {
            let p = l.panel(
                "stat",
                "Estimated cost over the range",
                12,
                8,
                "currencyUSD",
                &[q(format!("sum(increase({series}[$__range]))"), "cost")],
            );
            p["description"] = json!("Estimated from the token prices in the configuration.");
        }
        None => {
            let p = l.panel(
                "stat",
                "Cost (no cost metric yet: tokens used over the range)",
                12,
                8,
                "short",
                &[q(
                    "sum by (provider, direction) (increase(amas_tokens_total[$__range]))",
                    "{{provider}} {{direction}}",
                )],
            );
            p["description"] = json!(
                "AMAS does not export a cost metric yet; this shows tokens used over the range. \
                 Multiply by your provider's price per token."
            );
        }
    }
}
