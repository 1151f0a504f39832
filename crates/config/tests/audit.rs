//! The `audit` section: documented defaults, a user file that sets only the HTTP witness keeps
//! the default witness file, `off` turns the file off, and bad values are reported with their
//! key paths.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::path::PathBuf;
use std::time::Duration;

use amas_config::{LoadOptions, load};

fn with_settings(yaml: &str) -> Result<amas_config::AmasConfig, amas_config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("settings.yaml"), yaml).unwrap();
    load(&LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        env: vec![],
    })
}

#[test]
fn defaults_witness_every_checkpoint_to_a_file() {
    let audit = load(&LoadOptions::default()).unwrap().audit;
    assert_eq!(audit.checkpoint_every, 1000);
    assert_eq!(audit.checkpoint_interval, Duration::from_secs(60));
    assert_eq!(
        audit.witness.file,
        Some(PathBuf::from("audit-witness.jsonl"))
    );
    assert!(audit.witness.http.is_none());
}

#[test]
fn an_http_witness_comes_on_top_of_the_file_and_off_turns_the_file_off() {
    let cfg = with_settings(
        "audit:\n  witness:\n    http: { url: \"https://witness.example.com/amas\", timeout: 2s }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let http = cfg.audit.witness.http.unwrap();
    assert_eq!(
        (http.url.as_str(), http.timeout),
        ("https://witness.example.com/amas", Duration::from_secs(2))
    );
    assert_eq!(
        cfg.audit.witness.file,
        Some(PathBuf::from("audit-witness.jsonl"))
    );
    let cfg = with_settings("audit:\n  witness:\n    file: \"off\"\n").unwrap();
    assert_eq!(cfg.audit.witness.file, None);
    let cfg = with_settings("audit:\n  witness:\n    file: /var/log/amas/witness.jsonl\n").unwrap();
    assert_eq!(
        cfg.audit.witness.file,
        Some(PathBuf::from("/var/log/amas/witness.jsonl"))
    );
}

#[test]
fn bad_audit_settings_are_all_reported_with_their_paths() {
    let errors = with_settings(
        "audit:\n  checkpoint_every: 0\n  checkpoint_interval: 0s\n  witness:\n    http: { url: \"https://user:pw@witness.example.com\" }\n",
    )
    .unwrap_err()
    .to_string();
    for path in [
        "audit.checkpoint_every",
        "audit.checkpoint_interval",
        "audit.witness.http.url",
    ] {
        assert!(errors.contains(path), "{path}: {errors}");
    }
    let errors = with_settings("audit:\n  witness:\n    fiel: x\n")
        .unwrap_err()
        .to_string();
    assert!(errors.contains("fiel"), "{errors}");
}
