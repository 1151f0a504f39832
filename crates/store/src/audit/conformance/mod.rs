//! The conformance suite every [`AuditLog`] backend passes: the chain, verification against
//! each kind of tampering, purges, queries and the batched writer. Like the journal suite
//! ([`crate::conformance`]), each check takes a fresh store and returns a
//! [`CheckFailure`](crate::conformance::CheckFailure) instead of panicking.
//!
//! Tampering needs raw SQL with the append-only guards off, which is what [`Tamper`] gives; a
//! backend's test runs the suite with [`audit_conformance_tests!`](crate::audit_conformance_tests):
//!
//! ```text
//! amas_store::audit_conformance_tests!(|| async {
//!     std::sync::Arc::new(amas_store::SqliteStore::in_memory().await.unwrap())
//! });
//! ```

mod checks;
mod fixtures;
mod writer;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;

use super::AuditLog;
use crate::{PostgresStore, SqliteStore, StoreError};

pub use checks::{
    appends_chain_and_roundtrip, changing_any_field_is_detected, concurrent_appends_never_fork,
    deleting_a_record_is_detected, forged_checkpoints_are_detected,
    guards_refuse_updates_and_deletes, purged_details_still_verify, queries_filter_and_page,
    range_verification_checks_only_the_range, reordering_is_detected,
    rewritten_chain_is_caught_by_its_checkpoint,
};
pub use fixtures::test_signer;
pub use writer::{writer_checkpoints_every_n_records, writer_shutdown_loses_nothing};

/// Direct database access, as an attacker (or a careless operator) with the file or a
/// superuser login has it. For tests only.
#[async_trait]
pub trait Tamper: AuditLog {
    /// Runs `sql` (one or more statements) with the append-only guards disabled.
    async fn tamper(&self, sql: &str) -> Result<(), StoreError>;

    /// Runs `sql` as AMAS's own connections would, guards in force.
    async fn exec(&self, sql: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl Tamper for SqliteStore {
    async fn tamper(&self, sql: &str) -> Result<(), StoreError> {
        let unguard = "DROP TRIGGER IF EXISTS audit_log_no_delete; \
             DROP TRIGGER IF EXISTS audit_log_only_redact; \
             DROP TRIGGER IF EXISTS audit_checkpoints_no_update; \
             DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;";
        sqlx::raw_sql(AssertSqlSafe(format!("{unguard} {sql}")))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn exec(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Tamper for PostgresStore {
    async fn tamper(&self, sql: &str) -> Result<(), StoreError> {
        let unguard = "ALTER TABLE audit_log DISABLE TRIGGER USER; \
             ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;";
        sqlx::raw_sql(AssertSqlSafe(format!("{unguard} {sql}")))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn exec(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// One `#[tokio::test]` per audit conformance check, for the store made by `$make` (an
/// `Arc<S>` with `S: Tamper`); the optional second closure tears the store down.
#[macro_export]
macro_rules! audit_conformance_tests {
    ($make:expr) => {
        $crate::audit_conformance_tests!($make, |_store| async {});
    };
    ($make:expr, $teardown:expr) => {
        $crate::__audit_conformance_case!($make, $teardown, appends_chain_and_roundtrip);
        $crate::__audit_conformance_case!($make, $teardown, changing_any_field_is_detected);
        $crate::__audit_conformance_case!($make, $teardown, deleting_a_record_is_detected);
        $crate::__audit_conformance_case!($make, $teardown, reordering_is_detected);
        $crate::__audit_conformance_case!($make, $teardown, forged_checkpoints_are_detected);
        $crate::__audit_conformance_case!(
            $make,
            $teardown,
            rewritten_chain_is_caught_by_its_checkpoint
        );
        $crate::__audit_conformance_case!(
            $make,
            $teardown,
            range_verification_checks_only_the_range
        );
        $crate::__audit_conformance_case!($make, $teardown, purged_details_still_verify);
        $crate::__audit_conformance_case!($make, $teardown, guards_refuse_updates_and_deletes);
        $crate::__audit_conformance_case!($make, $teardown, concurrent_appends_never_fork);
        $crate::__audit_conformance_case!($make, $teardown, queries_filter_and_page);
        $crate::__audit_conformance_case!($make, $teardown, writer_shutdown_loses_nothing);
        $crate::__audit_conformance_case!($make, $teardown, writer_checkpoints_every_n_records);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __audit_conformance_case {
    ($make:expr, $teardown:expr, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let store = ($make)().await;
            let result = $crate::audit::conformance::$check(store.clone()).await;
            ($teardown)(store).await;
            if let Err(failure) = result {
                panic!("{}: {failure}", stringify!($check));
            }
        }
    };
}
