//! `settings.yaml`: the server, auth and runtime sections.

use std::net::SocketAddr;
use std::time::Duration;

use yaml_serde::{Mapping, Value};

use super::{deserialize, duration, int, non_empty};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{ApprovalsConfig, AuthConfig, JournalSync, RuntimeConfig, ServerConfig};
use crate::raw::{RawApprovals, RawAuth, RawRuntime, RawServer};
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

fn section<T: serde::de::DeserializeOwned>(
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
    Some(ServerConfig {
        listen: listen.ok()?,
        body_limit_bytes: body_limit?,
        request_timeout: timeout?,
        metrics_public: raw.metrics_public,
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
