//! The real PostgreSQL of the machine for end-to-end tests with several `amas` processes:
//! `AMAS_TEST_DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/test`. Each test works in
//! a schema of its own ([`fresh_schema`]) and drops it at the end.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub async fn connect() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

/// A schema name no other test uses (`prefix` says which test it belongs to).
pub fn fresh_schema(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The environment that points an `amas` process at `schema`, with leases of `lease_ttl`.
pub fn pg_env(schema: &str, lease_ttl: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.to_owned()),
        ("AMAS__STORE__LEASE_TTL", lease_ttl.to_owned()),
        ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
    ]
}

pub async fn drop_schema(schema: &str) {
    let mut conn = connect().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}
