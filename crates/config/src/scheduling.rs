//! The validated `scheduling` section: how tenants share the task slots (their weights), how
//! many tasks each may run at once across every worker (`max_running`) and have waiting
//! (`max_queued`, beyond which a submission answers 429 `AMAS-TASK-0007`). The global queue
//! limit stays `runtime.queue_capacity`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// One tenant's share of the slots and its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TenantSchedule {
    /// Its share relative to other tenants with runnable tasks: a tenant of weight 2 starts
    /// two tasks for every one of a tenant of weight 1 while both have tasks waiting.
    pub weight: u32,
    /// Tasks it may run at once, across every worker process; `None`: no cap.
    pub max_running: Option<u32>,
    /// Tasks it may have waiting to start; `None`: only the global `runtime.queue_capacity`.
    pub max_queued: Option<u32>,
}

impl Default for TenantSchedule {
    fn default() -> Self {
        Self {
            weight: 1,
            max_running: None,
            max_queued: None,
        }
    }
}

/// Scheduling across tenants (`scheduling` in `settings.yaml`).
#[derive(Clone, Debug, Serialize)]
pub struct SchedulingConfig {
    /// Every tenant not listed in `tenants` (`default_weight`, `default_max_running`,
    /// `default_max_queued`).
    pub default: TenantSchedule,
    /// Tenants with a weight or limits of their own; a field they leave out is the default's.
    /// These tenants are also the ones with a `tenant` label of their own on the queue metrics.
    pub tenants: BTreeMap<String, TenantSchedule>,
    /// How often each process refreshes the queue metrics (on PostgreSQL: reads the queue's
    /// depth and age from the database).
    #[serde(with = "crate::model::humantime_secs")]
    pub metrics_interval: Duration,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        Self {
            default: TenantSchedule::default(),
            tenants: BTreeMap::new(),
            metrics_interval: Duration::from_secs(5),
        }
    }
}

impl SchedulingConfig {
    /// The schedule of `tenant`: its own, or the default.
    #[must_use]
    pub fn tenant(&self, tenant: &str) -> TenantSchedule {
        self.tenants.get(tenant).copied().unwrap_or(self.default)
    }
}
