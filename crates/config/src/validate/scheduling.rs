//! The `scheduling` section: tenant weights and per-tenant limits, each value range-checked,
//! a per-tenant queue limit checked against the global one (`runtime.queue_capacity`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::settings::section;
use super::{deserialize, duration, entries};
use crate::diag::{Diagnostics, KeyPath};
use crate::raw::{RawScheduling, RawTenantSchedule};
use crate::scheduling::{SchedulingConfig, TenantSchedule};
use crate::sources::Tree;

const MAX_WEIGHT: u64 = 1000;
const MAX_RUNNING: u64 = 100_000;
const MAX_QUEUED: u64 = 1_000_000;
/// Tenant ids come from token claims; a longer key is a typo, not a tenant.
const MAX_TENANT_LEN: usize = 256;
/// Each listed tenant is a label value of the queue metrics: keep the series bounded.
const MAX_TENANTS: usize = 1000;

/// The section; `queue_capacity` is the validated `runtime.queue_capacity` (`None` when that
/// was invalid: the cross-check is skipped, its own problem is already reported).
pub(super) fn scheduling(
    tree: &Tree,
    queue_capacity: Option<usize>,
    diag: &mut Diagnostics,
) -> Option<SchedulingConfig> {
    let raw = section::<RawScheduling>(tree, "scheduling", diag)?;
    let p = KeyPath::of(&["scheduling"]);
    let defaults = SchedulingConfig::default();
    let limits = Limits {
        queue_capacity,
        fallback: None,
    };
    let default = limits.check(
        diag,
        &p,
        "default_",
        &RawTenantSchedule {
            weight: raw.default_weight,
            max_running: raw.default_max_running,
            max_queued: raw.default_max_queued,
        },
    );
    let metrics_interval = duration(
        diag,
        &p.child("metrics_interval"),
        raw.metrics_interval.as_deref(),
        defaults.metrics_interval,
        (Duration::from_millis(100), Duration::from_secs(600)),
    );
    let tenants = tenants(&raw, &p, queue_capacity, default, diag);
    Some(SchedulingConfig {
        default: default?,
        tenants: tenants?,
        metrics_interval: metrics_interval?,
    })
}

fn tenants(
    raw: &RawScheduling,
    p: &KeyPath,
    queue_capacity: Option<usize>,
    default: Option<TenantSchedule>,
    diag: &mut Diagnostics,
) -> Option<BTreeMap<String, TenantSchedule>> {
    let p = p.child("tenants");
    let Some(map) = &raw.tenants else {
        return Some(BTreeMap::new());
    };
    if map.len() > MAX_TENANTS {
        diag.invalid(
            &p,
            format!(
                "{} tenants listed; at most {MAX_TENANTS} (each is a metric label): give the \
                 others the defaults (`default_weight`, `default_max_running`, \
                 `default_max_queued`)",
                map.len()
            ),
        );
        return None;
    }
    let limits = Limits {
        queue_capacity,
        fallback: default,
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (tenant, value) in entries(map, &p, diag) {
        let at = p.child(tenant.as_str());
        if tenant.trim().is_empty() || tenant.len() > MAX_TENANT_LEN {
            diag.invalid(
                &at,
                format!(
                    "a tenant id must be 1-{MAX_TENANT_LEN} characters, as tokens carry it in \
                     their tenant claim"
                ),
            );
            ok = false;
            continue;
        }
        let Some(entry) = deserialize::<RawTenantSchedule>(value, &at, diag) else {
            ok = false;
            continue;
        };
        match limits.check(diag, &at, "", &entry) {
            Some(schedule) => {
                out.insert(tenant, schedule);
            }
            None => ok = false,
        }
    }
    (ok && default.is_some()).then_some(out)
}

struct Limits {
    queue_capacity: Option<usize>,
    /// What a tenant's missing fields are (the validated default; `None` for the default
    /// itself, or when the default was invalid).
    fallback: Option<TenantSchedule>,
}

impl Limits {
    /// One schedule; `prefix` is `default_` for the section's own keys.
    fn check(
        &self,
        diag: &mut Diagnostics,
        p: &KeyPath,
        prefix: &str,
        raw: &RawTenantSchedule,
    ) -> Option<TenantSchedule> {
        let fallback = self.fallback.unwrap_or_default();
        let weight = match raw.weight {
            None => Some(fallback.weight),
            Some(w) if (1..=MAX_WEIGHT).contains(&w) => u32::try_from(w).ok(),
            Some(w) => {
                diag.invalid(
                    &p.child(format!("{prefix}weight")),
                    format!(
                        "{w} is out of range 1..={MAX_WEIGHT}: a weight is a tenant's share \
                         relative to the others (1 for an equal share)"
                    ),
                );
                None
            }
        };
        let max_running = match raw.max_running {
            None => Some(fallback.max_running),
            Some(n) if (1..=MAX_RUNNING).contains(&n) => u32::try_from(n).ok().map(Some),
            Some(n) => {
                diag.invalid(
                    &p.child(format!("{prefix}max_running")),
                    format!(
                        "{n} is out of range 1..={MAX_RUNNING}: leave it out (or null) for no \
                         cap"
                    ),
                );
                None
            }
        };
        let max_queued = match raw.max_queued {
            None => Some(fallback.max_queued),
            Some(n) if !(1..=MAX_QUEUED).contains(&n) => {
                diag.invalid(
                    &p.child(format!("{prefix}max_queued")),
                    format!(
                        "{n} is out of range 1..={MAX_QUEUED}: leave it out (or null) for only \
                         the global limit, runtime.queue_capacity"
                    ),
                );
                None
            }
            Some(n) => match self.queue_capacity {
                Some(capacity) if usize::try_from(n).is_ok_and(|n| n > capacity) => {
                    diag.invalid(
                        &p.child(format!("{prefix}max_queued")),
                        format!(
                            "{n} is more than runtime.queue_capacity ({capacity}), which would \
                             refuse first: lower it, or raise runtime.queue_capacity"
                        ),
                    );
                    None
                }
                _ => u32::try_from(n).ok().map(Some),
            },
        };
        Some(TenantSchedule {
            weight: weight?,
            max_running: max_running?,
            max_queued: max_queued?,
        })
    }
}
