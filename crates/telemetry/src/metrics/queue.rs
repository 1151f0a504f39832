//! The scheduling metrics an autoscaler and an operator read: how much work waits (in total and
//! by configured tenant), how long the oldest task has waited, how long claims take and how
//! many leases workers lost. On PostgreSQL every process reports the database's queue (the
//! database is the queue), so a scaler takes the `max`, not the `sum`, across processes.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A tenant listed in `scheduling.tenants`, or [`super::OTHER_TENANTS`] for all the others.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueTenantLabels {
    pub tenant: String,
}

/// How a worker found out it lost a lease: `renewal` (its renewal came back without it) or
/// `append` (the store refused an append under it). One loss may be seen both ways.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLossLabels {
    pub detected: String,
}

/// See the module docs.
#[derive(Clone)]
pub struct QueueMetrics {
    /// Seconds since the submission of the oldest task waiting to start (0 when none waits).
    pub oldest_age: Gauge<f64, AtomicU64>,
    pub tenant_depth: Family<QueueTenantLabels, Gauge>,
    pub claim_duration: Histogram,
    pub lease_losses: Family<LeaseLossLabels, Counter>,
}

impl QueueMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let oldest_age = Gauge::<f64, AtomicU64>::default();
        r.register(
            "queue_oldest_age_seconds",
            "Seconds since the oldest task waiting to start was submitted",
            oldest_age.clone(),
        );
        let tenant_depth = Family::<QueueTenantLabels, Gauge>::default();
        r.register(
            "tenant_queue_depth",
            "Tasks waiting to start, by tenant (tenants listed in scheduling.tenants; the others as `other`)",
            tenant_depth.clone(),
        );
        // 0.1 ms .. ~3.3 s
        let claim_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        r.register(
            "claim_duration_seconds",
            "Time a worker's claim of runnable tasks takes in the database",
            claim_duration.clone(),
        );
        let lease_losses = Family::<LeaseLossLabels, Counter>::default();
        r.register(
            "lease_losses",
            "Task leases this worker lost (expired or taken over) while running the task",
            lease_losses.clone(),
        );
        Self {
            oldest_age,
            tenant_depth,
            claim_duration,
            lease_losses,
        }
    }

    /// Counts a lost lease.
    pub fn lease_lost(&self, detected: &str) {
        self.lease_losses
            .get_or_create(&LeaseLossLabels {
                detected: detected.to_owned(),
            })
            .inc();
    }
}
