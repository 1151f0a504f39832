//! The `store` section: SQLite in a directory, or PostgreSQL at the URL an environment
//! variable holds. With `backend: auto` (the default) the variable being set selects
//! PostgreSQL, so `AMAS_DATABASE_URL=postgres://...` alone moves a process onto it.

use secrecy::SecretString;

use std::time::Duration;

use super::settings::section;
use super::{duration, int};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{LeaseConfig, PostgresStoreConfig, StoreBackend, StoreConfig};
use crate::raw::RawStore;
use crate::sources::Tree;

/// The variable read for the URL when `store.url_env` does not name another.
const DEFAULT_URL_ENV: &str = "AMAS_DATABASE_URL";
const DEFAULT_POOL_SIZE: u64 = 10;

pub(super) fn store(
    tree: &Tree,
    env: &[(String, String)],
    diag: &mut Diagnostics,
) -> Option<StoreConfig> {
    let raw = section::<RawStore>(tree, "store", diag)?;
    let p = KeyPath::of(&["store"]);
    let url_env = raw
        .url_env
        .clone()
        .unwrap_or_else(|| DEFAULT_URL_ENV.to_owned());
    let name_ok = !url_env.is_empty()
        && url_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        diag.invalid(
            &p.child("url_env"),
            "expected the name of an environment variable ([A-Za-z0-9_])",
        );
        return None;
    }
    let url = env
        .iter()
        .find(|(k, _)| *k == url_env)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty());
    let postgres = match raw.backend.as_deref().unwrap_or("auto") {
        "auto" => url.is_some(),
        "sqlite" => false,
        "postgres" => true,
        other => {
            diag.invalid(
                &p.child("backend"),
                format!("`{other}` is not one of auto, sqlite, postgres"),
            );
            return None;
        }
    };
    let migrate_on_start = raw.migrate_on_start.unwrap_or(true);
    let leases = leases(&raw, &p, diag);
    if !postgres {
        return Some(StoreConfig {
            backend: StoreBackend::Sqlite { dir: raw.dir },
            migrate_on_start,
            leases: leases?,
        });
    }
    if let Some(dir) = &raw.dir {
        diag.invalid(
            &p.child("dir"),
            format!(
                "`{}` is the SQLite directory, but PostgreSQL is selected ({url_env} is set or \
                 `backend: postgres`); remove one",
                dir.display()
            ),
        );
    }
    let pool_size = int::<u32>(
        diag,
        &p.child("pool_size"),
        raw.pool_size,
        DEFAULT_POOL_SIZE,
        (1, 1000),
    );
    let schema = match raw.schema {
        None => Some(None),
        Some(schema) if valid_schema(&schema) => Some(Some(schema)),
        Some(schema) => {
            diag.invalid(
                &p.child("schema"),
                format!(
                    "`{schema}` must be 1-63 characters of [a-z0-9_], not starting with a digit"
                ),
            );
            None
        }
    };
    let url = match url {
        None => {
            diag.invalid(
                &p.child("url_env"),
                format!(
                    "`backend: postgres` needs the database URL in {url_env}, which is not set"
                ),
            );
            None
        }
        // The value is never quoted: it holds the password.
        Some(url) if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
            diag.invalid(
                &p.child("url_env"),
                format!("{url_env} does not hold a postgres:// or postgresql:// URL"),
            );
            None
        }
        Some(url) => Some(SecretString::from(url.to_owned())),
    };
    Some(StoreConfig {
        backend: StoreBackend::Postgres(PostgresStoreConfig {
            url_env,
            url: url?,
            pool_size: pool_size?,
            schema: schema?,
        }),
        migrate_on_start,
        leases: leases?,
    })
}

/// The lease settings; a takeover after a crash waits up to `lease_ttl`, so it is kept short.
fn leases(raw: &RawStore, p: &KeyPath, diag: &mut Diagnostics) -> Option<LeaseConfig> {
    let defaults = LeaseConfig::default();
    let ttl = duration(
        diag,
        &p.child("lease_ttl"),
        raw.lease_ttl.as_deref(),
        defaults.ttl,
        (Duration::from_secs(1), Duration::from_secs(600)),
    );
    let claim_interval = duration(
        diag,
        &p.child("claim_interval"),
        raw.claim_interval.as_deref(),
        defaults.claim_interval,
        (Duration::from_millis(10), Duration::from_secs(60)),
    );
    Some(LeaseConfig {
        ttl: ttl?,
        claim_interval: claim_interval?,
    })
}

/// Schema names are spliced into DDL by the store, which accepts only this alphabet.
fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63
}
