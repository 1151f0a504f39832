//! `providers.yaml`: named model backends, dispatched on their `kind`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use yaml_serde::{Mapping, Value};

use super::{check_name, deserialize, duration, entries, int, non_empty};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{
    BreakerConfig, LocalModelConfig, OpenAiConfig, ProviderConfig, ScriptedConfig, TokenPrices,
};
use crate::raw::{RawBreaker, RawLocal, RawOpenAi, RawScripted};

const KINDS: &str = "openai, local, scripted";
const SEC: Duration = Duration::from_secs(1);

/// Data classification levels, lowest first.
pub(crate) const LEVELS: [&str; 4] = crate::model::ClearanceConfig::LEVELS;

/// Each provider's config, the data classification levels it is trusted with, and what its
/// tokens cost (providers without `prices` are absent: they cost nothing).
pub(super) type Providers = (
    BTreeMap<String, ProviderConfig>,
    BTreeMap<String, Vec<String>>,
    BTreeMap<String, TokenPrices>,
);

/// `prices` as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrices {
    input_per_1k: f64,
    output_per_1k: f64,
}

pub(super) fn validate(
    section: &Mapping,
    config_dir: Option<&Path>,
    diag: &mut Diagnostics,
) -> Providers {
    let base = KeyPath::of(&["providers"]);
    let mut out = BTreeMap::new();
    let mut trust = BTreeMap::new();
    let mut costs = BTreeMap::new();
    for (name, value) in entries(section, &base, diag) {
        let path = base.child(&name);
        let named = check_name(diag, &path, &name);
        let trusted = trusted_for(value, &path, diag);
        let priced = prices(value, &path, diag);
        if let Some(p) = provider(value, &path, config_dir, diag)
            && named
            && let Some(levels) = trusted
            && let Some(priced) = priced
        {
            let levels = levels.unwrap_or_else(|| default_trust(&p));
            trust.insert(name.clone(), levels);
            if let Some(priced) = priced {
                costs.insert(name.clone(), priced);
            }
            out.insert(name, p);
        }
    }
    (out, trust, costs)
}

/// `prices`: US dollars per 1000 input and output tokens, for the estimated-cost metric.
/// `Some(None)` when not set.
fn prices(value: &Value, path: &KeyPath, diag: &mut Diagnostics) -> Option<Option<TokenPrices>> {
    let Some(raw) = value.as_mapping().and_then(|m| m.get("prices")) else {
        return Some(None);
    };
    let p = path.child("prices");
    let raw: RawPrices = deserialize(raw, &p, diag)?;
    let mut ok = true;
    for (key, price) in [
        ("input_per_1k", raw.input_per_1k),
        ("output_per_1k", raw.output_per_1k),
    ] {
        if !(price.is_finite() && price >= 0.0) {
            diag.invalid(
                &p.child(key),
                format!("{price} is not a price: use a number of dollars >= 0"),
            );
            ok = false;
        }
    }
    ok.then_some(Some(TokenPrices {
        input_per_1k: raw.input_per_1k,
        output_per_1k: raw.output_per_1k,
    }))
}

/// `trusted_for`: the classification levels whose data may go to this provider (policy,
/// `policies/model.rego`, decides with it). `Some(None)` when not set.
fn trusted_for(
    value: &Value,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<Option<Vec<String>>> {
    let Some(raw) = value.as_mapping().and_then(|m| m.get("trusted_for")) else {
        return Some(None);
    };
    let p = path.child("trusted_for");
    let Some(items) = raw.as_sequence() else {
        diag.invalid(
            &p,
            format!("expected a list of levels ({})", LEVELS.join(", ")),
        );
        return None;
    };
    let mut levels = Vec::new();
    for item in items {
        match item.as_str() {
            Some(level) if LEVELS.contains(&level) => levels.push(level.to_owned()),
            _ => {
                diag.invalid(
                    &p,
                    format!("`{item:?}` is not a level; use {}", LEVELS.join(", ")),
                );
                return None;
            }
        }
    }
    Some(Some(levels))
}

/// Without `trusted_for`: the embedded model and scripted test doubles keep data on this
/// machine, so they take every level; a remote provider gets public and internal data only.
fn default_trust(provider: &ProviderConfig) -> Vec<String> {
    let levels: &[&str] = match provider {
        ProviderConfig::Local(_) | ProviderConfig::Scripted(_) => &LEVELS,
        ProviderConfig::Openai(_) => &LEVELS[..2],
    };
    levels.iter().map(|l| (*l).to_owned()).collect()
}

fn provider(
    value: &Value,
    path: &KeyPath,
    config_dir: Option<&Path>,
    diag: &mut Diagnostics,
) -> Option<ProviderConfig> {
    let Value::Mapping(map) = value else {
        diag.invalid(path, "expected a mapping with a `kind`");
        return None;
    };
    let mut rest = map.clone();
    let kind = rest.remove("kind");
    rest.remove("trusted_for");
    rest.remove("prices");
    match kind.as_ref().and_then(Value::as_str) {
        Some("openai") => openai(deserialize(&Value::Mapping(rest), path, diag)?, path, diag),
        Some("local") => local(deserialize(&Value::Mapping(rest), path, diag)?, path, diag),
        Some("scripted") => scripted(
            deserialize(&Value::Mapping(rest), path, diag)?,
            path,
            config_dir,
            diag,
        ),
        Some(other) => {
            diag.invalid(
                &path.child("kind"),
                format!("unknown provider kind `{other}`, expected one of: {KINDS}"),
            );
            None
        }
        None => {
            diag.invalid(path, format!("missing field `kind` (one of: {KINDS})"));
            None
        }
    }
}

fn openai(raw: RawOpenAi, path: &KeyPath, diag: &mut Diagnostics) -> Option<ProviderConfig> {
    let url_ok = raw.base_url.starts_with("http://") || raw.base_url.starts_with("https://");
    if !url_ok {
        diag.invalid(
            &path.child("base_url"),
            "must start with http:// or https://",
        );
    }
    let model = non_empty(diag, &path.child("model"), &raw.model);
    let key_env_ok = raw.api_key_env.as_deref().is_none_or(is_env_name);
    if !key_env_ok {
        // The value is meant to be a variable *name*; never echo it, it may be a pasted key.
        diag.invalid(&path.child("api_key_env"), "must be the name of an environment variable (letters, digits, `_`), not the key itself");
    }
    let timeout = duration(
        diag,
        &path.child("timeout"),
        raw.timeout.as_deref(),
        60 * SEC,
        (Duration::from_millis(1), 600 * SEC),
    );
    let max_retries = int(
        diag,
        &path.child("max_retries"),
        raw.max_retries,
        2,
        (0, 10),
    );
    let max_retry_after = duration(
        diag,
        &path.child("max_retry_after"),
        raw.max_retry_after.as_deref(),
        5 * SEC,
        (Duration::ZERO, 600 * SEC),
    );
    let breaker = breaker(raw.breaker, &path.child("breaker"), diag);
    model?;
    (url_ok && key_env_ok).then_some(())?;
    Some(ProviderConfig::Openai(OpenAiConfig {
        base_url: raw.base_url.trim_end_matches('/').to_owned(),
        model: raw.model,
        api_key_env: raw.api_key_env,
        timeout: timeout?,
        max_retries: max_retries?,
        max_retry_after: max_retry_after?,
        breaker: breaker?,
    }))
}

fn local(raw: RawLocal, path: &KeyPath, diag: &mut Diagnostics) -> Option<ProviderConfig> {
    let file_ok = !raw.model_file.trim().is_empty() && !raw.model_file.contains(['/', '\\']);
    if !file_ok {
        diag.invalid(
            &path.child("model_file"),
            "must be a file name (set the directory with model_dir)",
        );
    }
    let max_tokens = int(
        diag,
        &path.child("max_tokens"),
        raw.max_tokens,
        256,
        (1, 8192),
    );
    let breaker = breaker(raw.breaker, &path.child("breaker"), diag);
    file_ok.then_some(())?;
    Some(ProviderConfig::Local(LocalModelConfig {
        model_dir: raw.model_dir,
        model_file: raw.model_file,
        max_tokens: max_tokens?,
        breaker: breaker?,
    }))
}

fn scripted(
    raw: RawScripted,
    path: &KeyPath,
    config_dir: Option<&Path>,
    diag: &mut Diagnostics,
) -> Option<ProviderConfig> {
    if raw.file.as_os_str().is_empty() {
        diag.invalid(&path.child("file"), "must not be empty");
        return None;
    }
    let file = match config_dir {
        Some(dir) if raw.file.is_relative() => dir.join(&raw.file),
        _ => raw.file,
    };
    let breaker = breaker(raw.breaker, &path.child("breaker"), diag)?;
    Some(ProviderConfig::Scripted(ScriptedConfig { file, breaker }))
}

fn breaker(
    raw: Option<RawBreaker>,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<BreakerConfig> {
    let raw = raw.unwrap_or_default();
    let threshold = int(
        diag,
        &path.child("failure_threshold"),
        raw.failure_threshold,
        5,
        (1, 1000),
    );
    let cool_down = duration(
        diag,
        &path.child("cool_down"),
        raw.cool_down.as_deref(),
        30 * SEC,
        (Duration::from_millis(1), 3600 * SEC),
    );
    Some(BreakerConfig {
        failure_threshold: threshold?,
        cool_down: cool_down?,
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
