//! Every metric AMAS exports, in one place. Names follow `amas_<noun>_<unit>[_total]`; labels
//! come from bounded sets only (routes, task types, agents, providers, outcomes), never ids.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod queue;

pub use queue::{LeaseLossLabels, QueueMetrics, QueueTenantLabels};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task_type: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub agent: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderNameLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    /// Bounded by [`Metrics::tenant_label`].
    pub tenant: String,
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub provider: String,
    pub model: String,
    /// Bounded by [`Metrics::tenant_label`].
    pub tenant: String,
}

/// Distinct tenants that get a label value of their own; later ones share [`OTHER_TENANTS`].
pub const MAX_TENANT_LABELS: usize = 100;
/// The `tenant` label value of tenants beyond [`MAX_TENANT_LABELS`].
pub const OTHER_TENANTS: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContractLabels {
    pub agent: String,
    pub outcome: String,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~65 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// The process's metrics. Cheap to clone (everything inside is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_duration: Hist<RouteLabels>,
    pub tasks: Family<TaskLabels, Counter>,
    pub task_duration: Hist<TaskLabels>,
    pub steps: Family<StepLabels, Counter>,
    pub step_duration: Hist<StepLabels>,
    pub provider_calls: Family<ProviderLabels, Counter>,
    pub provider_call_duration: Hist<ProviderNameLabels>,
    /// 0 closed, 1 half-open, 2 open.
    pub provider_breaker_state: Family<ProviderNameLabels, Gauge>,
    pub tokens: Family<TokenLabels, Counter>,
    /// Estimated from `providers.<name>.prices` (US dollars per 1000 tokens).
    pub estimated_cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    /// Tenants that have a `tenant` label value of their own.
    tenants: Arc<Mutex<HashSet<String>>>,
    pub contract_checks: Family<ContractLabels, Counter>,
    /// Tasks waiting to start: this process's queue, or on PostgreSQL the database's.
    pub queue_depth: Gauge,
    pub queue_capacity: Gauge,
    /// The rest of the scheduling metrics (`metrics/queue.rs`).
    pub queue: QueueMetrics,
    pub tasks_running: Gauge,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub governance_decisions: Family<DecisionLabels, Counter>,
    pub governance_duration: Histogram,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub tool_call_duration: Hist<ToolLabels>,
    pub rate_limited: Family<ClassLabels, Counter>,
    /// Rego decisions by decision point and whether the memo answered (`memo`) or the bundle
    /// was evaluated (`evaluated`).
    pub policy_decisions: Family<PolicyDecisionLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyDecisionLabels {
    pub point: String,
    pub source: String,
}

/// A rate-limit route class: `unauthenticated`, `read`, `write`, `stream`, `admin`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub stage: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every AMAS metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("amas");
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_request_duration: Hist<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_request_duration.clone(),
        );
        let tasks = Family::<TaskLabels, Counter>::default();
        r.register(
            "tasks",
            "Tasks that reached a terminal status",
            tasks.clone(),
        );
        let task_duration: Hist<TaskLabels> = Family::new_with_constructor(latency_histogram);
        r.register(
            "task_duration_seconds",
            "Task wall time from start to end",
            task_duration.clone(),
        );
        let steps = Family::<StepLabels, Counter>::default();
        r.register(
            "steps",
            "Steps that ended, by agent and status",
            steps.clone(),
        );
        let step_duration: Hist<StepLabels> = Family::new_with_constructor(latency_histogram);
        r.register(
            "step_duration_seconds",
            "Step wall time",
            step_duration.clone(),
        );
        let provider_calls = Family::<ProviderLabels, Counter>::default();
        r.register(
            "provider_calls",
            "Model provider calls by outcome",
            provider_calls.clone(),
        );
        let provider_call_duration: Hist<ProviderNameLabels> =
            Family::new_with_constructor(latency_histogram);
        r.register(
            "provider_call_duration_seconds",
            "Model provider call latency",
            provider_call_duration.clone(),
        );
        let provider_breaker_state = Family::<ProviderNameLabels, Gauge>::default();
        r.register(
            "provider_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            provider_breaker_state.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        r.register(
            "tokens",
            "Model tokens by provider, model, tenant and direction",
            tokens.clone(),
        );
        let estimated_cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        r.register(
            "estimated_cost_usd",
            "Estimated model cost in US dollars from the configured token prices, by provider, model and tenant",
            estimated_cost.clone(),
        );
        let contract_checks = Family::<ContractLabels, Counter>::default();
        r.register(
            "contract_checks",
            "Output contract checks by agent and outcome",
            contract_checks.clone(),
        );
        let queue_depth = Gauge::default();
        r.register(
            "queue_depth",
            "Tasks admitted and waiting to run",
            queue_depth.clone(),
        );
        let queue_capacity = Gauge::default();
        r.register(
            "queue_capacity",
            "Tasks that may wait before submissions are refused",
            queue_capacity.clone(),
        );
        let queue = QueueMetrics::register(&mut r);
        let tasks_running = Gauge::default();
        r.register(
            "tasks_running",
            "Tasks executing now",
            tasks_running.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        r.register(
            "auth_failures",
            "Rejected authentication attempts by reason",
            auth_failures.clone(),
        );
        let governance_decisions = Family::<DecisionLabels, Counter>::default();
        r.register(
            "governance_decisions",
            "Governance pipeline decisions by stage and outcome",
            governance_decisions.clone(),
        );
        let governance_duration = Histogram::new(exponential_buckets(0.000_001, 2.0, 20));
        r.register(
            "governance_duration_seconds",
            "Time to run the pre-execution pipeline for one action",
            governance_duration.clone(),
        );
        let tool_calls = Family::<ToolLabels, Counter>::default();
        r.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            tool_calls.clone(),
        );
        let tool_call_duration: Hist<ToolLabels> = Family::new_with_constructor(latency_histogram);
        r.register(
            "tool_call_duration_seconds",
            "Tool call latency",
            tool_call_duration.clone(),
        );
        let rate_limited = Family::<ClassLabels, Counter>::default();
        r.register(
            "rate_limited_requests",
            "Requests refused with 429 by a rate limit, by route class",
            rate_limited.clone(),
        );
        let policy_decisions = Family::<PolicyDecisionLabels, Counter>::default();
        r.register(
            "policy_decisions",
            "Rego decisions by decision point, answered from the memo or evaluated",
            policy_decisions.clone(),
        );
        Self {
            registry: Arc::new(r),
            rate_limited,
            policy_decisions,
            governance_decisions,
            governance_duration,
            tool_calls,
            tool_call_duration,
            http_requests,
            http_request_duration,
            tasks,
            task_duration,
            steps,
            step_duration,
            provider_calls,
            provider_call_duration,
            provider_breaker_state,
            tokens,
            estimated_cost,
            tenants: Arc::default(),
            contract_checks,
            queue_depth,
            queue_capacity,
            queue,
            tasks_running,
            auth_failures,
        }
    }

    /// The `tenant` label value for `tenant`: itself for the first [`MAX_TENANT_LABELS`]
    /// distinct tenants seen, [`OTHER_TENANTS`] after that, so a flood of tenants (tenants come
    /// from token claims) cannot grow the series without bound.
    #[must_use]
    pub fn tenant_label(&self, tenant: &str) -> String {
        let mut known = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let own = known.contains(tenant)
            || (known.len() < MAX_TENANT_LABELS && known.insert(tenant.to_owned()));
        if own {
            tenant.to_owned()
        } else {
            OTHER_TENANTS.to_owned()
        }
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same metrics in the classic Prometheus text format (0.0.4), for readers that do not
    /// speak OpenMetrics, such as `promtool check metrics`: there a counter's HELP and TYPE
    /// name its `_total` series, and there is no `# EOF` or `# UNIT`.
    #[must_use]
    pub fn render_text(&self) -> String {
        let open = self.render();
        let counters: std::collections::HashSet<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
                let (name, tail) = line.strip_prefix(prefix)?.split_once(' ')?;
                counters
                    .contains(name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenants get their own label value up to the cap; later ones share `other`, and a tenant
    /// seen before the cap keeps its value.
    #[test]
    fn tenant_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_TENANT_LABELS {
            assert_eq!(m.tenant_label(&format!("t{i}")), format!("t{i}"));
        }
        assert_eq!(m.tenant_label("late"), OTHER_TENANTS);
        assert_eq!(m.tenant_label("t0"), "t0");
        assert_eq!(m.tenant_label("late"), OTHER_TENANTS);
    }

    /// The cost counter holds fractions of a dollar.
    #[test]
    fn cost_is_a_fractional_counter() {
        let m = Metrics::new();
        m.estimated_cost
            .get_or_create(&CostLabels {
                provider: "openai".into(),
                model: "gpt".into(),
                tenant: "acme".into(),
            })
            .inc_by(0.00125);
        let text = m.render();
        assert!(
            text.contains(
                "amas_estimated_cost_usd_total{provider=\"openai\",model=\"gpt\",tenant=\"acme\"} 0.00125"
            ),
            "{text}"
        );
    }
}
