//! `settings.yaml`: the server, auth and runtime sections.

use std::net::SocketAddr;
use std::time::Duration;

use yaml_serde::{Mapping, Value};

use super::{deserialize, duration, int, non_empty};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{
    ApprovalsConfig, AuthConfig, ClearanceConfig, CorsConfig, JournalSync, RateLimit,
    RateLimitsConfig, RetentionConfig, RuntimeConfig, ServerConfig, TlsConfig,
};
use crate::raw::{
    RawApprovals, RawAuth, RawBucket, RawClearance, RawCors, RawRateLimits, RawRetention,
    RawRuntime, RawServer,
};
use crate::sources::Tree;

const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

pub(super) fn validate(
    tree: &Tree,
    diag: &mut Diagnostics,
) -> Option<(ServerConfig, AuthConfig, RuntimeConfig)> {
    let server = section::<RawServer>(tree, "server", diag).and_then(|r| server(r, diag));
    let auth = section::<RawAuth>(tree, "auth", diag).and_then(|r| auth(r, diag));
    let runtime = section::<RawRuntime>(tree, "runtime", diag).and_then(|r| runtime(&r, diag));
    Some((server?, auth?, runtime?))
}

pub(super) fn section<T: serde::de::DeserializeOwned>(
    tree: &Tree,
    name: &str,
    diag: &mut Diagnostics,
) -> Option<T> {
    let value = Value::Mapping(tree.section(name).cloned().unwrap_or_else(Mapping::new));
    deserialize(&value, &KeyPath::of(&[name]), diag)
}

fn server(raw: RawServer, diag: &mut Diagnostics) -> Option<ServerConfig> {
    let p = KeyPath::of(&["server"]);
    let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
        let msg = format!(
            "`{}` is not a socket address such as 127.0.0.1:8080",
            raw.listen
        );
        diag.invalid(&p.child("listen"), msg);
    });
    let body_limit = int::<usize>(
        diag,
        &p.child("body_limit_bytes"),
        Some(raw.body_limit_bytes),
        0,
        (1024, 1 << 30),
    );
    let timeout = duration(
        diag,
        &p.child("request_timeout"),
        Some(&raw.request_timeout),
        HOUR,
        (Duration::from_millis(1), HOUR),
    );
    let header_limit = int::<usize>(
        diag,
        &p.child("header_limit_bytes"),
        Some(raw.header_limit_bytes),
        0,
        (8192, 1 << 20),
    );
    let max_headers = int::<usize>(
        diag,
        &p.child("max_headers"),
        Some(raw.max_headers),
        0,
        (8, 1000),
    );
    let header_read_timeout = duration(
        diag,
        &p.child("header_read_timeout"),
        Some(&raw.header_read_timeout),
        HOUR,
        (Duration::from_millis(100), 10 * 60 * SEC),
    );
    let json_max_depth = int::<usize>(
        diag,
        &p.child("json_max_depth"),
        Some(raw.json_max_depth),
        0,
        (2, 128),
    );
    let max_connections = int::<usize>(
        diag,
        &p.child("max_connections"),
        Some(raw.max_connections),
        0,
        (1, 1_000_000),
    );
    let per_ip = int::<usize>(
        diag,
        &p.child("max_connections_per_ip"),
        raw.max_connections_per_ip,
        256,
        (1, 1_000_000),
    );
    let write_timeout = duration(
        diag,
        &p.child("write_timeout"),
        raw.write_timeout.as_deref(),
        30 * SEC,
        (Duration::from_millis(100), 10 * 60 * SEC),
    );
    let streams = int::<usize>(
        diag,
        &p.child("max_event_streams_per_tenant"),
        raw.max_event_streams_per_tenant,
        100,
        (1, 1_000_000),
    );
    let cors = cors(raw.cors, &p.child("cors"), diag);
    let rate_limits = rate_limits(&raw.rate_limits, &p.child("rate_limits"), diag);
    let tls = match raw.tls {
        None => Some(None),
        Some(t) => {
            let mut ok = true;
            for (key, file) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
                if !file.is_file() {
                    ok = false;
                    diag.invalid(
                        &p.child("tls").child(key),
                        format!("`{}` is not a readable file", file.display()),
                    );
                }
            }
            ok.then_some(Some(TlsConfig {
                cert_file: t.cert_file,
                key_file: t.key_file,
            }))
        }
    };
    Some(ServerConfig {
        listen: listen.ok()?,
        body_limit_bytes: body_limit?,
        request_timeout: timeout?,
        metrics_public: raw.metrics_public,
        header_limit_bytes: header_limit?,
        max_headers: max_headers?,
        header_read_timeout: header_read_timeout?,
        json_max_depth: json_max_depth?,
        max_connections: max_connections?,
        max_connections_per_ip: per_ip?,
        write_timeout: write_timeout?,
        max_event_streams_per_tenant: streams?,
        cors: cors?,
        rate_limits: rate_limits?,
        tls: tls?,
    })
}

/// Origins are compared exactly with a browser's `Origin` header: `scheme://host[:port]`, no
/// path, no wildcard.
fn cors(raw: RawCors, p: &KeyPath, diag: &mut Diagnostics) -> Option<CorsConfig> {
    let max_age = duration(
        diag,
        &p.child("max_age"),
        raw.max_age.as_deref(),
        10 * 60 * SEC,
        (Duration::ZERO, 24 * HOUR),
    );
    let origins = raw.allowed_origins.unwrap_or_default();
    let mut ok = true;
    for (i, origin) in origins.iter().enumerate() {
        if !is_origin(origin) {
            ok = false;
            diag.invalid(
                &p.child("allowed_origins").child(i.to_string()),
                format!(
                    "`{origin}` is not an origin such as https://ui.example.com (scheme, host and \
                     optional port; no path, no wildcard)"
                ),
            );
        }
    }
    ok.then_some(())?;
    Some(CorsConfig {
        allowed_origins: origins,
        max_age: max_age?,
    })
}

fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = rest
        .rsplit_once(':')
        .map_or((rest, None), |(h, p)| (h, Some(p)));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

fn rate_limits(
    raw: &RawRateLimits,
    p: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<RateLimitsConfig> {
    let max_clients = int::<usize>(
        diag,
        &p.child("max_clients"),
        raw.max_clients,
        100_000,
        (16, 10_000_000),
    );
    // The defaults of `config/settings.yaml`, for a user file that sets only some fields.
    let mut bucket = |name: &str, raw: &RawBucket, (rate, size): (u64, u64)| {
        let at = p.child(name);
        let per_minute = int::<u32>(
            diag,
            &at.child("per_minute"),
            raw.per_minute,
            rate,
            (1, 1_000_000),
        );
        let burst = int::<u32>(diag, &at.child("burst"), raw.burst, size, (1, 100_000));
        Some(RateLimit {
            per_minute: per_minute?,
            burst: burst?,
        })
    };
    let unauthenticated = bucket("unauthenticated", &raw.unauthenticated, (120, 30));
    let read = bucket("read", &raw.read, (1200, 200));
    let write = bucket("write", &raw.write, (120, 30));
    let stream = bucket("stream", &raw.stream, (60, 10));
    let admin = bucket("admin", &raw.admin, (300, 50));
    Some(RateLimitsConfig {
        enabled: raw.enabled.unwrap_or(true),
        max_clients: max_clients?,
        unauthenticated: unauthenticated?,
        read: read?,
        write: write?,
        stream: stream?,
        admin: admin?,
    })
}

fn auth(raw: RawAuth, diag: &mut Diagnostics) -> Option<AuthConfig> {
    let p = KeyPath::of(&["auth"]);
    let issuer = non_empty(diag, &p.child("issuer"), &raw.issuer);
    let audience = non_empty(diag, &p.child("audience"), &raw.audience);
    let ttl = duration(
        diag,
        &p.child("default_token_ttl"),
        Some(&raw.default_token_ttl),
        HOUR,
        (SEC, 720 * HOUR),
    );
    let leeway = duration(
        diag,
        &p.child("clock_leeway"),
        Some(&raw.clock_leeway),
        SEC,
        (Duration::ZERO, 600 * SEC),
    );
    let oidc_issuers = super::oidc::validate(raw.oidc_issuers.as_ref(), &raw.issuer, diag);
    issuer?;
    audience?;
    Some(AuthConfig {
        issuer: raw.issuer,
        audience: raw.audience,
        default_token_ttl: ttl?,
        clock_leeway: leeway?,
        oidc_issuers,
    })
}

fn runtime(raw: &RawRuntime, diag: &mut Diagnostics) -> Option<RuntimeConfig> {
    let p = KeyPath::of(&["runtime"]);
    let queue = int(
        diag,
        &p.child("queue_capacity"),
        Some(raw.queue_capacity),
        0,
        (1, 1_000_000),
    );
    let workers = int(
        diag,
        &p.child("max_concurrent_tasks"),
        Some(raw.max_concurrent_tasks),
        0,
        (1, 1024),
    );
    let journal_sync = match raw.journal_sync.as_str() {
        "full" => Some(JournalSync::Full),
        "normal" => Some(JournalSync::Normal),
        other => {
            diag.invalid(
                &p.child("journal_sync"),
                format!("`{other}` is not one of: full, normal"),
            );
            None
        }
    };
    Some(RuntimeConfig {
        queue_capacity: queue?,
        max_concurrent_tasks: workers?,
        journal_sync: journal_sync?,
    })
}

/// The `approvals` section.
pub(super) fn approvals(tree: &Tree, diag: &mut Diagnostics) -> Option<ApprovalsConfig> {
    let raw = section::<RawApprovals>(tree, "approvals", diag)?;
    let p = KeyPath::of(&["approvals"]);
    let timeout = duration(
        diag,
        &p.child("timeout"),
        Some(&raw.timeout),
        HOUR,
        (SEC, 24 * 30 * HOUR),
    );
    let roles_path = p.child("approver_roles");
    if raw.approver_roles.is_empty() {
        diag.invalid(
            &roles_path,
            "name at least one role whose approvals count".to_owned(),
        );
        return None;
    }
    let mut ok = true;
    for role in &raw.approver_roles {
        ok &= non_empty(diag, &roles_path, role).is_some();
    }
    ok.then_some(())?;
    Some(ApprovalsConfig {
        approver_roles: raw.approver_roles,
        timeout: timeout?,
    })
}

pub(super) fn retention(tree: &Tree, diag: &mut Diagnostics) -> Option<RetentionConfig> {
    let raw = section::<RawRetention>(tree, "retention", diag)?;
    let p = KeyPath::of(&["retention"]);
    let purge_interval = duration(
        diag,
        &p.child("purge_interval"),
        Some(&raw.purge_interval),
        HOUR,
        (SEC, 7 * 24 * HOUR),
    );
    let mut period = |key: &str, text: &str| match parse_retention(text) {
        Ok(d) => Some(d),
        Err(msg) => {
            diag.invalid(&p.child(key), msg);
            None
        }
    };
    let restricted = period("restricted", &raw.restricted);
    let confidential = period("confidential", &raw.confidential);
    let internal = period("internal", &raw.internal);
    let public = period("public", &raw.public);
    Some(RetentionConfig {
        purge_interval: purge_interval?,
        restricted: restricted?,
        confidential: confidential?,
        internal: internal?,
        public: public?,
    })
}

/// The `clearance` section: every role maps to a known level.
pub(super) fn clearance(tree: &Tree, diag: &mut Diagnostics) -> Option<ClearanceConfig> {
    let raw = section::<RawClearance>(tree, "clearance", diag)?;
    let p = KeyPath::of(&["clearance", "roles"]);
    let mut ok = true;
    for (role, level) in &raw.roles {
        if role.trim().is_empty() {
            diag.invalid(&p, "a role name must not be empty".to_owned());
            ok = false;
        }
        if !ClearanceConfig::LEVELS.contains(&level.as_str()) {
            diag.invalid(
                &p.child(role),
                format!("`{level}` is not one of: public, internal, confidential, restricted"),
            );
            ok = false;
        }
    }
    ok.then_some(ClearanceConfig { roles: raw.roles })
}

/// A retention period: `never`, or an integer and a unit (`s`, `m`, `h`, `d`); `0s` purges as
/// soon as a task has ended.
pub(crate) fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t == "never" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "invalid retention `{text}`: expected `never` or an integer and a unit (s, m, h, d), \
             e.g. `90d`"
        )
    };
    if let Some(days) = t.strip_suffix('d') {
        let n: u64 = days.parse().map_err(|_| bad())?;
        return n
            .checked_mul(86_400)
            .filter(|secs| *secs <= 100 * 366 * 86_400)
            .map(|secs| Some(Duration::from_secs(secs)))
            .ok_or_else(|| format!("retention `{text}` is longer than 100 years"));
    }
    crate::duration::parse_duration(t)
        .map(Some)
        .map_err(|_| bad())
}

#[cfg(test)]
mod retention_tests {
    use super::*;

    #[test]
    fn retention_periods_parse_days_never_and_reject_garbage() {
        assert_eq!(parse_retention("never"), Ok(None));
        assert_eq!(
            parse_retention("30d"),
            Ok(Some(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(parse_retention("0s"), Ok(Some(Duration::ZERO)));
        assert_eq!(
            parse_retention("12h"),
            Ok(Some(Duration::from_secs(12 * 3600)))
        );
        for bad in ["", "30", "d", "-1d", "1.5d", "forever", "99999999999d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }
}
