//! `slo.yaml`: raw types as written (unknown keys rejected), validated into [`SloConfig`]
//! against the metrics AMAS really exports, with every problem reported at once.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::SloError;
use super::catalog::{Catalog, Kind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    runbook_base_url: String,
    alertmanager: RawAlertmanager,
    slos: Vec<RawSlo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    pager_webhook_url: String,
    ticket_webhook_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    name: String,
    alert: String,
    service: String,
    description: String,
    objective: f64,
    window: String,
    sli: RawSli,
    #[serde(default)]
    severity: RawSeverity,
    runbook: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSli {
    errors: Option<String>,
    good: Option<String>,
    total: Option<String>,
    histogram: Option<String>,
    matchers: Option<String>,
    threshold_seconds: Option<f64>,
    #[serde(default)]
    by: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeverity {
    #[serde(default = "Severity::page")]
    fast_burn: Severity,
    #[serde(default = "Severity::ticket")]
    slow_burn: Severity,
}

impl Default for RawSeverity {
    fn default() -> Self {
        Self {
            fast_burn: Severity::Page,
            slow_burn: Severity::Ticket,
        }
    }
}

/// Who hears about a burn: a pager (wake someone up) or a ticket (next working day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    fn page() -> Self {
        Self::Page
    }
    fn ticket() -> Self {
        Self::Ticket
    }
    /// The `severity` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        }
    }
}

/// The validated SLO file.
#[derive(Debug, Clone)]
pub struct SloConfig {
    pub runbook_base_url: String,
    pub pager_webhook_url: String,
    pub ticket_webhook_url: String,
    pub slos: Vec<Slo>,
}

/// One service level objective.
#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    pub alert: String,
    pub service: String,
    pub description: String,
    /// Percent, strictly between 0 and 100.
    pub objective: f64,
    /// Prometheus duration, e.g. `30d`.
    pub window: String,
    pub sli: Sli,
    /// Labels the SLO is evaluated per value of (bounded sets only).
    pub by: Vec<String>,
    pub fast_burn: Severity,
    pub slow_burn: Severity,
    pub runbook_url: String,
}

impl Slo {
    /// The error budget as a ratio (`1 - objective`), rounded so `99.9` gives `0.001` and not
    /// `0.000999...`: the value is printed into PromQL.
    #[must_use]
    pub fn error_budget(&self) -> f64 {
        ((100.0 - self.objective) / 100.0 * 1e12).round() / 1e12
    }
}

/// How good and bad events are counted.
#[derive(Debug, Clone)]
pub enum Sli {
    /// Bad events over all events, both counter selectors.
    Errors { errors: String, total: String },
    /// Good events over all events, both counter selectors.
    Good { good: String, total: String },
    /// Events faster than a histogram bucket bound are good.
    Latency {
        histogram: String,
        /// Label matchers without braces, e.g. `route=~"/api/.*"`; may be empty.
        matchers: String,
        /// The bucket's `le` label text.
        le: String,
    },
}

const RESERVED_LABELS: [&str; 5] = ["slo", "service", "severity", "burn", "le"];

impl SloConfig {
    /// Parses and validates `slo.yaml` text; `origin` names the file in errors.
    ///
    /// # Errors
    /// [`SloError::Parse`] for YAML or unknown keys, [`SloError::Invalid`] listing every
    /// validation problem.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, SloError> {
        let raw: RawFile = yaml_serde::from_str(text).map_err(|e| SloError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let catalog = Catalog::from_metrics();
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        let mut alerts = BTreeSet::new();
        let mut slos = Vec::new();
        for raw_slo in raw.slos {
            let at = format!("slos[{}]", raw_slo.name);
            if !names.insert(raw_slo.name.clone()) {
                problems.push(format!("{at}: duplicate name"));
            }
            if !alerts.insert(raw_slo.alert.clone()) {
                problems.push(format!("{at}: duplicate alert `{}`", raw_slo.alert));
            }
            if let Some(slo) =
                validate_slo(raw_slo, &raw.runbook_base_url, &catalog, &at, &mut problems)
            {
                slos.push(slo);
            }
        }
        if slos.is_empty() && problems.is_empty() {
            problems.push("slos: at least one SLO is required".to_owned());
        }
        if raw.runbook_base_url.trim().is_empty() {
            problems.push("runbook_base_url: must not be empty".to_owned());
        }
        if !problems.is_empty() {
            return Err(SloError::Invalid {
                origin: origin.to_owned(),
                problems,
            });
        }
        Ok(Self {
            runbook_base_url: raw.runbook_base_url,
            pager_webhook_url: raw.alertmanager.pager_webhook_url,
            ticket_webhook_url: raw.alertmanager.ticket_webhook_url,
            slos,
        })
    }
}

fn validate_slo(
    raw: RawSlo,
    runbook_base: &str,
    catalog: &Catalog,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Slo> {
    let before = problems.len();
    if !is_kebab(&raw.name) {
        problems.push(format!("{at}.name: use lowercase letters, digits and `-`"));
    }
    if !raw.alert.starts_with(|c: char| c.is_ascii_uppercase())
        || !raw.alert.chars().all(|c| c.is_ascii_alphanumeric())
    {
        problems.push(format!(
            "{at}.alert: `{}` must be CamelCase letters and digits",
            raw.alert
        ));
    }
    if raw.service.is_empty()
        || !raw
            .service
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        problems.push(format!(
            "{at}.service: use lowercase letters, digits, `_` and `-`"
        ));
    }
    // Below ~93.1% the fast tier's threshold (14.4 x budget) exceeds an error ratio of 1 and
    // could never fire.
    if !(raw.objective.is_finite() && raw.objective >= 93.1 && raw.objective < 100.0) {
        problems.push(format!(
            "{at}.objective: {} must be at least 93.1 (so a 14.4x burn is possible) and below 100",
            raw.objective
        ));
    }
    if !is_duration(&raw.window) {
        problems.push(format!(
            "{at}.window: `{}` is not a duration like 30d",
            raw.window
        ));
    }
    for label in &raw.sli.by {
        if !is_label_name(label) || RESERVED_LABELS.contains(&label.as_str()) {
            problems.push(format!("{at}.sli.by: `{label}` is not a usable label name"));
        }
    }
    let sli = validate_sli(&raw.sli, catalog, at, problems);
    if problems.len() > before {
        return None;
    }
    let runbook_url = raw
        .runbook
        .unwrap_or_else(|| format!("{}/{}.md", runbook_base.trim_end_matches('/'), raw.alert));
    Some(Slo {
        name: raw.name,
        alert: raw.alert,
        service: raw.service,
        description: raw.description.trim().to_owned(),
        objective: raw.objective,
        window: raw.window,
        sli: sli?,
        by: raw.sli.by,
        fast_burn: raw.severity.fast_burn,
        slow_burn: raw.severity.slow_burn,
        runbook_url,
    })
}

fn validate_sli(
    raw: &RawSli,
    catalog: &Catalog,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Sli> {
    let ratio = raw.errors.is_some() || raw.good.is_some() || raw.total.is_some();
    let latency =
        raw.histogram.is_some() || raw.threshold_seconds.is_some() || raw.matchers.is_some();
    match (ratio, latency) {
        (true, true) | (false, false) => {
            problems.push(format!(
                "{at}.sli: give either errors|good + total, or histogram + threshold_seconds"
            ));
            None
        }
        (true, false) => {
            let total = counter_selector(
                raw.total.as_deref(),
                catalog,
                &format!("{at}.sli.total"),
                problems,
            );
            match (&raw.errors, &raw.good) {
                (Some(e), None) => {
                    let errors =
                        counter_selector(Some(e), catalog, &format!("{at}.sli.errors"), problems);
                    Some(Sli::Errors {
                        errors: errors?,
                        total: total?,
                    })
                }
                (None, Some(g)) => {
                    let good =
                        counter_selector(Some(g), catalog, &format!("{at}.sli.good"), problems);
                    Some(Sli::Good {
                        good: good?,
                        total: total?,
                    })
                }
                _ => {
                    problems.push(format!("{at}.sli: give exactly one of errors and good"));
                    None
                }
            }
        }
        (false, true) => latency_sli(raw, catalog, at, problems),
    }
}

fn latency_sli(
    raw: &RawSli,
    catalog: &Catalog,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<Sli> {
    let histogram = raw.histogram.clone().unwrap_or_default();
    if catalog.series_kind(&histogram) != Some(Kind::Histogram) {
        problems.push(format!(
            "{at}.sli.histogram: `{histogram}` is not a histogram AMAS exports"
        ));
    }
    let matchers = match raw.matchers.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(m) => match m.strip_prefix('{').and_then(|m| m.strip_suffix('}')) {
            Some(inner) if !inner.contains(['{', '}']) => inner.trim().to_owned(),
            _ => {
                problems.push(format!(
                    "{at}.sli.matchers: `{m}` is not one `{{...}}` matcher list"
                ));
                String::new()
            }
        },
    };
    let Some(threshold) = raw.threshold_seconds else {
        problems.push(format!(
            "{at}.sli.threshold_seconds: required with histogram"
        ));
        return None;
    };
    let Some(le) = catalog.bucket_label(&histogram, threshold) else {
        problems.push(format!(
            "{at}.sli.threshold_seconds: {threshold} is not a bucket bound; use one of {}",
            catalog.bucket_list(&histogram)
        ));
        return None;
    };
    Some(Sli::Latency {
        histogram,
        matchers,
        le: le.to_owned(),
    })
}

/// A selector `name` or `name{matchers}` whose name is a counter AMAS exports.
fn counter_selector(
    selector: Option<&str>,
    catalog: &Catalog,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let Some(selector) = selector.map(str::trim) else {
        problems.push(format!("{at}: required"));
        return None;
    };
    let name_end = selector.find('{').unwrap_or(selector.len());
    let (name, rest) = selector.split_at(name_end);
    let rest_ok = rest.is_empty() || (rest.ends_with('}') && rest.matches('{').count() == 1);
    if !rest_ok {
        problems.push(format!(
            "{at}: `{selector}` is not `metric` or `metric{{matchers}}`"
        ));
        return None;
    }
    if catalog.series_kind(name) != Some(Kind::Counter) {
        problems.push(format!(
            "{at}: `{name}` is not a counter AMAS exports (counters end in _total)"
        ));
        return None;
    }
    Some(selector.to_owned())
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_label_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_duration(s: &str) -> bool {
    let Some(unit) = s.chars().last() else {
        return false;
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    matches!(unit, 'm' | 'h' | 'd' | 'w')
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && digits.parse::<u32>().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
runbook_base_url: docs/runbooks
alertmanager: { pager_webhook_url: "http://127.0.0.1:1/p", ticket_webhook_url: "http://127.0.0.1:1/t" }
slos:
  - name: api-latency
    alert: ApiSlow
    service: api
    description: fast enough
    objective: 99.9
    window: 28d
    sli: { histogram: amas_http_request_duration_seconds, matchers: '{route="/x"}', threshold_seconds: 0.256 }
"#;

    #[test]
    fn the_shipped_file_is_valid() {
        let config = SloConfig::from_yaml(super::super::EMBEDDED_SLO_YAML, "slo.yaml").unwrap();
        assert_eq!(config.slos.len(), 7);
    }

    #[test]
    fn a_latency_sli_resolves_to_the_bucket_label_and_budget() {
        let config = SloConfig::from_yaml(GOOD, "slo.yaml").unwrap();
        let slo = &config.slos[0];
        assert_eq!(slo.error_budget(), 0.001);
        assert_eq!(slo.runbook_url, "docs/runbooks/ApiSlow.md");
        assert_eq!(
            (slo.fast_burn, slo.slow_burn),
            (Severity::Page, Severity::Ticket)
        );
        match &slo.sli {
            Sli::Latency { matchers, le, .. } => {
                assert_eq!((matchers.as_str(), le.as_str()), ("route=\"/x\"", "0.256"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = GOOD.replace("window: 28d", "window: 28d\n    windw: 1d");
        let err = SloConfig::from_yaml(&text, "slo.yaml").unwrap_err();
        assert!(matches!(err, SloError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("windw"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = GOOD
            .replace("threshold_seconds: 0.256", "threshold_seconds: 0.3")
            .replace("objective: 99.9", "objective: 90")
            .replace("window: 28d", "window: month")
            .replace("alert: ApiSlow", "alert: api_slow");
        let err = SloConfig::from_yaml(&text, "slo.yaml").unwrap_err();
        let SloError::Invalid { problems, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("0.3 is not a bucket bound; use one of 0.0005"))
        );
    }

    #[test]
    fn selectors_must_name_exported_counters() {
        let text = GOOD.replace(
            "sli: { histogram: amas_http_request_duration_seconds, matchers: '{route=\"/x\"}', threshold_seconds: 0.256 }",
            "sli: { errors: 'amas_http_requests{status=\"500\"}', total: amas_queue_depth }",
        );
        let err = SloConfig::from_yaml(&text, "slo.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`amas_http_requests` is not a counter"),
            "{err}"
        );
        assert!(err.contains("`amas_queue_depth` is not a counter"), "{err}");
    }

    #[test]
    fn ratio_and_latency_fields_do_not_mix() {
        let text = GOOD.replace(
            "threshold_seconds: 0.256",
            "threshold_seconds: 0.256, total: amas_tasks_total",
        );
        let err = SloConfig::from_yaml(&text, "slo.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("give either errors|good + total, or histogram"),
            "{err}"
        );
    }
}
