//! The queue's counts on PostgreSQL: what admission reads before it journals a submission
//! (index-only counts that stop at the limit asked about) and what the queue metrics read
//! periodically (the tasks no live lease holds, by tenant, with the oldest's age).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use crate::{StoreError, TaskQueue, TenantBacklog, Waiting};

/// `$1` tenant, `$2` and `$3` where each count may stop (`tasks_tenant_status_id` and
/// `tasks_status_id` answer them).
const WAITING: &str = "SELECT \
       (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE tenant = $1 AND status = 'queued' \
                              LIMIT $2) a) AS tenant, \
       (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'queued' LIMIT $3) b) AS total";

/// `$1` the tenants named on their own; the others are one row with a NULL tenant. Runnable
/// only: no live lease, and not parked for an approval (those wait for people, not workers).
const BACKLOG: &str = "SELECT CASE WHEN t.tenant = ANY($1) THEN t.tenant END AS tenant, \
       count(*) AS depth, \
       extract(epoch FROM clock_timestamp() - min(t.created_at))::float8 AS oldest \
     FROM tasks t \
     LEFT JOIN task_leases l ON l.task_id = t.id \
     WHERE t.status IN ('queued', 'running', 'waiting_approval') \
       AND (l.task_id IS NULL OR (l.expires_at <= statement_timestamp() \
         AND (l.parked_until IS NULL OR l.parked_until <= statement_timestamp() OR EXISTS ( \
           SELECT 1 FROM task_commands c WHERE c.task_id = t.id AND c.done_at IS NULL)))) \
     GROUP BY 1";

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl TaskQueue for PostgresStore {
    async fn waiting(
        &self,
        tenant: &str,
        tenant_limit: Option<u64>,
        total_limit: u64,
    ) -> Result<Waiting, StoreError> {
        let row = sqlx::query(WAITING)
            .bind(tenant)
            .bind(count(tenant_limit.unwrap_or(0)))
            .bind(count(total_limit))
            .fetch_one(self.pool())
            .await?;
        let get = |column: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
        };
        Ok(Waiting {
            tenant: get("tenant")?,
            total: get("total")?,
        })
    }

    async fn backlog(&self, named: &[String]) -> Result<Vec<TenantBacklog>, StoreError> {
        let rows = sqlx::query(BACKLOG)
            .bind(named)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let depth: i64 = row.try_get("depth")?;
                let oldest: Option<f64> = row.try_get("oldest")?;
                Ok(TenantBacklog {
                    tenant: row.try_get("tenant")?,
                    depth: u64::try_from(depth).unwrap_or(0),
                    oldest_age: Duration::try_from_secs_f64(oldest.unwrap_or(0.0).max(0.0))
                        .unwrap_or(Duration::ZERO),
                })
            })
            .collect()
    }
}
