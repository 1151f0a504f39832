//! Per-detector true positives and near misses, through the public scan API.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use amas_dataprotect::{DataProtector, FindingKind};

fn found(text: &str) -> Vec<(FindingKind, String)> {
    let p = DataProtector::embedded().unwrap();
    p.scan(text)
        .unwrap()
        .findings
        .into_iter()
        .map(|f| (f.kind, text[f.start..f.end].to_owned()))
        .collect()
}

fn kinds(text: &str) -> Vec<FindingKind> {
    found(text).into_iter().map(|(k, _)| k).collect()
}

fn one(text: &str, kind: FindingKind, span: &str) {
    assert_eq!(found(text), vec![(kind, span.to_owned())], "in {text:?}");
}

#[test]
fn cards_valid_luhn_and_issuer() {
    one(
        "card 4111 1111 1111 1111 exp 12/27",
        FindingKind::CreditCard,
        "4111 1111 1111 1111",
    );
    one(
        "mc 5555-5555-5555-4444.",
        FindingKind::CreditCard,
        "5555-5555-5555-4444",
    );
    one(
        "amex 378282246310005",
        FindingKind::CreditCard,
        "378282246310005",
    );
    one(
        "discover 6011111111111117",
        FindingKind::CreditCard,
        "6011111111111117",
    );
    one(
        "jcb 3530111333300000",
        FindingKind::CreditCard,
        "3530111333300000",
    );
    one(
        "diners 30569309025904",
        FindingKind::CreditCard,
        "30569309025904",
    );
}

#[test]
fn card_near_misses() {
    // Fails Luhn.
    assert!(kinds("card 4111 1111 1111 1112").is_empty());
    // Passes Luhn, no issuer starts with 0 or 1.
    assert!(kinds("ref 0000 0000 0000 0000").is_empty());
    // Mixed separators, part of a longer number, glued to letters.
    assert!(kinds("4111-1111 1111-1111").is_empty());
    assert!(kinds("id 41111111111111110000").is_empty());
    assert!(kinds("x4111111111111111").is_empty());
}

#[test]
fn ssn_rules_and_context() {
    one("SSN 123-45-6789", FindingKind::Ssn, "123-45-6789");
    one(
        "her number is 123-45-6789.",
        FindingKind::Ssn,
        "123-45-6789",
    );
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "987-65-4321",
        "123-00-4567",
        "123-45-0000",
    ] {
        assert!(kinds(&format!("ssn {bad}")).is_empty(), "{bad}");
    }
    // Undashed only with a context word.
    one("SSN: 123456789", FindingKind::Ssn, "123456789");
    assert!(kinds("order 123456789 shipped").is_empty());
}

#[test]
fn emails() {
    one(
        "write to jane.doe@example.com today",
        FindingKind::Email,
        "jane.doe@example.com",
    );
    assert!(kinds("user@localhost and @mention").is_empty());
}

#[test]
fn phones() {
    one(
        "call me on +44 20 7946 0958",
        FindingKind::Phone,
        "+44 20 7946 0958",
    );
    one(
        "office (555) 123-4567",
        FindingKind::Phone,
        "(555) 123-4567",
    );
    one("ring 555-123-4567 now", FindingKind::Phone, "555-123-4567");
    one("mobile: 07700900123", FindingKind::Phone, "07700900123");
    one("fax 030 1234567", FindingKind::Phone, "030 1234567");
    // Ordinary numbers and dates are not phones.
    assert!(kinds("we sold 1234567890 units").is_empty());
    assert!(kinds("on 2024-01-15 10:30 the job ran").is_empty());
    assert!(kinds("steps 1 2 3 4 5 6 7 8 9").is_empty());
    assert!(kinds("total 12345").is_empty());
}

#[test]
fn ibans() {
    one(
        "IBAN DE89 3704 0044 0532 0130 00 please",
        FindingKind::Iban,
        "DE89 3704 0044 0532 0130 00",
    );
    one(
        "GB82WEST12345698765432",
        FindingKind::Iban,
        "GB82WEST12345698765432",
    );
    // One digit changed: mod-97 fails.
    assert!(kinds("IBAN DE89 3704 0044 0532 0130 01").is_empty());
    // Wrong length for the country.
    assert!(kinds("GB82WEST1234569876543").is_empty());
}

#[test]
fn ip_addresses() {
    let p = DataProtector::embedded().unwrap();
    let s = p.scan("from 8.8.8.8 via 10.0.0.7").unwrap();
    let got: Vec<(&str, f32)> = s
        .findings
        .iter()
        .map(|f| (&"from 8.8.8.8 via 10.0.0.7"[f.start..f.end], f.confidence))
        .collect();
    assert_eq!(got, [("8.8.8.8", 0.85), ("10.0.0.7", 0.5)]);
    one(
        "peer 2001:4860:4860::8888 up",
        FindingKind::IpAddress,
        "2001:4860:4860::8888",
    );
    // Loopback is below the threshold; versions are not addresses.
    assert!(kinds("bind 127.0.0.1").is_empty());
    assert!(kinds("upgrade to version 1.2.3.4 now").is_empty());
    assert!(kinds("v1.2.3.4 and 1.2.3.4.5 and 300.1.1.1").is_empty());
}

#[test]
fn api_keys_by_prefix() {
    let keys = [
        "sk-proj-AbCdEf1234567890GhIjKlMn",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "xoxb-123456789012-abcdefABCDEF",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    ];
    for k in keys {
        one(&format!("use {k} here"), FindingKind::ApiKey, k);
    }
    assert!(kinds("the task-force met; ask-me-anything; AKIAbc").is_empty());
}

#[test]
fn jwt_and_pem() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    one(&format!("Authorization: {jwt}"), FindingKind::Jwt, jwt);
    // Three dotted parts whose header is not JSON.
    assert!(kinds("eyJub3QganNvbg.abc.def").is_empty());
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----";
    one(&format!("key:\n{pem}\nend"), FindingKind::PrivateKey, pem);
    // A public key block is not a secret.
    assert!(kinds("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----").is_empty());
}

#[test]
fn entropy_secrets_only_near_key_words() {
    one(
        "api_key = \"Zx81kQ2vLm9PwR4tYb7N\"",
        FindingKind::ApiKey,
        "Zx81kQ2vLm9PwR4tYb7N",
    );
    one(
        "client_secret: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        FindingKind::ApiKey,
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    );
    one("password=hunter2!", FindingKind::ApiKey, "hunter2!");
    one(
        "Authorization: Bearer abcDEF123456ghiJKL789",
        FindingKind::ApiKey,
        "abcDEF123456ghiJKL789",
    );
    // The same random string without a key word, and low-entropy values after one.
    assert!(kinds("commit Zx81kQ2vLm9PwR4tYb7N landed").is_empty());
    assert!(kinds("token: aaaaaaaaaaaaaaaaaaaa1, password: reset").is_empty());
    assert!(kinds("the keyboard monkey: Zx81kQ2vLm9PwR4tYb7N").is_empty());
}

#[test]
fn context_identifiers() {
    one("DOB: 1984-07-23", FindingKind::DateOfBirth, "1984-07-23");
    one(
        "born on 12 March 1980 in",
        FindingKind::DateOfBirth,
        "12 March 1980",
    );
    one(
        "Date of birth: March 12, 1980",
        FindingKind::DateOfBirth,
        "March 12, 1980",
    );
    one("MRN: 00482913", FindingKind::Mrn, "00482913");
    one(
        "Passport number X12345678",
        FindingKind::Passport,
        "X12345678",
    );
    one(
        "driver's license no. D1234-56789",
        FindingKind::DriversLicense,
        "D1234-56789",
    );
    // Without context, dates and ids are just numbers.
    assert!(kinds("released 1984-07-23, build 00482913").is_empty());
}

#[test]
fn names_by_title_or_label_only() {
    one(
        "seen by Dr. Maria Lopez today",
        FindingKind::PersonName,
        "Maria Lopez",
    );
    one("Name: John O'Neil", FindingKind::PersonName, "John O'Neil");
    assert!(kinds("The Big Apple is in New York").is_empty());
    assert!(kinds("latency 500 ms Average").is_empty());
}
