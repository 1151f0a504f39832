//! Hostile input: invalid UTF-8, NUL bytes, huge texts, deep JSON. Each gives a clear error or
//! a bounded result, never a panic.

use amas_dataprotect::{DataProtectError, DataProtector, FindingKind, TenantKey};

fn key() -> TenantKey {
    TenantKey::new(b"k".to_vec())
}

#[test]
fn invalid_utf8_is_an_error_with_its_offset() {
    let p = DataProtector::embedded().unwrap();
    let err = p.redact_bytes(b"ok \xff\xfe bad", &key()).unwrap_err();
    assert!(
        matches!(err, DataProtectError::InvalidUtf8 { offset: 3 }),
        "{err}"
    );
    assert_eq!(err.code(), "AMAS-DP-0004");
    let err = p
        .redact_json_bytes(b"{\"a\": \"\xc3\"}", &key())
        .unwrap_err();
    assert!(matches!(err, DataProtectError::InvalidUtf8 { .. }));
}

#[test]
fn nul_bytes_are_ordinary_characters() {
    let p = DataProtector::embedded().unwrap();
    let r = p
        .redact_bytes(b"\0a@example.com\0\x004111111111111111\0", &key())
        .unwrap();
    assert_eq!(r.redacted, "\0***@example.com\0\0************1111\0");
}

#[test]
fn ten_megabytes_scan_completes() {
    let p = DataProtector::embedded().unwrap();
    let unit = "Lorem ipsum 12 dolor, contact x@example.org or 4111 1111 1111 1111; 1.2 ";
    let text = unit.repeat(10 * 1024 * 1024 / unit.len());
    let r = p.redact_text(&text, &key()).unwrap();
    let cards = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::CreditCard)
        .count();
    assert_eq!(cards, text.len() / unit.len());
    assert!(!r.redacted.contains("4111 1111"));
    // Pathological shapes: one giant digit run, one giant word, one giant run of '@'.
    for s in [
        "9".repeat(1 << 20),
        "a".repeat(1 << 20),
        "@".repeat(1 << 20),
        "1.".repeat(1 << 19),
        ":".repeat(1 << 20),
    ] {
        assert!(p.scan(&s).unwrap().findings.is_empty());
    }
}

#[test]
fn oversized_input_is_refused() {
    let cfg = amas_dataprotect::EMBEDDED_CONFIG
        .replace("max_input_bytes: 33554432", "max_input_bytes: 10");
    let p =
        DataProtector::new(amas_dataprotect::DataProtectConfig::parse(&cfg, "t").unwrap()).unwrap();
    let err = p.scan("this is longer than ten bytes").unwrap_err();
    assert_eq!(err.code(), "AMAS-DP-0003");
}

#[test]
fn deep_json_is_refused_shallow_json_is_fine() {
    let p = DataProtector::embedded().unwrap();
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let err = p.redact_json_bytes(deep.as_bytes(), &key()).unwrap_err();
    assert!(
        matches!(err, DataProtectError::JsonTooDeep { limit: 64 }),
        "{err}"
    );
    // Deeper than serde_json's own limit still gives our error, not a crash.
    let deeper = format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    let err = p.redact_json_bytes(deeper.as_bytes(), &key()).unwrap_err();
    assert_eq!(err.code(), "AMAS-DP-0002");
    let ok = format!("{}\"a@example.com\"{}", "[".repeat(60), "]".repeat(60));
    let r = p.redact_json_bytes(ok.as_bytes(), &key()).unwrap();
    assert_eq!(r.findings.len(), 1);
}

#[test]
fn malformed_json_reports_position_not_content() {
    let p = DataProtector::embedded().unwrap();
    let err = p
        .redact_json_bytes(b"{\"ssn\": 123-45-6789}", &key())
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-DP-0005");
    assert!(!err.to_string().contains("6789"), "{err}");
}
