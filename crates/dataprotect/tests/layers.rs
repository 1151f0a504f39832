//! `dataprotect.yaml` through the layered loader: a config directory's partial file and
//! `AMAS__DATAPROTECT__...` variables change what the protector does, one key at a time, and a
//! bad value is reported with its file and key path.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::path::Path;

use amas_config::{LoadOptions, codes, load_section};
use amas_dataprotect::{
    DataProtectConfig, DataProtector, DlpAction, FindingKind, RedactionMode, TenantKey,
};

fn load(
    dir: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<DataProtectConfig, amas_config::ConfigErrors> {
    load_section(&LoadOptions {
        config_dir: dir.map(Path::to_path_buf),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

fn redact(config: DataProtectConfig, text: &str) -> String {
    let protector = DataProtector::new(config).unwrap();
    protector
        .redact_text(text, &TenantKey::new(b"k".to_vec()))
        .unwrap()
        .redacted
}

#[test]
fn the_layers_reach_the_protector_key_by_key() {
    let text = "mail jane.doe@example.com or call +1 415 555 0134";
    let embedded = load(None, &[]).unwrap();
    assert_eq!(embedded.mode(FindingKind::Email), RedactionMode::Mask);
    let masked = redact(embedded, text);
    assert!(
        masked.contains("@example.com") && !masked.contains("jane.doe"),
        "{masked}"
    );

    let env = load(
        None,
        &[("AMAS__DATAPROTECT__REDACTION__MODES__EMAIL", "tag")],
    )
    .unwrap();
    assert_eq!(env.mode(FindingKind::Email), RedactionMode::Tag);
    assert_eq!(
        env.mode(FindingKind::Phone),
        RedactionMode::Mask,
        "its siblings stay"
    );
    let tagged = redact(env, text);
    assert!(tagged.contains("[EMAIL]"), "{tagged}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dataprotect.yaml"),
        "dlp:\n  actions: { email: allow }\n",
    )
    .unwrap();
    let file = load(Some(dir.path()), &[]).unwrap();
    assert_eq!(file.dlp_action(FindingKind::Email), DlpAction::Allow);
    assert_eq!(
        file.dlp_action(FindingKind::CreditCard),
        DlpAction::Block,
        "a partial file keeps the other embedded actions"
    );
    assert_eq!(file.mode(FindingKind::Email), RedactionMode::Mask);
}

#[test]
fn bad_values_name_their_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dataprotect.yaml"),
        "redaction:\n  hash_hex_len: 2\n",
    )
    .unwrap();
    let errors = load(
        Some(dir.path()),
        &[("AMAS__DATAPROTECT__MIN_CONFIDENCE", "3")],
    )
    .unwrap_err();
    let file = dir.path().join("dataprotect.yaml").display().to_string();
    let len = errors
        .0
        .iter()
        .find(|e| e.path == "dataprotect.redaction.hash_hex_len")
        .unwrap();
    assert_eq!(
        (len.code, len.file.as_str()),
        (codes::INVALID_VALUE, file.as_str())
    );
    let confidence = errors
        .0
        .iter()
        .find(|e| e.path == "dataprotect.min_confidence")
        .unwrap();
    assert_eq!(
        confidence.file, "env AMAS__DATAPROTECT__MIN_CONFIDENCE",
        "{errors}"
    );

    let typo = load(
        None,
        &[("AMAS__DATAPROTECT__REDACTION__MODES__EMAIL", "shout")],
    )
    .unwrap_err();
    let mode = &typo.0[0];
    assert!(
        mode.path.starts_with("dataprotect.redaction.modes"),
        "{typo}"
    );
    assert!(mode.message.contains("shout"), "{typo}");
}
