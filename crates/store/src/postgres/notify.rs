//! Commit notices on PostgreSQL: every transaction that appends to the journal also sends
//! `pg_notify` on the installation's channel, one notice per task it appended to, with the
//! task's id and the last seq it committed (`<uuid> <seq>`, under 60 bytes). PostgreSQL
//! delivers notices only when their transaction commits, in commit order, and drops those of a
//! transaction that rolls back, so a notice is never ahead of what a reader can read.
//!
//! The listening side ([`PgCommitListener`]) holds one connection of its own (not one of the
//! pool's) with `LISTEN` on the channel, reconnects after losing it, and says so with
//! [`CommitNotice::Resync`], since what committed in between was not noticed.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tracing::{info, warn};

use amas_types::{JournalRecord, TaskId};

use crate::StoreError;
use crate::notices::{CommitListener, CommitNotice};

/// The channel of the default schema.
const CHANNEL: &str = "amas_journal";
/// PostgreSQL's limit on a channel name (an identifier), in bytes.
const MAX_CHANNEL: usize = 63;
/// The longest pause between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The channel of the installation in `schema`: channels are database-wide, so installations
/// (and test runs) sharing a database in schemas of their own get channels of their own. A
/// schema name too long to fit is replaced by a digest of it.
pub(crate) fn channel(schema: Option<&str>) -> String {
    let Some(schema) = schema else {
        return CHANNEL.to_owned();
    };
    let named = format!("{CHANNEL}_{schema}");
    if named.len() <= MAX_CHANNEL {
        return named;
    }
    let digest = Sha256::digest(schema.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{CHANNEL}_{hex}")
}

/// The notices of a transaction's appends: per task, the last seq it committed (a task
/// appended to several times in one transaction gets one notice).
pub(crate) fn last_seqs<'a>(
    appended: impl IntoIterator<Item = &'a JournalRecord>,
) -> BTreeMap<TaskId, u64> {
    let mut last = BTreeMap::new();
    for record in appended {
        let seq = last.entry(record.task_id).or_insert(record.seq);
        *seq = (*seq).max(record.seq);
    }
    last
}

/// The tasks a transaction's appends create (their first record): each is signalled on the
/// commands channel as a task that wants running, so idle workers claim it at once instead
/// of at their next poll (`--role api` processes admit tasks that other processes run).
pub(crate) fn submitted<'a>(appended: impl IntoIterator<Item = &'a JournalRecord>) -> Vec<TaskId> {
    appended
        .into_iter()
        .filter(|r| r.seq == 1)
        .map(|r| r.task_id)
        .collect()
}

/// Signals `tasks` (new, see [`submitted`]) to the workers inside `tx`.
pub(crate) async fn send_submitted(
    tx: &mut Transaction<'_, Postgres>,
    schema: Option<&str>,
    tasks: &[TaskId],
) -> Result<(), StoreError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = tasks
        .iter()
        .map(|t| crate::commands::recorded_payload(*t, schema))
        .collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(crate::commands::CHANNEL)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sends the notices of `last` inside `tx`: delivered when it commits, never if it rolls back.
pub(crate) async fn send(
    tx: &mut Transaction<'_, Postgres>,
    channel: &str,
    last: &BTreeMap<TaskId, u64>,
) -> Result<(), StoreError> {
    if last.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = last
        .iter()
        .map(|(task, seq)| format!("{} {seq}", task.0))
        .collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(channel)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A notice's payload; `None` when it is not one of ours.
fn parse(payload: &str) -> Option<CommitNotice> {
    let (task, seq) = payload.split_once(' ')?;
    Some(CommitNotice::Appended {
        task: TaskId(task.parse().ok()?),
        last_seq: seq.parse().ok()?,
    })
}

/// Listens to the commits of every process sharing the installation's schema.
pub struct PgCommitListener {
    /// Of one connection, made when first needed: the listener's own, so listening never
    /// takes a connection the store's pool needs.
    pool: PgPool,
    channel: String,
    listener: Option<PgListener>,
    backoff: Duration,
}

impl PgCommitListener {
    pub(crate) fn new(store: &PgPool, channel: String) -> Self {
        let options = (*store.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Self {
            pool,
            channel,
            listener: None,
            backoff: FIRST_BACKOFF,
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.channel).await?;
        Ok(listener)
    }
}

#[async_trait]
impl CommitListener for PgCommitListener {
    async fn next(&mut self) -> CommitNotice {
        loop {
            let Some(listener) = &mut self.listener else {
                match self.connect().await {
                    Ok(listener) => {
                        info!(db.notification.channel = %self.channel, "Listening to journal commits.");
                        self.listener = Some(listener);
                        self.backoff = FIRST_BACKOFF;
                        return CommitNotice::Resync;
                    }
                    Err(e) => {
                        let e = StoreError::from(e);
                        warn!(error.code = e.code(), error.message = %e, retry_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX), "Cannot listen to journal commits; live events of other processes wait.");
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    return parse(notification.payload()).unwrap_or_else(|| {
                        warn!(
                            db.notification.channel = %self.channel,
                            "A journal commit notice could not be read; catching up instead."
                        );
                        CommitNotice::Resync
                    });
                }
                // The connection was lost and is listening again (sqlx reconnects first).
                Ok(None) => {
                    info!(db.notification.channel = %self.channel, "Listening to journal commits again after a lost connection.");
                    return CommitNotice::Resync;
                }
                Err(e) => {
                    let e = StoreError::from(e);
                    warn!(error.code = e.code(), error.message = %e, "Lost the connection listening to journal commits; reconnecting.");
                    // Dropped: the next turn connects afresh and announces it.
                    self.listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_per_schema_and_fit_postgresql_s_limit() {
        assert_eq!(channel(None), "amas_journal");
        assert_eq!(channel(Some("tenant_a")), "amas_journal_tenant_a");
        let long = "s".repeat(63);
        let hashed = channel(Some(&long));
        assert!(hashed.len() <= MAX_CHANNEL, "{hashed}");
        assert_ne!(hashed, channel(Some(&"s".repeat(62))));
        assert_eq!(hashed, channel(Some(&long)), "stable across processes");
    }

    #[test]
    fn payloads_round_trip_and_foreign_ones_are_refused() {
        let task = TaskId::new();
        let payload = format!("{} 42", task.0);
        assert_eq!(
            parse(&payload),
            Some(CommitNotice::Appended { task, last_seq: 42 })
        );
        for bad in [
            "",
            "x",
            "not-a-uuid 1",
            &format!("{} -1", task.0),
            &task.0.to_string(),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
