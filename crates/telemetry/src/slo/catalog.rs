//! What AMAS actually exports, read from the real registry's exposition, so `slo.yaml` cannot
//! name a metric or a histogram bucket that does not exist.

use std::collections::BTreeMap;

use crate::metrics::{
    ContractLabels, CostLabels, DecisionLabels, HttpLabels, Metrics, ProviderLabels,
    ProviderNameLabels, ReasonLabels, RouteLabels, StepLabels, TaskLabels, TokenLabels, ToolLabels,
};

/// The kind of a metric family, as in the exposition's `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Other,
}

/// Metric families by family name (`amas_http_requests`, without `_total`), and each
/// histogram's bucket bounds with the exact `le` text the exposition uses for them (PromQL
/// matches `le` as a string).
#[derive(Debug, Clone)]
pub struct Catalog {
    families: BTreeMap<String, Kind>,
    buckets: BTreeMap<String, Vec<(f64, String)>>,
}

impl Catalog {
    /// Reads the families of a [`Metrics`] registry holding one series in each.
    #[must_use]
    pub fn from_metrics() -> Self {
        Self::from_exposition(&probe().render())
    }

    fn from_exposition(text: &str) -> Self {
        let mut families = BTreeMap::new();
        let mut buckets: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
        for line in text.lines() {
            if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' '))
            {
                let kind = match kind.trim() {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "histogram" => Kind::Histogram,
                    _ => Kind::Other,
                };
                families.insert(name.to_owned(), kind);
            } else if let Some((family, le)) = bucket_line(line) {
                let bounds = buckets.entry(family.to_owned()).or_default();
                // One probe series per family, so each bound appears once.
                if let Ok(bound) = le.parse::<f64>()
                    && bound.is_finite()
                    && !bounds.iter().any(|(_, l)| l == le)
                {
                    bounds.push((bound, le.to_owned()));
                }
            }
        }
        Self { families, buckets }
    }

    /// The kind of the series name a selector uses: a counter is selected as `<family>_total`,
    /// a histogram by its family name (its `_bucket`/`_count` series are derived from it).
    #[must_use]
    pub fn series_kind(&self, series: &str) -> Option<Kind> {
        if let Some(family) = series.strip_suffix("_total")
            && self.families.get(family) == Some(&Kind::Counter)
        {
            return Some(Kind::Counter);
        }
        match self.families.get(series) {
            Some(Kind::Counter) | None => None,
            Some(kind) => Some(*kind),
        }
    }

    /// The sample name of the first counter family whose name starts with `prefix`.
    #[must_use]
    pub fn counter_starting_with(&self, prefix: &str) -> Option<String> {
        self.families
            .iter()
            .find(|(name, kind)| name.starts_with(prefix) && **kind == Kind::Counter)
            .map(|(name, _)| format!("{name}_total"))
    }

    /// The `le` text of `histogram`'s bucket bound equal to `seconds`, if it is one.
    #[must_use]
    pub fn bucket_label(&self, histogram: &str, seconds: f64) -> Option<&str> {
        self.buckets
            .get(histogram)?
            .iter()
            .find(|(bound, _)| (bound - seconds).abs() <= bound.abs() * 1e-9)
            .map(|(_, label)| label.as_str())
    }

    /// `histogram`'s bucket bounds, for error messages.
    #[must_use]
    pub fn bucket_list(&self, histogram: &str) -> String {
        let labels: Vec<&str> = self
            .buckets
            .get(histogram)
            .map(|b| b.iter().map(|(_, l)| l.as_str()).collect())
            .unwrap_or_default();
        labels.join(", ")
    }
}

/// `("amas_x", "0.512")` from `amas_x_bucket{...,le="0.512"} 0`.
fn bucket_line(line: &str) -> Option<(&str, &str)> {
    let (series, rest) = line.split_once('{')?;
    let family = series.strip_suffix("_bucket")?;
    let le = rest.split("le=\"").nth(1)?.split('"').next()?;
    Some((family, le))
}

/// A registry with one series in every family: the encoder leaves empty families out, and
/// `Registry` offers no other way to list them. A metric added to [`Metrics`] needs a line
/// here before an SLO can use it (validation then says it is not exported).
fn probe() -> Metrics {
    let m = Metrics::new();
    let s = || "probe".to_owned();
    let _ = m.http_requests.get_or_create(&HttpLabels {
        method: s(),
        route: s(),
        status: 200,
    });
    let _ = m.http_request_duration.get_or_create(&RouteLabels {
        method: s(),
        route: s(),
    });
    let task = TaskLabels {
        task_type: s(),
        status: s(),
    };
    let _ = m.tasks.get_or_create(&task);
    let _ = m.task_duration.get_or_create(&task);
    let step = StepLabels {
        agent: s(),
        status: s(),
    };
    let _ = m.steps.get_or_create(&step);
    let _ = m.step_duration.get_or_create(&step);
    let _ = m.provider_calls.get_or_create(&ProviderLabels {
        provider: s(),
        outcome: s(),
    });
    let provider = ProviderNameLabels { provider: s() };
    let _ = m.provider_call_duration.get_or_create(&provider);
    let _ = m.provider_breaker_state.get_or_create(&provider);
    let _ = m.tokens.get_or_create(&TokenLabels {
        provider: s(),
        model: s(),
        tenant: s(),
        direction: s(),
    });
    let _ = m.estimated_cost.get_or_create(&CostLabels {
        provider: s(),
        model: s(),
        tenant: s(),
    });
    let _ = m.contract_checks.get_or_create(&ContractLabels {
        agent: s(),
        outcome: s(),
    });
    let _ = m.auth_failures.get_or_create(&ReasonLabels { reason: s() });
    let _ = m.governance_decisions.get_or_create(&DecisionLabels {
        stage: s(),
        outcome: s(),
    });
    let tool = ToolLabels {
        tool: s(),
        outcome: s(),
    };
    let _ = m.tool_calls.get_or_create(&tool);
    let _ = m.tool_call_duration.get_or_create(&tool);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_counters_by_their_total_name_and_histograms_by_family() {
        let catalog = Catalog::from_metrics();
        assert_eq!(
            catalog.series_kind("amas_http_requests_total"),
            Some(Kind::Counter)
        );
        assert_eq!(catalog.series_kind("amas_http_requests"), None);
        assert_eq!(
            catalog.series_kind("amas_task_duration_seconds"),
            Some(Kind::Histogram)
        );
        assert_eq!(catalog.series_kind("amas_queue_depth"), Some(Kind::Gauge));
        assert_eq!(
            catalog.series_kind("amas_tool_calls_total"),
            Some(Kind::Counter)
        );
        assert_eq!(catalog.series_kind("amas_no_such_thing_total"), None);
    }

    #[test]
    fn bucket_labels_are_the_exposition_text_per_histogram() {
        let catalog = Catalog::from_metrics();
        let http = "amas_http_request_duration_seconds";
        assert_eq!(catalog.bucket_label(http, 0.512), Some("0.512"));
        assert_eq!(catalog.bucket_label(http, 65.536), Some("65.536"));
        assert_eq!(catalog.bucket_label(http, 0.5), None);
        assert_eq!(catalog.bucket_label("amas_queue_depth", 0.512), None);
        assert!(
            catalog
                .bucket_list(http)
                .starts_with("0.0005, 0.001, 0.002")
        );
    }
}
