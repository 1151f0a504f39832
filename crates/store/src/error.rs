//! The store's typed errors, each with a stable public code documented under `docs/errors/`.

use amas_types::codes;
use amas_types::{TaskId, TaskStatus};

/// Why a store operation failed. Messages never contain connection strings or credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended first: the journal's last seq is not the one the caller expected.
    #[error("journal conflict on task {task}: expected last seq {expected}, found {actual}")]
    Conflict {
        task: TaskId,
        expected: u64,
        actual: u64,
    },
    /// The batch breaks a journal rule (empty, or a misplaced submission).
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The database failed or could not be reached.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored row does not decode: the data was changed outside AMAS or by an incompatible version.
    #[error("corrupt journal data: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// The store was configured with a value it cannot use.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// A purge was asked for a task that has not ended (or does not exist): running tasks are
    /// never purged.
    #[error("task {task} cannot be purged: it is {status}")]
    NotPurgeable { task: TaskId, status: String },
    /// The task has ended (succeeded, failed or was cancelled): its journal takes no more
    /// events. A cancellation is a fence: nothing a step still running does after it is
    /// recorded.
    #[error("task {task} has ended ({}); its journal takes no more events", .status.as_str())]
    TaskEnded { task: TaskId, status: TaskStatus },
    /// The store's writer is shut down (or was started without a journal): nothing more is
    /// appended through it.
    #[error("the store writer is shut down")]
    Closed,
    /// The data directory, or something in it, cannot be made accessible to its owner only.
    #[error("data directory not private: {0}")]
    NotPrivate(String),
    /// A newer AMAS migrated the database: this binary does not know its schema and refuses
    /// to use it.
    #[error(
        "the database schema (version {database}) is newer than this binary knows (version \
         {binary}); run the AMAS version that migrated it, or a newer one"
    )]
    SchemaNewer { database: i64, binary: i64 },
    /// Migrations are pending and starts do not migrate (`store.migrate_on_start: false`).
    #[error(
        "the database schema (version {database}) is behind this binary (version {binary}, \
         {pending} migrations pending); run `amas db migrate` first"
    )]
    SchemaBehind {
        database: i64,
        binary: i64,
        pending: usize,
    },
    /// A worker's append carried a lease epoch that is no longer the task's current one, or
    /// its lease expired: another worker may run the task now. Nothing was written; the
    /// worker stops the task.
    #[error(
        "task {task}: the lease with fencing epoch {epoch} is no longer held (expired, released \
         or taken over by another worker); nothing was written"
    )]
    LeaseLost { task: TaskId, epoch: u64 },
    /// `amas db copy` found data in the target that is not a copy of the source.
    #[error("the copy target is not empty: {0}; copy into an empty database or schema")]
    TargetNotEmpty(String),
}

impl StoreError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => codes::STORE_CONFLICT,
            Self::InvalidAppend(_) => codes::STORE_INVALID_APPEND,
            Self::Backend(_) => codes::STORE_BACKEND,
            Self::Corrupt(_) => codes::STORE_CORRUPT,
            Self::Migration(_) => codes::STORE_MIGRATION,
            Self::InvalidConfig(_) => codes::STORE_CONFIG,
            Self::NotPurgeable { .. } => codes::STORE_NOT_PURGEABLE,
            Self::Closed => codes::STORE_CLOSED,
            Self::NotPrivate(_) => codes::STORE_NOT_PRIVATE,
            Self::TaskEnded { .. } => codes::STORE_TASK_ENDED,
            Self::SchemaNewer { .. } => codes::STORE_SCHEMA_NEWER,
            Self::SchemaBehind { .. } => codes::STORE_SCHEMA_BEHIND,
            Self::TargetNotEmpty(_) => codes::STORE_TARGET_NOT_EMPTY,
            Self::LeaseLost { .. } => codes::STORE_LEASE_LOST,
        }
    }

    /// True when retrying the same call later may succeed (the backend was busy or unreachable).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Backend(_) => true,
            Self::Conflict { .. }
            | Self::InvalidAppend(_)
            | Self::Corrupt(_)
            | Self::Migration(_)
            | Self::InvalidConfig(_)
            | Self::NotPurgeable { .. }
            | Self::Closed
            | Self::TaskEnded { .. }
            | Self::NotPrivate(_)
            | Self::SchemaNewer { .. }
            | Self::SchemaBehind { .. }
            | Self::TargetNotEmpty(_)
            | Self::LeaseLost { .. } => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(describe(&e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => Self::Migration(describe(&inner)),
            sqlx::migrate::MigrateError::ExecuteMigration(inner, version) => {
                Self::Migration(format!("migration {version}: {}", describe(&inner)))
            }
            other => Self::Migration(other.to_string()),
        }
    }
}

/// A description of a sqlx error that is safe to show. Configuration and TLS errors can quote the
/// connection string, so only their kind is kept; database messages name objects, not secrets.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("database error {code}: {}", db.message()),
            None => format!("database error: {}", db.message()),
        },
        sqlx::Error::Io(io) => format!("I/O error: {io}"),
        sqlx::Error::Configuration(_) => "invalid connection configuration".to_owned(),
        sqlx::Error::Tls(_) => "TLS error while connecting".to_owned(),
        sqlx::Error::Protocol(msg) => format!("protocol error: {msg}"),
        sqlx::Error::PoolTimedOut => "timed out waiting for a database connection".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool is closed".to_owned(),
        sqlx::Error::WorkerCrashed => "the database worker crashed".to_owned(),
        sqlx::Error::RowNotFound => "expected row not found".to_owned(),
        sqlx::Error::ColumnNotFound(col) => format!("column not found: {col}"),
        sqlx::Error::ColumnDecode { index, source } => {
            format!("cannot decode column {index}: {source}")
        }
        sqlx::Error::Decode(source) => format!("cannot decode value: {source}"),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are public and must never change or repeat.
    #[test]
    fn codes_are_distinct_and_stable() {
        let all = [
            StoreError::Conflict {
                task: TaskId::new(),
                expected: 1,
                actual: 2,
            },
            StoreError::InvalidAppend(String::new()),
            StoreError::Backend(String::new()),
            StoreError::Corrupt(String::new()),
            StoreError::Migration(String::new()),
            StoreError::InvalidConfig(String::new()),
            StoreError::NotPurgeable {
                task: TaskId::new(),
                status: String::new(),
            },
            StoreError::Closed,
            StoreError::TaskEnded {
                task: TaskId::new(),
                status: TaskStatus::Cancelled,
            },
            StoreError::NotPrivate(String::new()),
            StoreError::SchemaNewer {
                database: 6,
                binary: 5,
            },
            StoreError::SchemaBehind {
                database: 4,
                binary: 5,
                pending: 1,
            },
            StoreError::TargetNotEmpty(String::new()),
            StoreError::LeaseLost {
                task: TaskId::new(),
                epoch: 1,
            },
        ];
        let codes: Vec<_> = all.iter().map(StoreError::code).collect();
        assert_eq!(
            codes,
            [
                "AMAS-STORE-0001",
                "AMAS-STORE-0002",
                "AMAS-STORE-0003",
                "AMAS-STORE-0004",
                "AMAS-STORE-0005",
                "AMAS-STORE-0006",
                "AMAS-STORE-0007",
                "AMAS-STORE-0008",
                "AMAS-STORE-0010",
                "AMAS-STORE-0009",
                "AMAS-STORE-0011",
                "AMAS-STORE-0012",
                "AMAS-STORE-0013",
                "AMAS-STORE-0014"
            ]
        );
    }

    /// A malformed URL may contain a password; the error must not repeat it.
    #[test]
    fn configuration_errors_hide_the_connection_string() {
        let source: Box<dyn std::error::Error + Send + Sync> =
            "bad url postgres://u:hunter2@h/db".into();
        let err = StoreError::from(sqlx::Error::Configuration(source));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(err.code(), "AMAS-STORE-0003");
    }
}
