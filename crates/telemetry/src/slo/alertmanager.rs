//! Alertmanager configuration: pages and tickets go to different receivers, each split by
//! service, and a page silences the ticket of the same SLO (one problem, one notification).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::config::{Severity, SloConfig};

/// The configuration as a JSON value (serialised to YAML by the caller).
#[must_use]
pub fn config(slo: &SloConfig) -> Value {
    let mut receivers = Vec::new();
    let mut routes = Vec::new();
    for (severity, base_url, repeat) in [
        (Severity::Page, &slo.pager_webhook_url, "1h"),
        (Severity::Ticket, &slo.ticket_webhook_url, "24h"),
    ] {
        let name = receiver_name(severity, None);
        receivers.push(webhook(&name, base_url));
        let services: BTreeSet<&str> = slo
            .slos
            .iter()
            .filter(|s| s.fast_burn == severity || s.slow_burn == severity)
            .map(|s| s.service.as_str())
            .collect();
        let mut service_routes = Vec::new();
        for service in services {
            let name = receiver_name(severity, Some(service));
            receivers.push(webhook(
                &name,
                &format!("{}/{service}", base_url.trim_end_matches('/')),
            ));
            service_routes.push(json!({
                "matchers": [format!("service=\"{service}\"")],
                "receiver": name,
            }));
        }
        routes.push(json!({
            "matchers": [format!("severity=\"{}\"", severity.as_str())],
            "receiver": receiver_name(severity, None),
            "repeat_interval": repeat,
            "routes": service_routes,
        }));
    }
    let mut equal: Vec<String> = vec!["slo".to_owned()];
    let by: BTreeSet<&String> = slo.slos.iter().flat_map(|s| &s.by).collect();
    equal.extend(by.into_iter().cloned());
    json!({
        "route": {
            // Alerts without a severity are nobody's page: they become tickets.
            "receiver": receiver_name(Severity::Ticket, None),
            "group_by": ["alertname", "slo", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes,
        },
        "inhibit_rules": [{
            "source_matchers": ["severity=\"page\""],
            "target_matchers": ["severity=\"ticket\""],
            // Labels missing on both sides count as equal, so per-agent/provider SLOs inhibit
            // only their own tickets.
            "equal": equal,
        }],
        "receivers": receivers,
    })
}

/// `pager`, `ticket`, `pager-<service>`, `ticket-<service>`.
#[must_use]
pub fn receiver_name(severity: Severity, service: Option<&str>) -> String {
    let base = match severity {
        Severity::Page => "pager",
        Severity::Ticket => "ticket",
    };
    service.map_or_else(|| base.to_owned(), |s| format!("{base}-{s}"))
}

fn webhook(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "webhook_configs": [{ "url": url, "send_resolved": true }],
    })
}
