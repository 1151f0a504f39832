//! The queue metrics, refreshed every `scheduling.metrics_interval`: how many tasks wait to
//! start (`amas_queue_depth`; by tenant, `amas_tenant_queue_depth`) and how long the oldest
//! has waited (`amas_queue_oldest_age_seconds`). One process reads its own queue; on
//! PostgreSQL every process reads the database's (the tasks no live lease holds), since the
//! database is the queue: an autoscaler reads the same numbers from any process. The `tenant`
//! label is a tenant listed in `scheduling.tenants` or `other`, so the series stay bounded
//! whatever tenants tokens carry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use amas_telemetry::metrics::{OTHER_TENANTS, QueueTenantLabels};

use super::Scheduler;

/// What the metrics show: depth by label, and the oldest task's age.
struct Snapshot {
    depths: BTreeMap<String, u64>,
    oldest: Duration,
}

impl Scheduler {
    pub(super) fn start_backlog(self: &Arc<Self>) {
        let scheduler = Arc::clone(self);
        let mut stopping = amas_telemetry::tasks::global().stopping();
        amas_telemetry::tasks::spawn("runtime.queue_metrics", async move {
            loop {
                scheduler.refresh_queue_metrics().await;
                tokio::select! {
                    () = tokio::time::sleep(scheduler.scheduling.metrics_interval) => {}
                    () = stopping.wait() => break,
                }
            }
        });
    }

    /// The `tenant` label of `tenant`.
    fn queue_label(&self, tenant: Option<&str>) -> String {
        match tenant {
            Some(t) if self.scheduling.tenants.contains_key(t) => t.to_owned(),
            _ => OTHER_TENANTS.to_owned(),
        }
    }

    async fn refresh_queue_metrics(&self) {
        let snapshot = match self.database.get() {
            Some(database) => {
                let named: Vec<String> = self.scheduling.tenants.keys().cloned().collect();
                match database.backlog(&named).await {
                    Ok(rows) => {
                        let mut depths = BTreeMap::new();
                        for row in &rows {
                            *depths
                                .entry(self.queue_label(row.tenant.as_deref()))
                                .or_default() += row.depth;
                        }
                        Snapshot {
                            depths,
                            oldest: rows.iter().map(|r| r.oldest_age).max().unwrap_or_default(),
                        }
                    }
                    Err(e) => {
                        // The gauges keep their last values; the next refresh tries again.
                        warn!(error.code = e.code(), error.message = %e, "Reading the queue metrics from the database failed.");
                        return;
                    }
                }
            }
            None => {
                let queue = self.queue();
                let mut depths = BTreeMap::new();
                for (tenant, depth) in queue.depths() {
                    *depths.entry(self.queue_label(Some(tenant))).or_default() +=
                        u64::try_from(depth).unwrap_or(u64::MAX);
                }
                Snapshot {
                    depths,
                    oldest: queue
                        .oldest()
                        .map(|since| Instant::now().saturating_duration_since(since))
                        .unwrap_or_default(),
                }
            }
        };
        self.show(&snapshot);
    }

    fn show(&self, snapshot: &Snapshot) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let m = &self.metrics;
        m.queue_depth.set(gauge(snapshot.depths.values().sum()));
        m.queue.oldest_age.set(snapshot.oldest.as_secs_f64());
        // Every label known, so a tenant whose queue emptied shows 0 rather than its last depth.
        let labels = self
            .scheduling
            .tenants
            .keys()
            .map(String::as_str)
            .chain([OTHER_TENANTS]);
        for label in labels {
            m.queue
                .tenant_depth
                .get_or_create(&QueueTenantLabels {
                    tenant: label.to_owned(),
                })
                .set(gauge(snapshot.depths.get(label).copied().unwrap_or(0)));
        }
    }
}
