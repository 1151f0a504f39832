//! Task leases on PostgreSQL (`task_leases`, migration 0006). Claims (`claim.rs`) lock the
//! candidate tasks' projection rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//! divide the runnable tasks between them without waiting on each other, and a claim
//! serializes with the task's appends (which lock the same row): an append either commits
//! before a takeover or sees the new epoch. Expiry is judged on the database's clock only, never a worker's.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use amas_types::TaskId;

use super::PostgresStore;
use crate::leases::{Fence, Lease, TaskLeases, millis};
use crate::{Fairness, StoreError, shared};

/// Renewal: only leases this worker still holds under the same epoch and that have not
/// expired (an expired lease may already be someone else's claim to make).
const RENEW: &str = "UPDATE task_leases \
     SET expires_at = clock_timestamp() + $4 * interval '1 millisecond' \
     FROM UNNEST($1::uuid[], $2::bigint[]) AS h (task_id, epoch) \
     WHERE task_leases.task_id = h.task_id AND task_leases.epoch = h.epoch \
       AND task_leases.worker = $3 AND task_leases.expires_at > clock_timestamp() \
     RETURNING task_leases.task_id, task_leases.epoch, task_leases.expires_at";

/// Release: the lease expires now; the row (and its epoch) stays.
const RELEASE: &str = "UPDATE task_leases SET expires_at = clock_timestamp() \
     FROM UNNEST($1::uuid[], $2::bigint[]) AS h (task_id, epoch) \
     WHERE task_leases.task_id = h.task_id AND task_leases.epoch = h.epoch \
       AND task_leases.worker = $3 AND task_leases.expires_at > clock_timestamp()";

/// Parking: the lease ends now and claims skip the task until `$4` or a command for it.
const PARK: &str = "UPDATE task_leases \
     SET expires_at = clock_timestamp(), parked_until = $4 \
     WHERE task_id = $1 AND epoch = $2 AND worker = $3 AND expires_at > clock_timestamp()";

/// One task's claim, parked or not (its mark stays for whoever claims it next).
const CLAIM_TASK: &str = "WITH candidates AS ( \
       SELECT t.id FROM tasks t LEFT JOIN task_leases l ON l.task_id = t.id \
       WHERE t.id = $1 AND t.status IN ('queued', 'running', 'waiting_approval') \
         AND (l.task_id IS NULL OR l.expires_at <= clock_timestamp()) \
       FOR UPDATE OF t SKIP LOCKED) \
     INSERT INTO task_leases (task_id, epoch, worker, claimed_at, expires_at) \
     SELECT id, 1, $2, clock_timestamp(), clock_timestamp() + $3 * interval '1 millisecond' \
     FROM candidates \
     ON CONFLICT (task_id) DO UPDATE SET epoch = task_leases.epoch + 1, \
       worker = excluded.worker, claimed_at = excluded.claimed_at, \
       expires_at = excluded.expires_at \
     WHERE task_leases.expires_at <= clock_timestamp() \
     RETURNING task_id, epoch, expires_at";

fn lease_from_row(row: &PgRow) -> Result<Lease, StoreError> {
    Ok(Lease {
        task: TaskId(row.try_get("task_id")?),
        epoch: shared::from_db_seq(row.try_get("epoch")?)?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn held(leases: &[Lease]) -> Result<(Vec<Uuid>, Vec<i64>), StoreError> {
    let ids = leases.iter().map(|l| l.task.0).collect();
    let epochs = leases
        .iter()
        .map(|l| shared::to_db_seq(l.epoch))
        .collect::<Result<_, _>>()?;
    Ok((ids, epochs))
}

#[async_trait]
impl TaskLeases for PostgresStore {
    async fn claim_fair(
        &self,
        worker: &str,
        max: u32,
        ttl: Duration,
        fairness: &Fairness,
    ) -> Result<Vec<Lease>, StoreError> {
        self.claim_fairly(worker, max, ttl, fairness).await
    }

    async fn renew(
        &self,
        worker: &str,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, epochs) = held(leases)?;
        let rows = sqlx::query(RENEW)
            .bind(&ids)
            .bind(&epochs)
            .bind(worker)
            .bind(millis(ttl))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(lease_from_row).collect()
    }

    async fn release(&self, worker: &str, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let (ids, epochs) = held(leases)?;
        sqlx::query(RELEASE)
            .bind(&ids)
            .bind(&epochs)
            .bind(worker)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn park(
        &self,
        worker: &str,
        lease: &Lease,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(PARK)
            .bind(lease.task.0)
            .bind(shared::to_db_seq(lease.epoch)?)
            .bind(worker)
            .bind(until)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn claim_task(
        &self,
        worker: &str,
        task: TaskId,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query(CLAIM_TASK)
            .bind(task.0)
            .bind(worker)
            .bind(millis(ttl))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(lease_from_row).transpose()
    }
}

/// The current lease of each of `tasks`: its epoch and whether it is still live. Read under
/// the caller's row locks on the tasks, which every claim takes too, so the epoch cannot move
/// before the caller commits.
pub(super) async fn current(
    tx: &mut Transaction<'_, Postgres>,
    tasks: &[Uuid],
) -> Result<BTreeMap<TaskId, (u64, bool)>, StoreError> {
    let mut out = BTreeMap::new();
    if tasks.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(
        "SELECT task_id, epoch, expires_at > clock_timestamp() AS live FROM task_leases \
         WHERE task_id = ANY($1)",
    )
    .bind(tasks)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        out.insert(
            TaskId(row.try_get("task_id")?),
            (
                shared::from_db_seq(row.try_get("epoch")?)?,
                row.try_get("live")?,
            ),
        );
    }
    Ok(out)
}

/// The fence check of one append against the leases [`current`] read: the epoch must be the
/// current one and the lease live.
pub(super) fn check(
    leases: &BTreeMap<TaskId, (u64, bool)>,
    task: TaskId,
    fence: Fence,
) -> Result<(), StoreError> {
    match leases.get(&task) {
        Some(&(epoch, true)) if epoch == fence.epoch => Ok(()),
        _ => Err(StoreError::LeaseLost {
            task,
            epoch: fence.epoch,
        }),
    }
}
