//! The schema's version: the migrations a database has applied, the ones this binary would
//! apply, and whether the database was migrated by a newer binary (which this one must not
//! write to). What `amas db status` prints and what a start checks before it migrates.

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::{PgPool, SqlitePool};

use crate::StoreError;

/// One migration, as the database recorded it or as this binary ships it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    pub version: i64,
    pub description: String,
    /// When it was applied (the database's clock, as it stores it); `None` while pending.
    pub installed_on: Option<String>,
}

/// Where a database's schema stands against this binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The highest applied version; `None` for an empty database.
    pub version: Option<i64>,
    /// The highest version this binary ships.
    pub binary_version: i64,
    /// `current`, `pending` (the binary would migrate), `newer` (a newer binary migrated it:
    /// this one refuses to start) or `dirty` (a migration failed half-way).
    pub state: &'static str,
    pub applied: Vec<MigrationInfo>,
    pub pending: Vec<MigrationInfo>,
    /// Applied versions this binary does not know: the database is newer than the binary.
    pub unknown: Vec<i64>,
    /// A version whose migration started and failed.
    pub dirty: Option<i64>,
}

impl SchemaStatus {
    /// Compares what the database applied with what `migrator` ships.
    pub(crate) fn of(backend: &'static str, migrator: &Migrator, applied: Vec<Applied>) -> Self {
        let known: Vec<&sqlx::migrate::Migration> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let binary_version = known.iter().map(|m| m.version).max().unwrap_or(0);
        let dirty = applied.iter().find(|a| !a.success).map(|a| a.info.version);
        let applied: Vec<MigrationInfo> = applied
            .into_iter()
            .filter(|a| a.success)
            .map(|a| a.info)
            .collect();
        let pending = known
            .iter()
            .filter(|m| !applied.iter().any(|a| a.version == m.version))
            .map(|m| MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
                installed_on: None,
            })
            .collect::<Vec<_>>();
        let unknown = applied
            .iter()
            .map(|a| a.version)
            .filter(|v| !known.iter().any(|m| m.version == *v))
            .collect::<Vec<_>>();
        let state = if dirty.is_some() {
            "dirty"
        } else if !unknown.is_empty() {
            "newer"
        } else if !pending.is_empty() {
            "pending"
        } else {
            "current"
        };
        Self {
            backend,
            version: applied.iter().map(|a| a.version).max(),
            binary_version,
            state,
            applied,
            pending,
            unknown,
            dirty,
        }
    }

    /// The status of a database that does not exist yet: everything pending.
    #[must_use]
    pub fn empty(backend: &'static str) -> Self {
        let migrator = match backend {
            "postgres" => &crate::postgres::MIGRATOR,
            _ => &crate::sqlite::MIGRATOR,
        };
        Self::of(backend, migrator, Vec::new())
    }

    /// Refuses a database a newer binary migrated: its tables may mean what this binary does
    /// not know, and writing to them could corrupt what that binary relies on.
    ///
    /// # Errors
    /// [`StoreError::SchemaNewer`] when the database has migrations this binary lacks.
    pub fn refuse_newer(&self) -> Result<(), StoreError> {
        match self.unknown.iter().max() {
            Some(&database) => Err(StoreError::SchemaNewer {
                database,
                binary: self.binary_version,
            }),
            None => Ok(()),
        }
    }

    /// Refuses a database with migrations still to apply (when starts do not migrate).
    ///
    /// # Errors
    /// [`StoreError::SchemaBehind`] when migrations are pending.
    pub fn refuse_pending(&self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        Err(StoreError::SchemaBehind {
            database: self.version.unwrap_or(0),
            binary: self.binary_version,
            pending: self.pending.len(),
        })
    }
}

/// A row of sqlx's migrations table.
pub(crate) struct Applied {
    info: MigrationInfo,
    success: bool,
}

const APPLIED: &str = "SELECT version, description, CAST(installed_on AS TEXT) AS installed_on, \
                       success FROM _sqlx_migrations ORDER BY version";

/// `APPLIED`'s columns, read alike from either database.
type AppliedRow = (i64, String, Option<String>, bool);

fn applied(rows: Vec<AppliedRow>) -> Vec<Applied> {
    rows.into_iter()
        .map(|(version, description, installed_on, success)| Applied {
            info: MigrationInfo {
                version,
                description,
                installed_on,
            },
            success,
        })
        .collect()
}

/// The migrations recorded in a SQLite database; none when it has no migrations table.
pub(crate) async fn applied_sqlite(pool: &SqlitePool) -> Result<Vec<Applied>, StoreError> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    Ok(applied(sqlx::query_as(APPLIED).fetch_all(pool).await?))
}

/// The migrations recorded in the PostgreSQL schema the pool's `search_path` names; none when
/// it has no migrations table.
pub(crate) async fn applied_postgres(pool: &PgPool) -> Result<Vec<Applied>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(applied(sqlx::query_as(APPLIED).fetch_all(pool).await?))
}
