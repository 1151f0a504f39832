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
pub(crate) mod fixtures;
mod witness;
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
#[cfg(test)]
pub(crate) use fixtures::full_record;
pub use fixtures::test_signer;
pub use witness::{
    a_missing_witness_is_reported, disabled_guards_are_reported,
    witness_catches_a_rewritten_record, witness_catches_a_truncated_tail,
    witness_catches_an_emptied_log,
};
pub use writer::{
    writer_checkpoints_after_the_interval, writer_checkpoints_every_n_records,
    writer_shutdown_loses_nothing,
};

/// Direct database access, as an attacker (or a careless operator) with the file or a
/// superuser login has it. For tests only.
#[async_trait]
pub trait Tamper: AuditLog {
    /// Runs `sql` (one or more statements) with the append-only guards off, then puts them back
    /// as installed: what an attacker who covers their tracks does.
    async fn tamper(&self, sql: &str) -> Result<(), StoreError>;

    /// Turns the append-only guards off and leaves them off (SQLite: drops the triggers;
    /// PostgreSQL: `ALTER TABLE ... DISABLE TRIGGER`, which the tables' owner may do).
    async fn unguard(&self) -> Result<(), StoreError>;

    /// Empties the audit log and its checkpoints the cheapest way the backend allows: on
    /// PostgreSQL `TRUNCATE`, which fires no row trigger, so the guards in force do not stop it.
    async fn empty_log(&self) -> Result<(), StoreError>;

    /// Replaces one guard with one of the same name that does nothing.
    async fn disarm(&self) -> Result<(), StoreError>;

    /// Runs `sql` as AMAS's own connections would, guards in force.
    async fn exec(&self, sql: &str) -> Result<(), StoreError>;
}

const SQLITE_UNGUARD: &str = "DROP TRIGGER IF EXISTS audit_log_no_delete; \
     DROP TRIGGER IF EXISTS audit_log_only_redact; \
     DROP TRIGGER IF EXISTS audit_checkpoints_no_update; \
     DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;";

#[async_trait]
impl Tamper for SqliteStore {
    async fn tamper(&self, sql: &str) -> Result<(), StoreError> {
        let reguard: String = super::guards::sqlite_triggers()
            .into_iter()
            .map(|(_, create)| format!("{create};\n"))
            .collect();
        sqlx::raw_sql(AssertSqlSafe(format!("{SQLITE_UNGUARD} {sql};\n{reguard}")))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn unguard(&self) -> Result<(), StoreError> {
        self.exec(SQLITE_UNGUARD).await
    }

    async fn empty_log(&self) -> Result<(), StoreError> {
        self.tamper("DELETE FROM audit_log; DELETE FROM audit_checkpoints")
            .await
    }

    async fn disarm(&self) -> Result<(), StoreError> {
        self.exec(
            "DROP TRIGGER audit_log_no_delete; \
             CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END;",
        )
        .await
    }

    async fn exec(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

const POSTGRES_UNGUARD: &str = "ALTER TABLE audit_log DISABLE TRIGGER USER; \
     ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;";

#[async_trait]
impl Tamper for PostgresStore {
    async fn tamper(&self, sql: &str) -> Result<(), StoreError> {
        let reguard = "ALTER TABLE audit_log ENABLE TRIGGER USER; \
             ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;";
        sqlx::raw_sql(AssertSqlSafe(format!(
            "{POSTGRES_UNGUARD} {sql}; {reguard}"
        )))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn unguard(&self) -> Result<(), StoreError> {
        self.exec(POSTGRES_UNGUARD).await
    }

    async fn empty_log(&self) -> Result<(), StoreError> {
        self.exec("TRUNCATE audit_log, audit_checkpoints").await
    }

    async fn disarm(&self) -> Result<(), StoreError> {
        self.exec(
            "CREATE OR REPLACE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN RETURN NEW; END; $$",
        )
        .await
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
        $crate::__audit_conformance_case!($make, $teardown, writer_checkpoints_after_the_interval);
        $crate::__audit_conformance_case!($make, $teardown, witness_catches_a_truncated_tail);
        $crate::__audit_conformance_case!($make, $teardown, witness_catches_a_rewritten_record);
        $crate::__audit_conformance_case!($make, $teardown, witness_catches_an_emptied_log);
        $crate::__audit_conformance_case!($make, $teardown, disabled_guards_are_reported);
        $crate::__audit_conformance_case!($make, $teardown, a_missing_witness_is_reported);
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
