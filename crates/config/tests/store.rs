//! The `store` section: SQLite in the data directory by default, PostgreSQL selected by the URL
//! variable alone, every bad combination reported with its key path and never with the URL,
//! and the URL shown by the dump with its password redacted.

mod common;

use std::path::Path;

use amas_config::StoreBackend;
use common::with;
use secrecy::ExposeSecret as _;

const URL: &str = "postgres://amas:hunter2@db.internal:5432/amas";

#[test]
fn sqlite_in_the_data_directory_by_default() {
    let store = with(None, &[]).unwrap().store;
    assert!(matches!(store.backend, StoreBackend::Sqlite { dir: None }));
    assert!(store.migrate_on_start);
    let store = with(Some("store:\n  dir: /var/lib/amas\n"), &[])
        .unwrap()
        .store;
    assert!(matches!(
        store.backend,
        StoreBackend::Sqlite { dir: Some(d) } if d == Path::new("/var/lib/amas")
    ));
}

/// The variable alone selects PostgreSQL; `AMAS__STORE__...` sets the rest.
#[test]
fn the_url_variable_alone_selects_postgres() {
    let store = with(None, &[("AMAS_DATABASE_URL", URL)]).unwrap().store;
    let StoreBackend::Postgres(pg) = &store.backend else {
        panic!("{store:?}");
    };
    assert_eq!(pg.url.expose_secret(), URL);
    assert_eq!(
        (pg.url_env.as_str(), pg.pool_size, pg.schema.as_deref()),
        ("AMAS_DATABASE_URL", 10, None)
    );
    let store = with(
        Some("store:\n  url_env: MY_DB\n"),
        &[
            ("MY_DB", URL),
            ("AMAS__STORE__POOL_SIZE", "3"),
            ("AMAS__STORE__SCHEMA", "amas"),
            ("AMAS__STORE__MIGRATE_ON_START", "false"),
        ],
    )
    .unwrap()
    .store;
    let StoreBackend::Postgres(pg) = &store.backend else {
        panic!("{store:?}");
    };
    assert_eq!((pg.pool_size, pg.schema.as_deref()), (3, Some("amas")));
    assert!(!store.migrate_on_start);
    // `backend: sqlite` keeps SQLite even with the variable set.
    let store = with(
        Some("store:\n  backend: sqlite\n"),
        &[("AMAS_DATABASE_URL", URL)],
    )
    .unwrap()
    .store;
    assert!(matches!(store.backend, StoreBackend::Sqlite { .. }));
}

/// The dump (and the hash the audit log records) shows the server and user, never the password.
#[test]
fn the_dump_redacts_the_password() {
    let config = with(None, &[("AMAS_DATABASE_URL", URL)]).unwrap();
    let doc = serde_json::to_value(&config).unwrap();
    assert_eq!(doc["store"]["backend"], "postgres");
    assert_eq!(
        doc["store"]["url"],
        "postgres://amas:<redacted>@db.internal:5432/amas"
    );
    assert!(!doc.to_string().contains("hunter2"));
}

#[test]
fn bad_store_settings_are_reported_without_the_url() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 6] = [
        ("store:\n  backend: postgres\n", &[], "store.url_env"),
        ("store:\n  backend: mysql\n", &[], "store.backend"),
        (
            "store:\n  dir: /var/lib/amas\n",
            &[("AMAS_DATABASE_URL", URL)],
            "store.dir",
        ),
        (
            "store:\n  schema: Bad-Name\n",
            &[("AMAS_DATABASE_URL", URL)],
            "store.schema",
        ),
        (
            "store:\n  pool_size: 0\n",
            &[("AMAS_DATABASE_URL", URL)],
            "store.pool_size",
        ),
        ("store:\n  bogus: 1\n", &[], "store.bogus"),
    ];
    for (yaml, env, path) in cases {
        let err = with(Some(yaml), env).unwrap_err();
        assert!(err.contains(path), "{yaml}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    let err = with(
        None,
        &[("AMAS_DATABASE_URL", "mysql://amas:hunter2@db/amas")],
    )
    .unwrap_err();
    assert!(
        err.contains("AMAS-CFG-0003") && err.contains("postgres://"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// Lease settings default short (a crashed worker's tasks move on within 15 s), are set like
/// any other store key, and out-of-range values are reported with their key path.
#[test]
fn lease_settings_default_short_and_are_range_checked() {
    let store = with(None, &[("AMAS_DATABASE_URL", URL)]).unwrap().store;
    assert_eq!(store.leases.ttl, std::time::Duration::from_secs(15));
    assert_eq!(
        store.leases.claim_interval,
        std::time::Duration::from_millis(500)
    );
    let store = with(
        Some("store:\n  lease_ttl: 3s\n"),
        &[
            ("AMAS_DATABASE_URL", URL),
            ("AMAS__STORE__CLAIM_INTERVAL", "50ms"),
        ],
    )
    .unwrap()
    .store;
    assert_eq!(store.leases.ttl, std::time::Duration::from_secs(3));
    assert_eq!(
        store.leases.claim_interval,
        std::time::Duration::from_millis(50)
    );
    for (yaml, path) in [
        ("store:\n  lease_ttl: 500ms\n", "store.lease_ttl"),
        ("store:\n  lease_ttl: 1h\n", "store.lease_ttl"),
        ("store:\n  claim_interval: 0ms\n", "store.claim_interval"),
        ("store:\n  claim_interval: soon\n", "store.claim_interval"),
    ] {
        let err = with(Some(yaml), &[("AMAS_DATABASE_URL", URL)]).unwrap_err();
        assert!(err.contains(path), "{yaml}: {err}");
    }
}
