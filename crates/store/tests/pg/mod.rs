//! The real PostgreSQL of the machine for the store's tests (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`): each test in a schema of its own.

#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]

use amas_store::PostgresStore;

pub fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store in a new schema named `<prefix>_<uuid>`, with a pool of `connections`.
pub async fn fresh_store(prefix: &str, connections: u32) -> PostgresStore {
    let schema = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::connect_in_schema(&database_url(), connections, &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

/// A second process on the same schema as `store`.
pub async fn other_process(store: &PostgresStore) -> PostgresStore {
    let schema = store.schema().expect("own schema");
    PostgresStore::connect_in_schema(&database_url(), 4, schema)
        .await
        .expect("second connection")
}
