//! The audit conformance suite against SQLite, in memory and on disk, and what a file on disk
//! adds: the chain survives a reopen and goes on from its head.

use std::sync::Arc;

use amas_store::SqliteStore;
use amas_store::audit::{AuditDecision, AuditLog, AuditRecord, conformance::test_signer, verify};
use amas_types::Principal;

mod in_memory {
    use super::*;

    amas_store::audit_conformance_tests!(|| async {
        Arc::new(SqliteStore::in_memory().await.expect("in-memory store"))
    });
}

mod on_disk {
    use super::*;

    amas_store::audit_conformance_tests!(
        || async {
            let dir = tempfile::tempdir().expect("temp dir").keep();
            Arc::new(SqliteStore::open(&dir).await.expect("store on disk"))
        },
        |store: Arc<SqliteStore>| async move {
            store.close().await;
            if let Some(dir) = store.data_dir() {
                std::fs::remove_dir_all(dir).expect("remove temp dir");
            }
        }
    );
}

/// Records written before a restart still verify after it, and new ones link onto them.
#[tokio::test]
async fn the_chain_continues_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let record = || {
        AuditRecord::new(
            &Principal::local_operator(),
            "authorize",
            "task_submit",
            AuditDecision::Allow,
        )
    };
    let first = {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let first = store.append(&[record(), record()]).await.unwrap();
        store.close().await;
        first
    };
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let next = store.append(&[record()]).await.unwrap();
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash, first[1].hash);
    let report = verify(&store, &test_signer().verifier(), 1, None)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records_checked, 3);
}
