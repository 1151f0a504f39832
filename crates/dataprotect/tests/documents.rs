//! Realistic mixed documents: what is found, what the redacted text looks like, and how the
//! document is classified.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use amas_dataprotect::{DataProtector, FindingKind, Level, Tag, TenantKey};

fn protector() -> DataProtector {
    DataProtector::embedded().unwrap()
}

fn key() -> TenantKey {
    TenantKey::new(b"tenant-a".to_vec())
}

#[test]
fn support_ticket() {
    let ticket = "Ticket #48213 from Mr. Alan Turner <alan.turner@example.com>\n\
        Hi team, my card 4111-1111-1111-1111 was charged twice on 2024-03-02.\n\
        Please call me back on +1 415 555 0132. Order 99812, qty 3.\n";
    let r = protector().redact_text(ticket, &key()).unwrap();
    let kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::PersonName,
            FindingKind::Email,
            FindingKind::CreditCard,
            FindingKind::Phone
        ]
    );
    assert_eq!(
        r.redacted,
        "Ticket #48213 from Mr. [PERSON_NAME] <***@example.com>\n\
        Hi team, my card ****-****-****-1111 was charged twice on 2024-03-02.\n\
        Please call me back on +* *** *** **32. Order 99812, qty 3.\n"
    );
    assert_eq!(r.classification.level, Level::Restricted);
    assert!(r.classification.tags.contains(Tag::Pci) && r.classification.tags.contains(Tag::Pii));
    assert!(!r.classification.tags.contains(Tag::Phi));
}

#[test]
fn log_excerpt() {
    let log = "2024-05-01T10:22:03Z INFO req from 203.0.113.9 user=bob@corp.example\n\
        2024-05-01T10:22:04Z DEBUG auth header Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlXzEyMzQ1Ng\n\
        2024-05-01T10:22:05Z WARN AWS key AKIAIOSFODNN7EXAMPLE used from 10.1.2.3\n\
        2024-05-01T10:22:06Z INFO served v2.4.1 in 35 ms, 200 OK\n";
    let r = protector().redact_text(log, &key()).unwrap();
    let kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::IpAddress,
            FindingKind::Email,
            FindingKind::Jwt,
            FindingKind::ApiKey,
            FindingKind::IpAddress
        ]
    );
    assert!(
        r.redacted
            .contains("req from [IP_ADDRESS] user=***@corp.example")
    );
    assert!(r.redacted.contains("Bearer [JWT]"));
    assert!(
        r.redacted
            .contains("AWS key [API_KEY] used from [IP_ADDRESS]")
    );
    assert!(r.redacted.ends_with("served v2.4.1 in 35 ms, 200 OK\n"));
    assert_eq!(r.classification.level, Level::Restricted);
    assert!(r.classification.tags.contains(Tag::Secret));
}

#[test]
fn medical_note_is_phi() {
    let note = "Patient: Sarah Connor, DOB: 04/12/1965, MRN: 7734021.\n\
        Diagnosis: type 2 diabetes. Prescribed metformin 500 mg twice daily.\n\
        Contact: (212) 555-0199. Seen by Dr. Peter Silberman.";
    let r = protector().redact_text(note, &key()).unwrap();
    let kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::PersonName,
            FindingKind::DateOfBirth,
            FindingKind::Mrn,
            FindingKind::Phone,
            FindingKind::PersonName
        ]
    );
    assert!(r.classification.tags.contains(Tag::Phi));
    assert_eq!(r.classification.level, Level::Restricted);
    for raw in [
        "Sarah",
        "Connor",
        "04/12/1965",
        "7734021",
        "555-0199",
        "Silberman",
    ] {
        assert!(!r.redacted.contains(raw), "{raw} leaked: {}", r.redacted);
    }
    // MRN is hashed: stable per tenant, different across tenants.
    let again = protector().redact_text(note, &key()).unwrap();
    let other = protector()
        .redact_text(note, &TenantKey::new(b"tenant-b".to_vec()))
        .unwrap();
    assert_eq!(r.redacted, again.redacted);
    assert_ne!(r.redacted, other.redacted);
    assert!(r.redacted.contains("MRN: [MRN:"));
}

#[test]
fn classification_of_plain_and_empty_text() {
    let p = protector();
    assert_eq!(p.scan("").unwrap().classification.level, Level::Public);
    assert_eq!(p.scan("   ").unwrap().classification.level, Level::Public);
    let plain = p.scan("The quarterly report is attached.").unwrap();
    assert_eq!(plain.classification.level, Level::Internal);
    assert!(plain.classification.tags.is_empty());
    let email = p.scan("ping ops@example.org").unwrap();
    assert_eq!(email.classification.level, Level::Confidential);
}

#[test]
fn hash_and_tag_modes_from_config() {
    let cfg = amas_dataprotect::EMBEDDED_CONFIG
        .replace("    email: mask", "    email: hash")
        .replace("    credit_card: mask", "    credit_card: tag");
    let config = amas_dataprotect::DataProtectConfig::parse(&cfg, "test").unwrap();
    let p = DataProtector::new(config).unwrap();
    let r = p
        .redact_text(
            "a@example.com paid with 4111111111111111; A@example.com again",
            &key(),
        )
        .unwrap();
    let tokens: Vec<&str> = r
        .redacted
        .split(' ')
        .filter(|w| w.starts_with("[EMAIL:"))
        .collect();
    // Email hashes ignore case, so the two spellings join.
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1]);
    assert!(r.redacted.contains("paid with [CREDIT_CARD];"));
}

#[test]
fn json_documents_keep_structure() {
    let doc = serde_json::json!({
        "customer": {"email": "kim@example.com", "ssn": "123456789", "name": "Kim Lee"},
        "cards": ["4111 1111 1111 1111", 5555555555554444_u64, 42],
        "ok": true,
        "note": null
    });
    let r = protector().redact_json(&doc, &key()).unwrap();
    assert_eq!(
        r.redacted,
        serde_json::json!({
            "customer": {"email": "***@example.com", "ssn": "*********", "name": "[PERSON_NAME]"},
            "cards": ["**** **** **** 1111", "************4444", 42],
            "ok": true,
            "note": null
        })
    );
    // Sorted: object key order depends on serde_json's `preserve_order`, which another crate
    // in the workspace may switch on.
    let mut paths: Vec<&str> = r.findings.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/cards/0",
            "/cards/1",
            "/customer/email",
            "/customer/name",
            "/customer/ssn"
        ]
    );
    assert_eq!(r.classification.level, Level::Restricted);
}
