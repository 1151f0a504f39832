//! From the merged YAML tree to the typed [`AmasConfig`]: each entry is deserialized and
//! checked on its own, then cross-references are resolved; every problem is recorded.

mod agents;
mod audit;
mod graph;
mod oidc;
mod providers;
mod scheduling;
mod settings;
mod store;
mod workflows;

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use yaml_serde::{Mapping, Value};

use crate::diag::{Diagnostics, KeyPath};
use crate::duration::parse_duration;
use crate::error::codes;
use crate::model::AmasConfig;
use crate::sources::{Tree, key_text};

/// Validates the whole tree; `None` when any problem was found.
pub(crate) fn validate(
    tree: &Tree,
    config_dir: Option<&Path>,
    env: &[(String, String)],
    diag: &mut Diagnostics,
) -> Option<AmasConfig> {
    let empty = Mapping::new();
    let section = |name: &str| tree.section(name).unwrap_or(&empty);
    let settings = settings::validate(tree, diag);
    let approvals = settings::approvals(tree, diag);
    let retention = settings::retention(tree, diag);
    let clearance = settings::clearance(tree, diag);
    let audit = audit::audit(tree, diag);
    let store = store::store(tree, env, diag);
    let capacity = settings
        .as_ref()
        .map(|(_, _, runtime)| runtime.queue_capacity);
    let scheduling = scheduling::scheduling(tree, capacity, diag);
    let (providers, provider_trust, provider_prices) =
        providers::validate(section("providers"), config_dir, diag);
    let (agents, contracts) = agents::validate(section("agents"), section("providers"), diag);
    let workflows = workflows::validate(section("workflows"), section("agents"), &contracts, diag);
    let (server, auth, runtime) = settings?;
    let approvals = approvals?;
    let retention = retention?;
    let clearance = clearance?;
    let audit = audit?;
    let store = store?;
    let scheduling = scheduling?;
    diag.errors.is_empty().then_some(AmasConfig {
        server,
        auth,
        runtime,
        scheduling,
        approvals,
        retention,
        clearance,
        audit,
        store,
        providers,
        provider_trust,
        provider_prices,
        agents,
        workflows,
    })
}

/// Deserializes one entry, recording a problem (with the full key path) on failure.
pub(crate) fn deserialize<T: DeserializeOwned>(
    value: &Value,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            let mut at = path.clone();
            for segment in e.path().iter() {
                at = match segment {
                    Segment::Seq { index } => at.child(index.to_string()),
                    Segment::Map { key } => at.child(key.clone()),
                    Segment::Enum { variant } => at.child(variant.clone()),
                    Segment::Unknown => at,
                };
            }
            let message = e.inner().to_string();
            let code = if message.starts_with("unknown field") {
                codes::UNKNOWN_KEY
            } else {
                codes::INVALID_VALUE
            };
            diag.at(code, &at, message);
            None
        }
    }
}

/// The string-keyed entries of a mapping, in file order; other keys are reported.
pub(crate) fn entries<'a>(
    map: &'a Mapping,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Vec<(String, &'a Value)> {
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            Some(k) => out.push((k.to_owned(), value)),
            None => diag.invalid(path, format!("key `{}` must be a string", key_text(key))),
        }
    }
    out
}

/// Names become env-var path segments (lowercased), so they are restricted to
/// lowercase letters, digits and `_`, starting with a letter.
pub(crate) fn check_name(diag: &mut Diagnostics, path: &KeyPath, name: &str) -> bool {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        let msg = format!(
            "invalid name `{name}`: use lowercase letters, digits and `_`, starting with a letter"
        );
        diag.invalid(path, msg);
    }
    ok
}

pub(crate) fn non_empty(diag: &mut Diagnostics, path: &KeyPath, text: &str) -> Option<()> {
    if text.trim().is_empty() {
        diag.invalid(path, "must not be empty");
        return None;
    }
    Some(())
}

/// Parses a duration (`None` uses `default`) and checks `min <= d <= max`.
pub(crate) fn duration(
    diag: &mut Diagnostics,
    path: &KeyPath,
    text: Option<&str>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Option<Duration> {
    let d = match text.map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(msg)) => {
            diag.invalid(path, msg);
            return None;
        }
    };
    if d < min || d > max {
        diag.invalid(path, format!("{d:?} is out of range {min:?}..={max:?}"));
        return None;
    }
    Some(d)
}

/// `value` (or `default`) checked against `lo..=hi`, converted to the model's integer type.
pub(crate) fn int<T: TryFrom<u64>>(
    diag: &mut Diagnostics,
    path: &KeyPath,
    value: Option<u64>,
    default: u64,
    (lo, hi): (u64, u64),
) -> Option<T> {
    let v = diag.in_range(path, value.unwrap_or(default), lo, hi)?;
    T::try_from(v).ok()
}
