//! Store selection: the backend the `store` section names, opened by one factory that every
//! command goes through, with the schema checked before anything is written (a database
//! migrated by a newer binary is refused; pending migrations are applied or refused).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::ExposeSecret as _;

use amas_config::{StoreBackend, StoreConfig};

use crate::schema::{self, SchemaStatus};
use crate::{GroupCommit, PostgresStore, SqliteStore, StoreError};

/// What opening does about the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaAction {
    /// Apply pending migrations (a start with `migrate_on_start`, `amas db migrate`).
    Migrate,
    /// Refuse pending migrations (a start without `migrate_on_start`).
    RequireCurrent,
    /// Neither migrate nor refuse: only look (`amas db status`).
    Inspect,
}

/// How to open the selected store.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions<'a> {
    /// The data directory: where SQLite's `amas.db` is unless `store.dir` says otherwise.
    pub data_dir: &'a Path,
    /// SQLite's commit durability (`runtime.journal_sync: full`).
    pub full_sync: bool,
    pub schema: SchemaAction,
}

/// The store the configuration selects: the journal, approvals and audit log of one
/// installation, on one backend.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the store `config` selects, checks its schema and migrates as `options` says.
    ///
    /// # Errors
    /// [`StoreError::SchemaNewer`] (unless only inspecting) when a newer binary migrated the
    /// database; [`StoreError::SchemaBehind`] for [`SchemaAction::RequireCurrent`] with
    /// migrations pending; connection, configuration and migration errors. None of them
    /// quotes the database URL.
    pub async fn open(config: &StoreConfig, options: OpenOptions<'_>) -> Result<Self, StoreError> {
        let store = match &config.backend {
            StoreBackend::Sqlite { dir } => {
                let dir = sqlite_dir(dir.as_deref(), options.data_dir);
                Self::Sqlite(SqliteStore::unmigrated(&dir, options.full_sync).await?)
            }
            StoreBackend::Postgres(pg) => Self::Postgres(
                PostgresStore::unmigrated(
                    pg.url.expose_secret(),
                    pg.pool_size,
                    pg.schema.as_deref(),
                    Some(config.leases.ttl),
                )
                .await?,
            ),
        };
        if options.schema == SchemaAction::Inspect {
            return Ok(store);
        }
        let checked = async {
            let status = store.status().await?;
            status.refuse_newer()?;
            match options.schema {
                SchemaAction::Migrate => store.run_migrations().await,
                SchemaAction::RequireCurrent => status.refuse_pending(),
                SchemaAction::Inspect => Ok(()),
            }
        }
        .await;
        if let Err(e) = checked {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The journal and the audit log as the runtime takes them.
    #[must_use]
    pub fn shared(&self) -> Arc<dyn GroupCommit> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Task leases for worker processes sharing the database; `None` on SQLite (one process).
    #[must_use]
    pub fn leases(&self) -> Option<Arc<dyn crate::TaskLeases>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(Arc::new(s.clone())),
        }
    }

    /// The queue as the database holds it, for processes sharing it (admission counts and
    /// queue metrics); `None` on SQLite, whose queue is the one process's own.
    #[must_use]
    pub fn queue(&self) -> Option<Arc<dyn crate::TaskQueue>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(Arc::new(s.clone())),
        }
    }

    /// Commands to tasks from processes that do not run them (votes, cancels); `None` on
    /// SQLite (one process: they are handed over in memory).
    #[must_use]
    pub fn commands(&self) -> Option<Arc<dyn crate::TaskCommands>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(Arc::new(s.clone())),
        }
    }

    /// A listener to the journal commits of every process sharing the store, for live
    /// streams of tasks that run elsewhere; `None` on SQLite (one process, which publishes
    /// its own commits).
    #[must_use]
    pub fn commit_listener(&self) -> Option<Box<dyn crate::CommitListener>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(Box::new(s.commit_listener())),
        }
    }

    /// The same, borrowed.
    #[must_use]
    pub fn as_dyn(&self) -> &dyn GroupCommit {
        match self {
            Self::Sqlite(s) => s,
            Self::Postgres(s) => s,
        }
    }

    /// Where the schema stands against this binary.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn status(&self) -> Result<SchemaStatus, StoreError> {
        Ok(match self {
            Self::Sqlite(s) => SchemaStatus::of(
                "sqlite",
                &crate::sqlite::MIGRATOR,
                schema::applied_sqlite(s.pool()).await?,
            ),
            Self::Postgres(s) => SchemaStatus::of(
                "postgres",
                &crate::postgres::MIGRATOR,
                schema::applied_postgres(s.pool()).await?,
            ),
        })
    }

    /// Applies the pending migrations (concurrent migrators take turns on a lock) and returns
    /// the versions applied now.
    ///
    /// # Errors
    /// [`StoreError::SchemaNewer`] when a newer binary migrated the database; migration
    /// errors.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.status().await?;
        before.refuse_newer()?;
        self.run_migrations().await?;
        let after = self.status().await?;
        Ok(after
            .applied
            .iter()
            .map(|m| m.version)
            .filter(|v| !before.applied.iter().any(|b| b.version == *v))
            .collect())
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => crate::sqlite::MIGRATOR.run(s.pool()).await?,
            Self::Postgres(s) => crate::postgres::MIGRATOR.run(s.pool()).await?,
        }
        Ok(())
    }

    /// Closes every connection; waits for running transactions to end.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// The directory of SQLite's `amas.db`: `store.dir`, else the data directory.
#[must_use]
pub fn sqlite_dir(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    configured.map_or_else(|| data_dir.to_owned(), Path::to_owned)
}

/// Where a store is, safe to log and print: the SQLite directory, or the PostgreSQL URL with
/// its password redacted and the schema.
#[must_use]
pub fn location(config: &StoreConfig, data_dir: &Path) -> String {
    match &config.backend {
        StoreBackend::Sqlite { dir } => {
            format!("sqlite:{}", sqlite_dir(dir.as_deref(), data_dir).display())
        }
        StoreBackend::Postgres(pg) => {
            let url = amas_config::redacted::url_without_password(pg.url.expose_secret());
            match &pg.schema {
                Some(schema) => format!("{url} (schema {schema})"),
                None => url,
            }
        }
    }
}
