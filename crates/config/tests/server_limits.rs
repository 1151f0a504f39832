//! The `server` hardening settings: documented defaults, partial overrides keep the rest, and
//! every bad value is reported at once with its key path.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::time::Duration;

use amas_config::{LoadOptions, RateLimit, load};

fn with_settings(yaml: &str) -> Result<amas_config::AmasConfig, amas_config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("settings.yaml"), yaml).unwrap();
    load(&LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        env: vec![],
    })
}

#[test]
fn defaults_are_the_documented_ones() {
    let server = load(&LoadOptions::default()).unwrap().server;
    assert_eq!(server.header_limit_bytes, 16 * 1024);
    assert_eq!(server.max_headers, 100);
    assert_eq!(server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(server.json_max_depth, 32);
    assert_eq!(server.max_connections, 4096);
    assert!(
        server.cors.allowed_origins.is_empty(),
        "CORS is off by default"
    );
    let limits = server.rate_limits;
    assert!(limits.enabled);
    assert_eq!(limits.max_clients, 100_000);
    let bucket = |per_minute, burst| RateLimit { per_minute, burst };
    assert_eq!(limits.unauthenticated, bucket(120, 30));
    assert_eq!(limits.read, bucket(1200, 200));
    assert_eq!(limits.write, bucket(120, 30));
    assert_eq!(limits.stream, bucket(60, 10));
    assert_eq!(limits.admin, bucket(300, 50));
}

#[test]
fn one_bucket_field_overrides_only_itself() {
    let cfg = with_settings(
        "server:\n  rate_limits:\n    write: { per_minute: 10 }\n  cors:\n    allowed_origins: [\"https://ui.example.com\", \"http://localhost:3000\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.server.rate_limits.write,
        RateLimit {
            per_minute: 10,
            burst: 30
        }
    );
    assert_eq!(cfg.server.cors.allowed_origins.len(), 2);
}

#[test]
fn every_bad_limit_is_reported_with_its_path() {
    let errors = with_settings(
        "server:\n  header_limit_bytes: 100\n  json_max_depth: 1000\n  header_read_timeout: 0s\n  cors:\n    allowed_origins: [\"*\", \"https://ui.example.com/app\", \"ui.example.com\"]\n  rate_limits:\n    read: { per_minute: 0, burst: 0 }\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "server.header_limit_bytes",
        "server.json_max_depth",
        "server.header_read_timeout",
        "server.cors.allowed_origins.0",
        "server.cors.allowed_origins.1",
        "server.cors.allowed_origins.2",
        "server.rate_limits.read.per_minute",
        "server.rate_limits.read.burst",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn unknown_bucket_keys_are_refused() {
    let errors = with_settings("server:\n  rate_limits:\n    admin: { refill: 1 }\n").unwrap_err();
    assert!(
        errors.has(
            amas_config::codes::UNKNOWN_KEY,
            "server.rate_limits.admin.refill"
        ),
        "{errors}"
    );
}

#[test]
fn tls_is_off_by_default_and_its_files_must_exist() {
    assert!(load(&LoadOptions::default()).unwrap().server.tls.is_none());
    let errors = with_settings(
        "server:\n  tls:\n    cert_file: /nonexistent/cert.pem\n    key_file: /nonexistent/key.pem\n",
    )
    .unwrap_err();
    for path in ["server.tls.cert_file", "server.tls.key_file"] {
        assert!(
            errors.has(amas_config::codes::INVALID_VALUE, path),
            "{path}: {errors}"
        );
    }
}
