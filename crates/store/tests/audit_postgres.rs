//! The audit conformance suite against a real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), one schema per test, and two processes appending
//! to one chain.

#![expect(clippy::expect_used, clippy::panic, reason = "tests")]

use std::sync::Arc;

use amas_store::PostgresStore;
use amas_store::audit::{AuditDecision, AuditLog, AuditRecord, conformance::test_signer, verify};
use amas_types::Principal;

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn fresh_store() -> Arc<PostgresStore> {
    let schema = format!("amas_audit_{}", uuid::Uuid::now_v7().simple());
    let store = PostgresStore::connect_in_schema(&database_url(), 8, &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"));
    Arc::new(store)
}

async fn drop_store(store: Arc<PostgresStore>) {
    store.drop_schema().await.expect("drop test schema");
}

amas_store::audit_conformance_tests!(fresh_store, drop_store);

/// Two AMAS processes on one database append to one chain: no fork, no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_append_to_one_chain() {
    let first = fresh_store().await;
    let schema = first.schema().expect("own schema").to_owned();
    let second = Arc::new(
        PostgresStore::connect_in_schema(&database_url(), 4, &schema)
            .await
            .expect("second connection"),
    );
    let record = || {
        AuditRecord::new(
            &Principal::local_operator(),
            "authorize",
            "tool_call",
            AuditDecision::Deny,
        )
    };
    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone()] {
        #[expect(
            clippy::disallowed_methods,
            reason = "test scaffolding: a server or a race that ends with the test"
        )]
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                store.append(&[record(), record()]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = verify(first.as_ref(), &test_signer().verifier(), 1, None)
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records_checked, 80);
    second.close().await;
    drop_store(first).await;
}
