//! Evidence packs end to end on a real (in-memory SQLite) log: a task's records interleaved
//! with another task's are proven without the other's; any flipped byte fails the check.

use std::sync::Arc;

use ed25519_dalek::SigningKey;

use super::*;
use crate::SqliteStore;
use crate::audit::conformance::full_record;
use crate::audit::{AuditLog, AuditWriter, AuditWriterConfig, CheckpointSigner, Ed25519Signer};

fn signer(seed: u8) -> Ed25519Signer {
    Ed25519Signer::with_thumbprint(SigningKey::from_bytes(&[seed; 32]))
}

/// 30 records alternating between two tasks, written by the writer (so checkpoints carry tree
/// roots): returns the store and both task ids.
async fn log_of_two_tasks() -> (Arc<SqliteStore>, TaskId, TaskId) {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let config = AuditWriterConfig {
        checkpoint_every: 7,
        max_batch: 3,
        ..AuditWriterConfig::default()
    };
    let writer = AuditWriter::start(store.clone(), Arc::new(signer(5)), config);
    let (a, b) = (TaskId::new(), TaskId::new());
    let base = chrono::Utc::now() - chrono::Duration::hours(1);
    for i in 0..30u64 {
        let task = if i % 2 == 0 { a } else { b };
        let mut record = full_record(i, task);
        // Distinct timestamps, one second apart, so time ranges cut where the test says.
        record.timestamp = base + chrono::Duration::seconds(i64::try_from(i).unwrap());
        writer.record(record).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    (store, a, b)
}

async fn pack_of(store: &SqliteStore, scope: Scope) -> Vec<u8> {
    let keys = signer(5).verifier();
    let options = ExportOptions {
        scope,
        keys: &keys,
        witness: None,
        generator: "test",
    };
    let mut out = Vec::new();
    export_pack(store, &options, &mut out).await.unwrap();
    out
}

/// A task's pack holds its 15 records and no other, proves each of them against one signed
/// root, and lists the bundle they name; checked with the pack's keys or trusted ones.
#[tokio::test]
async fn a_task_pack_proves_its_records_and_only_them() {
    let (store, a, b) = log_of_two_tasks().await;
    let pack = pack_of(&store, Scope::Task { task_id: a }).await;
    let text = String::from_utf8(pack.clone()).unwrap();
    assert_eq!(text.lines().count(), 4 + 15 + 1, "{text}");
    let report = check_pack(&pack, None).unwrap();
    assert_eq!(report.records, 15);
    assert_eq!((report.first_seq, report.last_seq), (1, 29));
    assert_eq!(report.keys_from, "pack");
    assert_eq!(report.key_ids, vec![signer(5).key_id().to_owned()]);
    assert_eq!(report.policy_bundles.len(), 1);
    assert_eq!(report.policy_bundles[0].records, 15);
    assert!(report.checkpoints[0] >= 29);

    let trusted = check_pack(&pack, Some(&signer(5).verifier())).unwrap();
    assert_eq!(trusted.keys_from, "trusted");
    let err = check_pack(&pack, Some(&signer(6).verifier())).unwrap_err();
    assert!(err.message.contains("does not verify"), "{err}");

    // The other task's records are not in it (their hashes may be: as a neighbour's
    // `prev_hash`; a hash shows nothing of a record).
    assert!(!text.contains(&b.to_string()), "the other task leaked");
    assert_eq!(text.matches("\"type\":\"record\"").count(), 15);
}

/// A time-range pack holds every record in the range.
#[tokio::test]
async fn a_time_pack_holds_the_range() {
    let (store, _, _) = log_of_two_tasks().await;
    let all = store
        .query(&crate::audit::AuditQuery::default())
        .await
        .unwrap();
    let scope = Scope::Time {
        since: Some(all[4].record.timestamp),
        until: Some(all[20].record.timestamp),
    };
    let report = check_pack(&pack_of(&store, scope).await, None).unwrap();
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (16, 5, 20)
    );
}

/// A flipped bit at every byte of the pack makes the check fail: in a record, a proof, a
/// signature, the keys, the manifest, a newline, or the end line itself.
#[tokio::test]
async fn any_flipped_byte_fails_the_check() {
    let (store, _, _) = log_of_two_tasks().await;
    // A small pack keeps this exhaustive loop quick: the first five records.
    let all = store
        .query(&crate::audit::AuditQuery::default())
        .await
        .unwrap();
    let scope = Scope::Time {
        since: None,
        until: Some(all[5].record.timestamp),
    };
    let pack = pack_of(&store, scope).await;
    assert_eq!(check_pack(&pack, None).unwrap().records, 5);
    for i in 0..pack.len() {
        // The lowest bit, and for letters the case bit on alternate bytes: hex digits read
        // the same in either case, so only the end line's digest catches those.
        let bit = if i % 2 == 1 && pack[i].is_ascii_alphabetic() {
            0x20
        } else {
            0x01
        };
        let mut bad = pack.clone();
        bad[i] ^= bit;
        assert!(
            check_pack(&bad, None).is_err(),
            "flipping {bit:#x} at byte {i} ({:?}) went unnoticed",
            String::from_utf8_lossy(&pack[i.saturating_sub(20)..(i + 20).min(pack.len())])
        );
    }
    let cut = &pack[..pack.len() - 1];
    assert!(
        check_pack(cut, None)
            .unwrap_err()
            .message
            .contains("cut off")
    );
}

/// Nothing to export and records no checkpoint covers yet are refused with their reason.
#[tokio::test]
async fn uncovered_or_empty_scopes_are_refused() {
    let store = SqliteStore::in_memory().await.unwrap();
    let keys = signer(5).verifier();
    let task = TaskId::new();
    let options = ExportOptions {
        scope: Scope::Task { task_id: task },
        keys: &keys,
        witness: None,
        generator: "test",
    };
    let err = export_pack(&store, &options, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ExportError::Empty), "{err}");
    store.append(&[full_record(1, task)]).await.unwrap();
    let err = export_pack(&store, &options, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExportError::NotCovered { last_seq: 1 }),
        "{err}"
    );
    assert_eq!(err.code(), "AMAS-AUDIT-0008");
}
