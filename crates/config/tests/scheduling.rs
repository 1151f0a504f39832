//! The `scheduling` section: every tenant at weight 1 without caps by default; a tenant's own
//! entry inherits what it leaves out from the defaults; `AMAS__SCHEDULING__...` overrides like
//! any key; every bad value is reported at once with its key path and how to fix it.

mod common;

use std::time::Duration;

use amas_config::TenantSchedule;
use common::with;

#[test]
fn every_tenant_shares_equally_without_caps_by_default() {
    let s = with(None, &[]).unwrap().scheduling;
    assert_eq!(
        s.default,
        TenantSchedule {
            weight: 1,
            max_running: None,
            max_queued: None
        }
    );
    assert!(s.tenants.is_empty());
    assert_eq!(s.metrics_interval, Duration::from_secs(5));
    assert_eq!(s.tenant("anyone"), s.default);
}

/// A listed tenant takes what it leaves out from the defaults, whichever layer set them; env
/// variables add tenants (lowercased ids) and set defaults.
#[test]
fn tenant_entries_inherit_the_defaults_and_env_overrides_apply() {
    let s = with(
        Some(
            "scheduling:\n  default_max_running: 8\n  tenants:\n    acme: { weight: 4, max_queued: 100 }\n",
        ),
        &[
            ("AMAS__SCHEDULING__DEFAULT_MAX_QUEUED", "500"),
            ("AMAS__SCHEDULING__TENANTS__BETA__MAX_RUNNING", "2"),
            ("AMAS__SCHEDULING__METRICS_INTERVAL", "250ms"),
        ],
    )
    .unwrap()
    .scheduling;
    assert_eq!(
        s.tenant("acme"),
        TenantSchedule {
            weight: 4,
            max_running: Some(8),
            max_queued: Some(100)
        }
    );
    assert_eq!(
        s.tenant("beta"),
        TenantSchedule {
            weight: 1,
            max_running: Some(2),
            max_queued: Some(500)
        }
    );
    assert_eq!(
        s.tenant("other-tenant"),
        TenantSchedule {
            weight: 1,
            max_running: Some(8),
            max_queued: Some(500)
        }
    );
    assert_eq!(s.metrics_interval, Duration::from_millis(250));
}

/// All problems at once, each naming its key and the fix.
#[test]
fn bad_values_are_reported_together_with_their_paths_and_fixes() {
    let err = with(
        Some(
            "runtime:\n  queue_capacity: 100\n  max_concurrent_tasks: 4\n  journal_sync: full\n\
             scheduling:\n  default_weight: 0\n  metrics_interval: soon\n  tenants:\n    \
             acme: { weight: 5000, max_running: 0, max_queued: 101 }\n    \
             beta: { priority: 3 }\n    gamma: { max_queued: 100 }\n",
        ),
        &[],
    )
    .unwrap_err();
    for (path, fix) in [
        ("scheduling.default_weight", "1 for an equal share"),
        ("scheduling.metrics_interval", ""),
        ("scheduling.tenants.acme.weight", "out of range 1..=1000"),
        (
            "scheduling.tenants.acme.max_running",
            "leave it out (or null) for no cap",
        ),
        (
            "scheduling.tenants.acme.max_queued",
            "raise runtime.queue_capacity",
        ),
        ("scheduling.tenants.beta", "unknown field `priority`"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("no problem at {path}: {err}"));
        assert!(line.contains(fix), "{path}: {line}");
    }
    assert!(
        !err.contains("scheduling.tenants.gamma"),
        "a per-tenant limit equal to the global one is fine: {err}"
    );
}
