//! The audit key and the witness with the real `amas` binary (security review M3): `amas serve`
//! creates an audit key of its own beside the token key; `amas audit verify` needs only the
//! public key set, never creates a key, and checks the log against the witness file, which
//! catches what the database alone cannot (the review's truncated tail, a record rewritten and
//! re-signed with the stolen key).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use amas_store::SqliteStore;
use amas_store::audit::conformance::Tamper;
use amas_store::audit::{AuditLog, AuditQuery};
use serde_json::Value;

use common::{amas, default_witness, stdout_json, write_audit_records};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `amas serve` creates the audit key (0600) beside, and different from, the token key, and
/// publishes its public part; its start and stop are checkpointed into the witness. Verify
/// passes with the public key alone, never writes a key, and without any public key fails
/// with AMAS-AUDIT-0003 and what to do.
#[test]
fn serve_creates_the_audit_key_and_verify_needs_only_its_public_part() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = common::Server::start(&data, None);
    let token = server.token("alice", &["viewer"]);
    server.terminate();
    let keys = data.join("keys");
    assert_eq!(
        files_in(&keys),
        [
            "audit-ed25519.pk8",
            "audit-public.jwks.json",
            "jwt-ed25519.pk8",
            "redact-hmac.key"
        ]
    );
    #[cfg(unix)]
    for name in ["audit-ed25519.pk8", "audit-public.jwks.json"] {
        assert_eq!(mode(&keys.join(name)), 0o600, "{name}");
    }
    #[cfg(unix)]
    assert_eq!(mode(&default_witness(&data)), 0o600);
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(keys.join("audit-public.jwks.json")).unwrap())
            .unwrap();
    let audit_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert!(jwks["keys"][0].get("d").is_none(), "public part only");
    // The token's kid is the token key's; the audit key is another.
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&base64_url_decode(header)).unwrap();
    assert_ne!(header["kid"].as_str().unwrap(), audit_kid);

    let witness = std::fs::read_to_string(default_witness(&data)).unwrap();
    let witnessed: Vec<Value> = witness
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !witnessed.is_empty(),
        "the shutdown checkpoint is witnessed"
    );
    assert!(witnessed.iter().all(|c| c["key_id"] == audit_kid.as_str()));

    // `public-keys` prints the published set, and that is all verify needs: both private keys
    // gone, verify passes and writes no key.
    let out = amas(&data, None, &["audit", "public-keys"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), jwks);
    let exported = root.path().join("audit-keys.json");
    std::fs::write(&exported, &out.stdout).unwrap();
    std::fs::remove_file(keys.join("audit-ed25519.pk8")).unwrap();
    std::fs::remove_file(keys.join("jwt-ed25519.pk8")).unwrap();
    let out = amas(&data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["intact"], true);
    assert!(report["roots_checked"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["witness"]["checkpoints"].as_u64().unwrap(),
        witnessed.len() as u64
    );
    assert_eq!(
        files_in(&keys),
        ["audit-public.jwks.json", "redact-hmac.key"],
        "verify created no key"
    );

    // No public key at all: a clear error with its code, exit 2, and still no key written.
    std::fs::remove_file(keys.join("audit-public.jwks.json")).unwrap();
    let out = amas(&data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains("AMAS-AUDIT-0003"), "{message}");
    assert!(message.contains("--public-keys"), "{message}");
    assert!(message.contains("never creates a key"), "{message}");
    assert_eq!(files_in(&keys), ["redact-hmac.key"]);
    let out = amas(&data, None, &["audit", "public-keys"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("AMAS-AUDIT-0003"));

    // The key set copied off the machine verifies the log.
    let out = amas(
        &data,
        None,
        &[
            "audit",
            "verify",
            "--public-keys",
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(files_in(&keys), ["redact-hmac.key"]);
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// The review's proof on SQLite: the triggers dropped, the newest records and the checkpoints
/// covering them deleted. The database alone can no longer tell (`--no-witness` passes once
/// the triggers are back; reports them while they are gone); against the witness, verify
/// names the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_catches_the_reviews_truncated_tail() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    write_audit_records(data, &[(amas_types::TaskId::new(), 10)]).await;
    let out = amas(data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Moving the witness away is not a way out while the log has checkpoints written to it.
    let moved = data.join("moved.jsonl");
    std::fs::rename(default_witness(data), &moved).unwrap();
    let out = amas(data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["broken"]["reason"], "witness_missing");
    std::fs::rename(&moved, default_witness(data)).unwrap();

    let store = SqliteStore::open(data).await.unwrap();
    store.unguard().await.unwrap();
    store
        .exec("DELETE FROM audit_log WHERE seq > 6; DELETE FROM audit_checkpoints WHERE up_to_seq > 6")
        .await
        .unwrap();
    let out = amas(data, None, &["audit", "verify", "--no-witness"]);
    assert_eq!(out.status.code(), Some(1), "guards gone: {}", stderr(&out));
    let report = stdout_json(&out);
    assert!(
        report["broken"].is_null(),
        "the chain itself is consistent: {report}"
    );
    assert!(
        report["guard_problems"][0]
            .as_str()
            .unwrap()
            .contains("audit_log_no_delete"),
        "{report}"
    );
    // The attacker puts the guards back: the database alone is green again.
    store.tamper("SELECT 1").await.unwrap();
    store.close().await;
    let out = amas(data, None, &["audit", "verify", "--no-witness"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = amas(data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["code"], "AMAS-AUDIT-0006");
    assert_eq!(
        report["broken"]["reason"], "checkpoint_beyond_head",
        "{report}"
    );
    assert_eq!(report["broken"]["checkpoint_source"], "witness");
    assert!(report["broken"]["seq"].as_u64().unwrap() > 6);
    assert!(stderr(&out).contains("records were deleted from the end"));
}

/// Someone with the data directory has the audit key too: they change a decision, recompute
/// the chain, and replace the checkpoints with ones signed by the real key. The database alone
/// verifies; the witness still holds the old heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_catches_a_record_rewritten_and_re_signed() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    write_audit_records(data, &[(amas_types::TaskId::new(), 9)]).await;
    let store = SqliteStore::open(data).await.unwrap();
    store
        .tamper(
            "UPDATE audit_log SET decision = 'allow' WHERE seq = 2; DELETE FROM audit_checkpoints",
        )
        .await
        .unwrap();
    let mut prev = store
        .query(&AuditQuery {
            to_seq: Some(1),
            ..AuditQuery::default()
        })
        .await
        .unwrap()[0]
        .hash
        .clone();
    for mut rec in store
        .query(&AuditQuery {
            from_seq: 2,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
    {
        rec.prev_hash = prev;
        let hash = rec.computed_hash();
        store
            .tamper(&format!(
                "UPDATE audit_log SET prev_hash = '{}', hash = '{hash}' WHERE seq = {}",
                rec.prev_hash, rec.seq
            ))
            .await
            .unwrap();
        prev = hash;
    }
    // Re-sign the new head with the stolen key, tree root and all.
    let head = store.head().await.unwrap().unwrap();
    let mut tree = amas_store::audit::merkle::Frontier::default();
    for link in store.links(1, head.seq, 1000).await.unwrap() {
        tree.push(amas_store::audit::merkle::leaf(&link.hash).unwrap());
    }
    let key = amas_governance::AuditKey::load_or_create(data).unwrap();
    let root = amas_store::audit::merkle::to_hex(&tree.root());
    let forged = amas_store::audit::Checkpoint::sign_tree(&head, &root, &key.signer()).unwrap();
    store.add_checkpoint(&forged).await.unwrap();
    store.close().await;

    let out = amas(data, None, &["audit", "verify", "--no-witness"]);
    assert_eq!(out.status.code(), Some(0), "re-signed: {}", stderr(&out));
    let out = amas(data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(
        report["broken"]["reason"], "checkpoint_mismatch",
        "{report}"
    );
    assert_eq!(report["broken"]["checkpoint_source"], "witness");
    assert!(report["broken"]["seq"].as_u64().unwrap() >= 2);

    // An edited witness line is an error of its own, not a shorter witness.
    let path = default_witness(data);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"hash\"", "\"hush\"", 1)).unwrap();
    let out = amas(data, None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("AMAS-AUDIT-0005"), "{}", stderr(&out));
}

/// A minimal HTTP sink on 127.0.0.1:0 (one request per connection) that keeps every body it is
/// `POST`ed and answers 201.
fn http_sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/checkpoints", listener.local_addr().unwrap());
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&kept);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(value) = serde_json::from_slice(&body)
            {
                sink.lock().unwrap().push(value);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, kept)
}

/// `audit.witness.http` set: `amas serve` posts each checkpoint to the sink as well as to the
/// file, and the shutdown checkpoint arrives before the process exits.
#[test]
fn serve_posts_checkpoints_to_an_http_witness() {
    let (url, kept) = http_sink();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = root.path().join("config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.yaml"),
        format!("audit:\n  witness:\n    http: {{ url: \"{url}\", timeout: 5s }}\n"),
    )
    .unwrap();
    let mut server = common::Server::start(&data, Some(&config));
    // Something to do before the SIGTERM, as in the other tests: the server has set up its
    // signal handling by the time a second command has run.
    server.token("alice", &["viewer"]);
    server.terminate();
    let filed: Vec<Value> = std::fs::read_to_string(default_witness(&data))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!filed.is_empty(), "log: {}", common::read_log(&data));
    assert_eq!(
        *kept.lock().unwrap(),
        filed,
        "the sink got what the file got"
    );
    let out = amas(&data, Some(&config), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
