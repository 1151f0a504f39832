//! `amas redact` through the real binary: text in, redacted text out; `--json` adds the
//! findings with offsets in bytes of the UTF-8 input; `--format json` redacts every string leaf
//! and keeps the document's structure; bad input (invalid UTF-8, a too-deep document) exits 2
//! with a stable code and never echoes the input.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn redact(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(common::AMAS)
        .arg("redact")
        .args(args)
        .env_remove("AMAS_REDACT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn text_is_redacted_and_findings_carry_byte_offsets() {
    let input = "Café: mail jane.doe@example.com, card 4111 1111 1111 1111.";
    let out = redact(&[], input.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("jane.doe") && !text.contains("4111 1111 1111 1111"),
        "{text}"
    );
    assert!(text.starts_with("Café: mail ***@example.com"), "{text}");

    let out = redact(&["--json"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let email = findings.iter().find(|f| f["type"] == "email").unwrap();
    let (start, end) = (
        email["start"].as_u64().unwrap() as usize,
        email["end"].as_u64().unwrap() as usize,
    );
    // "é" is two bytes: byte offsets, not characters.
    assert_eq!(&input.as_bytes()[start..end], b"jane.doe@example.com");
    assert!(email["confidence"].as_f64().unwrap() > 0.5);
    assert!(email["detector"].is_string());
    assert!(findings.iter().any(|f| f["type"] == "credit_card"));
}

#[test]
fn json_documents_keep_their_structure() {
    let doc = json!({"user": {"email": "jane.doe@example.com", "age": 41},
                     "notes": ["call +44 20 7946 0958", "nothing here"]});
    let out = redact(&["--format", "json"], doc.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0));
    let red: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(red["user"]["age"], 41);
    assert_eq!(red["notes"][1], "nothing here");
    assert_eq!(red["notes"].as_array().unwrap().len(), 2);
    assert!(!red.to_string().contains("jane.doe"), "{red}");
    assert!(!red.to_string().contains("7946 0958"), "{red}");
}

#[test]
fn bad_input_exits_2_with_a_code_and_no_echo() {
    let mut invalid = b"secret jane.doe@example.com ".to_vec();
    invalid.push(0xff);
    let out = redact(&[], &invalid);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AMAS-DP-"), "{err}");
    assert!(!err.contains("jane.doe"), "{err}");

    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let out = redact(&["--format", "json"], deep.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AMAS-DP-0002"));
}
