//! The `audit` section: checkpoint cadence and the witness.

use std::path::PathBuf;
use std::time::Duration;

use super::settings::section;
use super::{duration, int, non_empty};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{AuditConfig, HttpWitnessConfig, WitnessSettings};
use crate::raw::{RawAudit, RawHttpWitness};
use crate::sources::Tree;

/// The witness file when `audit.witness` does not name one.
const DEFAULT_WITNESS_FILE: &str = "audit-witness.jsonl";

pub(super) fn audit(tree: &Tree, diag: &mut Diagnostics) -> Option<AuditConfig> {
    let raw = section::<RawAudit>(tree, "audit", diag)?;
    let p = KeyPath::of(&["audit"]);
    let every = int::<u64>(
        diag,
        &p.child("checkpoint_every"),
        Some(raw.checkpoint_every),
        1000,
        (1, 1_000_000),
    );
    let interval = duration(
        diag,
        &p.child("checkpoint_interval"),
        Some(&raw.checkpoint_interval),
        Duration::from_secs(60),
        (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
    );
    let w = p.child("witness");
    let file = match raw.witness.file.as_deref() {
        None => Some(Some(PathBuf::from(DEFAULT_WITNESS_FILE))),
        Some("off") => Some(None),
        Some(text) => non_empty(diag, &w.child("file"), text).map(|()| Some(PathBuf::from(text))),
    };
    let http = match raw.witness.http {
        None => Some(None),
        Some(h) => http(h, &w.child("http"), diag).map(Some),
    };
    Some(AuditConfig {
        checkpoint_every: every?,
        checkpoint_interval: interval?,
        witness: WitnessSettings {
            file: file?,
            http: http?,
        },
    })
}

fn http(raw: RawHttpWitness, p: &KeyPath, diag: &mut Diagnostics) -> Option<HttpWitnessConfig> {
    let timeout = duration(
        diag,
        &p.child("timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(5),
        (Duration::from_millis(100), Duration::from_secs(60)),
    );
    let url = raw.url.trim();
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.contains('@') {
        diag.invalid(
            &p.child("url"),
            "expected an http:// or https:// URL without credentials (the sink must accept \
             unauthenticated appends or authenticate by network)"
                .to_owned(),
        );
        return None;
    }
    Some(HttpWitnessConfig {
        url: url.to_owned(),
        timeout: timeout?,
    })
}
