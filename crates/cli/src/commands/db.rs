//! `amas db status`, `amas db migrate` and `amas db copy`: the selected store's schema, and
//! moving an installation from SQLite to PostgreSQL. Every store is named by
//! [`amas_store::location`]: a URL's password is never printed.

use amas_config::{AmasConfig, PostgresStoreConfig, StoreBackend, StoreConfig};
use amas_store::copy::CopyReport;
use amas_store::schema::SchemaStatus;
use amas_store::{OpenOptions, SchemaAction, Store};
use secrecy::SecretString;
use serde_json::json;

use crate::args::{DbArgs, DbCommand, DbFormat, Global};
use crate::bootstrap::{StoreNeed, UsageError, load_config, open_store_with, store_error};
use crate::commands::print_stdout;

/// The PostgreSQL pool of a copy: one connection writes, one more spare.
const COPY_POOL: u32 = 2;

pub async fn run(global: &Global, args: DbArgs) -> anyhow::Result<u8> {
    let config = load_config(global)?;
    match args.command {
        DbCommand::Status { format } => status(global, &config, format).await,
        DbCommand::Migrate { format } => migrate(global, &config, format).await,
        DbCommand::Copy {
            from,
            to,
            schema,
            format,
        } => copy(global, &config, &from, &to, schema, format).await,
    }
}

async fn status(global: &Global, config: &AmasConfig, format: DbFormat) -> anyhow::Result<u8> {
    let location = amas_store::location(&config.store, &global.data_dir);
    let status = match &config.store.backend {
        // Looking must not create the file: a missing database is all pending.
        StoreBackend::Sqlite { dir }
            if !amas_store::sqlite_dir(dir.as_deref(), &global.data_dir)
                .join("amas.db")
                .is_file() =>
        {
            SchemaStatus::empty("sqlite")
        }
        _ => {
            let store =
                open_store_with(global, config, StoreNeed::Existing, SchemaAction::Inspect).await?;
            let status = store.status().await;
            store.close().await;
            status.map_err(|e| store_error(&e, &location))?
        }
    };
    print_status(&status, &location, None, format)?;
    Ok(0)
}

async fn migrate(global: &Global, config: &AmasConfig, format: DbFormat) -> anyhow::Result<u8> {
    let location = amas_store::location(&config.store, &global.data_dir);
    if matches!(config.store.backend, StoreBackend::Sqlite { dir: None }) {
        crate::bootstrap::secure_data_dir(global)?;
    }
    let store = open_store_with(global, config, StoreNeed::Create, SchemaAction::Inspect).await?;
    let result = async {
        let applied = store.migrate().await?;
        Ok::<_, amas_store::StoreError>((applied, store.status().await?))
    }
    .await;
    store.close().await;
    let (applied, status) = result.map_err(|e| store_error(&e, &location))?;
    print_status(&status, &location, Some(&applied), format)?;
    Ok(0)
}

fn print_status(
    status: &SchemaStatus,
    location: &str,
    applied_now: Option<&[i64]>,
    format: DbFormat,
) -> anyhow::Result<()> {
    match format {
        DbFormat::Json => {
            let mut doc = serde_json::to_value(status)?;
            if let Some(map) = doc.as_object_mut() {
                map.insert("location".to_owned(), location.into());
                if let Some(applied) = applied_now {
                    map.insert("applied_now".to_owned(), json!(applied));
                }
            }
            print_stdout(&doc.to_string());
        }
        DbFormat::Text => {
            let version = status
                .version
                .map_or_else(|| "none (empty database)".to_owned(), |v| v.to_string());
            let mut out = format!(
                "store: {location}\nbackend: {}\nschema version: {version} (this binary: {})\n\
                 state: {}\napplied: {}\npending: {}",
                status.backend,
                status.binary_version,
                status.state,
                status.applied.len(),
                status.pending.len(),
            );
            for m in &status.pending {
                out.push_str(&format!("\n  pending {} {}", m.version, m.description));
            }
            if !status.unknown.is_empty() {
                out.push_str(&format!(
                    "\nunknown to this binary (a newer AMAS migrated it): {:?}",
                    status.unknown
                ));
            }
            if let Some(applied) = applied_now {
                out.push_str(&format!("\napplied now: {applied:?}"));
            }
            print_stdout(&out);
        }
    }
    Ok(())
}

async fn copy(
    global: &Global,
    config: &AmasConfig,
    from: &str,
    to: &str,
    schema: Option<String>,
    format: DbFormat,
) -> anyhow::Result<u8> {
    let source = StoreConfig {
        backend: StoreBackend::Sqlite {
            dir: Some(source_dir(global, from)?),
        },
        migrate_on_start: config.store.migrate_on_start,
        leases: config.store.leases.clone(),
    };
    let target = StoreConfig {
        backend: StoreBackend::Postgres(target_config(config, to, schema)?),
        migrate_on_start: true,
        leases: config.store.leases.clone(),
    };
    let from_location = amas_store::location(&source, &global.data_dir);
    let to_location = amas_store::location(&target, &global.data_dir);
    let need = StoreNeed::Existing;
    let sqlite = open_copy_end(global, config, &source, need, &from_location).await?;
    let postgres = open_copy_end(global, config, &target, StoreNeed::Create, &to_location).await;
    let postgres = match postgres {
        Ok(store) => store,
        Err(e) => {
            sqlite.close().await;
            return Err(e);
        }
    };
    let copied = match (&sqlite, &postgres) {
        (Store::Sqlite(from), Store::Postgres(to)) => {
            amas_store::copy::sqlite_to_postgres(from, to)
                .await
                .map_err(|e| store_error(&e, &to_location))
        }
        _ => Err(anyhow::anyhow!("a copy goes from SQLite to PostgreSQL")),
    };
    sqlite.close().await;
    postgres.close().await;
    let report = copied?;
    print_copy(&report, &from_location, &to_location, format)?;
    Ok(0)
}

/// Opens one end of a copy; a missing SQLite source is a usage error.
async fn open_copy_end(
    global: &Global,
    config: &AmasConfig,
    store: &StoreConfig,
    need: StoreNeed,
    location: &str,
) -> anyhow::Result<Store> {
    if let (StoreNeed::Existing, StoreBackend::Sqlite { dir: Some(dir) }) = (need, &store.backend)
        && !dir.join("amas.db").is_file()
    {
        return Err(UsageError(format!("no AMAS database in {}", dir.display())).into());
    }
    let schema = if store.migrate_on_start {
        SchemaAction::Migrate
    } else {
        SchemaAction::RequireCurrent
    };
    let options = OpenOptions {
        data_dir: &global.data_dir,
        full_sync: config.runtime.journal_sync == amas_config::JournalSync::Full,
        schema,
    };
    Store::open(store, options)
        .await
        .map_err(|e| store_error(&e, location))
}

/// `sqlite:DIR`, or `sqlite` for the data directory.
fn source_dir(global: &Global, from: &str) -> Result<std::path::PathBuf, UsageError> {
    match from.split_once(':') {
        None if from == "sqlite" => Ok(global.data_dir.clone()),
        Some(("sqlite", dir)) if !dir.is_empty() => Ok(dir.into()),
        _ => Err(UsageError(format!(
            "--from {from:?}: expected sqlite:DIR or sqlite (the data directory)"
        ))),
    }
}

/// `postgres` (the URL from the configured variable) or `postgres:URL`; pool and schema from
/// the `store` section when it selects PostgreSQL. Never quotes the URL back.
fn target_config(
    config: &AmasConfig,
    to: &str,
    schema: Option<String>,
) -> Result<PostgresStoreConfig, UsageError> {
    let configured = match &config.store.backend {
        StoreBackend::Postgres(pg) => Some(pg),
        StoreBackend::Sqlite { .. } => None,
    };
    let url_env =
        configured.map_or_else(|| "AMAS_DATABASE_URL".to_owned(), |pg| pg.url_env.clone());
    let url = if to == "postgres" {
        match configured {
            Some(pg) => pg.url.clone(),
            None => {
                return Err(UsageError(format!(
                    "--to postgres takes the URL from {url_env}, which is not set; set it or \
                     pass --to postgres:URL"
                )));
            }
        }
    } else {
        match to.strip_prefix("postgres:") {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                SecretString::from(url.to_owned())
            }
            _ => {
                return Err(UsageError(
                    "--to: expected postgres (the URL from AMAS_DATABASE_URL) or \
                     postgres:postgres://USER@HOST/DB"
                        .to_owned(),
                ));
            }
        }
    };
    Ok(PostgresStoreConfig {
        url_env,
        url,
        pool_size: COPY_POOL,
        schema: schema.or_else(|| configured.and_then(|pg| pg.schema.clone())),
    })
}

fn print_copy(report: &CopyReport, from: &str, to: &str, format: DbFormat) -> anyhow::Result<()> {
    match format {
        DbFormat::Json => {
            let mut doc = serde_json::to_value(report)?;
            if let Some(map) = doc.as_object_mut() {
                map.insert("from".to_owned(), from.into());
                map.insert("to".to_owned(), to.into());
            }
            print_stdout(&doc.to_string());
        }
        DbFormat::Text => {
            let verb = if report.already_copied {
                "already copied (nothing written)"
            } else {
                "copied"
            };
            print_stdout(&format!(
                "{verb}: {} tasks, {} journal events, {} approvals, {} audit records, {} \
                 checkpoints\nfrom {from}\nto {to}",
                report.tasks,
                report.journal_events,
                report.approvals,
                report.audit_records,
                report.checkpoints
            ));
        }
    }
    eprintln!(
        "the keys (keys/) and the audit witness stay in the data directory: run the processes \
         on PostgreSQL with this --data-dir, or copy them with it; `amas audit verify` checks \
         the copied chain"
    );
    Ok(())
}
