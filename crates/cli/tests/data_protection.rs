//! Data protection end to end through the real binary: a code review whose input carries an
//! email address and a card number goes to an OpenAI-compatible provider trusted only for
//! `public` and `internal` data (the mock server records every request). The provider never
//! receives the raw values; the result is classified `restricted` with tags `PCI` and `PII`; the
//! lineage graph shows why; and 31 days later `amas retention run` purges the payloads, leaving
//! tombstones the API shows, with the audit log still verifying and no raw value left in the
//! data directory's files.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::{Value, json};

use amas_test_util::{Behaviour, MockOpenAi};
use common::{Server, amas};

const MODEL: &str = "gpt-test";
const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";

/// Every file under `dir`, read as bytes, that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// A fresh installation whose only provider is the mock, trusted for public and internal data.
struct Install {
    mock: MockOpenAi,
    _root: tempfile::TempDir,
    data: std::path::PathBuf,
    config: std::path::PathBuf,
}

/// An installation whose model answers `reply` once.
async fn untrusted_install(reply: Value) -> Install {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::reply(reply)]);
    let root = tempfile::tempdir().unwrap();
    let (data, config) = (root.path().join("data"), root.path().join("config"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: {MODEL}\n    max_retries: 0\n    trusted_for: [public, internal]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    Install {
        mock,
        _root: root,
        data,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pii_never_reaches_an_untrusted_provider_is_classified_traced_and_purged() {
    let Install {
        mock,
        _root,
        data,
        config,
    } = untrusted_install(
        json!({"issues": ["the card number is logged"], "verdict": "request_changes"}),
    )
    .await;
    let mut server = Server::start(&data, Some(&config));
    let admin = server.token("root", &["admin"]);
    let (status, created) = server
        .post(
            &admin,
            "/api/v1/tasks",
            &json!({
                "task_type": "code_review",
                "title": "Review the billing handler",
                "description": format!("Customer {EMAIL} paid with {CARD}; check what we log."),
            }),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let task = server
        .wait_task(&admin, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");

    // The provider got the prompt, redacted: the masked forms, never the values.
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].body.to_string();
    assert!(!body.contains(EMAIL) && !body.contains(CARD), "{body}");
    assert!(!body.contains(&CARD.replace(' ', "")), "{body}");
    assert!(
        body.contains("1111"),
        "the mask keeps the last digits: {body}"
    );

    // The result is restricted, PCI and PII, and the lineage says why.
    assert_eq!(
        task["classification"]["classification"], "restricted",
        "{task}"
    );
    let tags: Vec<&str> = task["classification"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"PCI") && tags.contains(&"PII"), "{task}");
    let (status, lineage) = server
        .get(&admin, &format!("/api/v1/tasks/{id}/lineage"))
        .await;
    assert_eq!(status, 200, "{lineage}");
    let node = |id: &str| -> Value {
        lineage["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id}: {lineage}"))
    };
    let input = node("input");
    assert_eq!(input["level"], "restricted", "{lineage}");
    assert_eq!(input["why"]["findings"]["credit_card"], 1, "{lineage}");
    assert_eq!(input["why"]["findings"]["email"], 1, "{lineage}");
    let result = node("result");
    assert_eq!(result["level"], "restricted", "{lineage}");
    assert!(
        lineage["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "input" && e["to"] == "step:review"),
        "{lineage}"
    );
    assert!(!lineage.to_string().contains(EMAIL), "{lineage}");
    server.terminate();

    // 31 days on, past the 30 days restricted data is kept: purged, tombstoned, verifiable.
    let later = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let purge = amas(
        &data,
        Some(&config),
        &["retention", "run", "--format", "json", "--now", &later],
    );
    assert_eq!(
        purge.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
    let report: Value = serde_json::from_slice(&purge.stdout).unwrap();
    assert_eq!(report["tasks"][0]["task_id"], id.as_str(), "{report}");
    let verify = amas(&data, Some(&config), &["audit", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    let server = Server::start(&data, Some(&config));
    let admin = server.token("root", &["admin"]);
    let (status, events) = server
        .get(&admin, &format!("/api/v1/tasks/{id}/events"))
        .await;
    assert_eq!(status, 200, "{events}");
    let text = events.to_string();
    assert!(!text.contains(EMAIL) && !text.contains(CARD), "{text}");
    assert!(text.contains("$tombstone"), "{text}");
    let (status, task) = server.get(&admin, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["classification"]["classification"], "restricted");
    drop(server);
    for needle in [EMAIL, CARD] {
        let left = files_containing(&data, needle);
        assert!(left.is_empty(), "{needle} is still in {left:?}");
    }
}

/// Runs one code review whose description names `EMAIL` twice on a fresh installation whose
/// config directory's `dataprotect.yaml` hashes emails; returns the hash tokens the untrusted
/// provider received and the data directory's redaction key file mode.
async fn hashed_emails_sent() -> (Vec<String>, u32) {
    let Install {
        mock,
        _root,
        data,
        config,
    } = untrusted_install(json!({"issues": ["fine"], "verdict": "approve"})).await;
    let embedded = include_str!("../../../config/dataprotect.yaml");
    assert!(embedded.contains("    email: mask\n"));
    std::fs::write(
        config.join("dataprotect.yaml"),
        embedded.replace("    email: mask\n", "    email: hash\n"),
    )
    .unwrap();
    let server = Server::start(&data, Some(&config));
    let admin = server.token("root", &["admin"]);
    let (status, created) = server
        .post(
            &admin,
            "/api/v1/tasks",
            &json!({
                "task_type": "code_review",
                "title": "Review the mailer",
                "description": format!("Mail {EMAIL} twice: {EMAIL}."),
            }),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap();
    let task = server
        .wait_task(&admin, id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let body = mock.requests()[0].body.to_string();
    assert!(!body.contains(EMAIL), "{body}");
    let tokens: Vec<String> = body
        .match_indices("[EMAIL:")
        .map(|(at, _)| body[at..].chars().take_while(|c| *c != ']').collect())
        .collect();
    let key = data.join("keys").join("redact-hmac.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    (tokens, mode & 0o777)
}

/// A config directory's `dataprotect.yaml` replaces the embedded one in `amas serve` (emails
/// hashed instead of masked), and hash tokens are keyed per installation: the same address gives
/// one token within an installation and another one elsewhere, from an owner-only key file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dir_redaction_modes_apply_and_hash_tokens_are_keyed_per_installation() {
    let (first, mode) = hashed_emails_sent().await;
    assert!(first.len() >= 2, "{first:?}");
    assert!(first.iter().all(|t| t == &first[0]), "{first:?}");
    assert_eq!(mode, 0o600);
    let (second, _) = hashed_emails_sent().await;
    assert!(!second.is_empty());
    assert_ne!(first[0], second[0], "another installation, another key");
}
