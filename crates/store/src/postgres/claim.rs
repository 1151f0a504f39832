//! Fair claims on PostgreSQL (migration 0008): one statement picks each tenant's next tasks
//! nobody holds, orders them by start tag (the tenant's pass, then `1 / weight` per task) so
//! that tenants share the free slots by weight, locks them `FOR UPDATE SKIP LOCKED`, leases
//! them, and moves the passes and the clock past what it claimed. Claims under per-tenant caps
//! first lock the clock's row, in the same transaction: the next claim then reads the live
//! leases this one left, so a cap holds across workers.

use std::time::Duration;

use sqlx::Row;

use super::PostgresStore;
use crate::leases::{Lease, millis};
use crate::{Fairness, StoreError, shared};

/// What a worker may claim: an unfinished task `t` without a live lease `l` (its lease row, if
/// any) and not parked (waiting for approval, with no command pending, until a deadline still
/// ahead: migration 0007). The one place a condition on claimable tasks goes.
macro_rules! claimable {
    () => {
        "t.status IN ('queued', 'running', 'waiting_approval') \
         AND (l.task_id IS NULL OR l.expires_at <= clock_timestamp()) \
         AND (l.parked_until IS NULL OR l.parked_until <= clock_timestamp() OR EXISTS ( \
           SELECT 1 FROM task_commands c WHERE c.task_id = t.id AND c.done_at IS NULL))"
    };
}

/// The claim. `$1` max tasks, `$2` worker, `$3` lease ms, `$4` default weight, `$5` default
/// cap (NULL: none), `$6`-`$8` the tenants with their own weight and cap.
///
/// Its cost does not grow with the tasks queued, nor much with the tenants: a probe per tenant
/// with unfinished tasks, then a few rows of the `$1 + 16` tenants next in line. The 16 spare
/// rows and tenants let a claim racing another (which locks the first ones) take the next.
const CLAIM: &str = concat!(
    "\
WITH RECURSIVE
-- Every tenant with unfinished tasks: a skip scan of tasks_runnable_tenant.
tenants (tenant) AS (
    (SELECT tenant FROM tasks
     WHERE status IN ('queued', 'running', 'waiting_approval')
     ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT t.tenant FROM tasks t
            WHERE t.status IN ('queued', 'running', 'waiting_approval')
              AND t.tenant > tenants.tenant
            ORDER BY t.tenant LIMIT 1)
    FROM tenants WHERE tenants.tenant IS NOT NULL),
-- What each tenant runs now, on every worker (statement_timestamp, not clock_timestamp: a
-- stable bound lets task_leases_expires_at find the live leases among all ever granted).
running (tenant, n) AS (
    SELECT t.tenant, count(*) FROM task_leases l JOIN tasks t ON t.id = l.task_id
    WHERE l.expires_at > statement_timestamp()
    GROUP BY t.tenant),
clock (v) AS (
    SELECT coalesce((SELECT virtual_time FROM scheduler_clock WHERE id = 1), 0)),
-- Each tenant's weight, how many more it may start (NULL: no cap), and the virtual time its
-- next task starts at: its pass, or the clock when it fell behind.
shares (tenant, weight, room, start) AS (
    SELECT s.tenant,
           coalesce(p.weight, $4),
           CASE WHEN p.tenant IS NULL THEN $5 ELSE p.max_running END - coalesce(r.n, 0),
           greatest(coalesce(tp.pass, c.v), c.v)
    FROM tenants s
    CROSS JOIN clock c
    LEFT JOIN UNNEST($6::text[], $7::int4[], $8::int4[]) AS p (tenant, weight, max_running)
        ON p.tenant = s.tenant
    LEFT JOIN running r ON r.tenant = s.tenant
    LEFT JOIN scheduler_tenants tp ON tp.tenant = s.tenant
    WHERE s.tenant IS NOT NULL),
-- The tenants next in line: below their cap, with a task to claim, smallest start first.
-- Any other tenant's tasks start no earlier than each of theirs.
next_tenants AS (
    SELECT s.* FROM shares s
    WHERE (s.room IS NULL OR s.room > 0)
      AND EXISTS (SELECT 1 FROM tasks t LEFT JOIN task_leases l ON l.task_id = t.id
                  WHERE t.tenant = s.tenant AND ",
    claimable!(),
    ")
    ORDER BY s.start, s.tenant
    LIMIT $1 + 16),
-- Their next tasks, highest priority then oldest, no more than each may still start; a
-- tenant's n-th starts at start + (n - 1) / weight. The first ones in start order.
ranked (id, tenant, priority, created_at, tag) AS (
    SELECT c.id, s.tenant, c.priority, c.created_at, s.start + (c.n - 1)::float8 / s.weight
    FROM next_tenants s
    CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.created_at,
               row_number() OVER (ORDER BY t.priority DESC, t.created_at, t.id) AS n
        FROM tasks t
        LEFT JOIN task_leases l ON l.task_id = t.id
        WHERE t.tenant = s.tenant AND ",
    claimable!(),
    "
        ORDER BY t.priority DESC, t.created_at, t.id
        LIMIT $1 + 16) c
    WHERE s.room IS NULL OR c.n <= s.room
    ORDER BY 5, 3 DESC, 4, 1
    LIMIT $1 + 16),
-- The smallest start tags first (ties: higher priority, then older), skipping the rows
-- another claimer has locked (the ANY makes the planner fetch them by primary key).
candidates AS (
    SELECT t.id FROM ranked r JOIN tasks t ON t.id = r.id
    WHERE t.id = ANY (ARRAY (SELECT id FROM ranked))
      AND t.status IN ('queued', 'running', 'waiting_approval')
    ORDER BY r.tag, r.priority DESC, r.created_at, r.id
    LIMIT $1
    FOR UPDATE OF t SKIP LOCKED),
-- The upsert's WHERE re-checks expiry on the lease's latest version, so a renewal that
-- committed meanwhile wins over the claim.
claimed AS (
    INSERT INTO task_leases (task_id, epoch, worker, claimed_at, expires_at)
    SELECT id, 1, $2, clock_timestamp(), clock_timestamp() + $3 * interval '1 millisecond'
    FROM candidates
    ON CONFLICT (task_id) DO UPDATE SET epoch = task_leases.epoch + 1,
        worker = excluded.worker, claimed_at = excluded.claimed_at,
        expires_at = excluded.expires_at, parked_until = NULL
    WHERE task_leases.expires_at <= clock_timestamp()
    RETURNING task_id, epoch, expires_at),
-- Each tenant's pass moves past its last task claimed; the clock to the latest start. Both
-- only grow (greatest), so concurrent claims compose. Tenants in name order: concurrent
-- claims lock their rows in the same order.
served (tenant, last, weight) AS (
    SELECT r.tenant, max(r.tag), min(s.weight)
    FROM claimed c JOIN ranked r ON r.id = c.task_id JOIN next_tenants s ON s.tenant = r.tenant
    GROUP BY r.tenant),
passes AS (
    INSERT INTO scheduler_tenants AS st (tenant, pass)
    SELECT tenant, last + 1.0 / weight FROM served ORDER BY tenant
    ON CONFLICT (tenant) DO UPDATE SET pass = greatest(st.pass, excluded.pass)),
advanced AS (
    UPDATE scheduler_clock SET virtual_time = greatest(virtual_time, (SELECT max(last) FROM served))
    WHERE id = 1 AND EXISTS (SELECT 1 FROM served))
SELECT task_id, epoch, expires_at FROM claimed"
);

/// Taken first by a claim under caps: claims then serialize, each reading the live leases of
/// the one before.
const LOCK_CLOCK: &str = "SELECT id FROM scheduler_clock WHERE id = 1 FOR UPDATE";

/// The per-tenant parameters, as arrays the statement unnests.
fn tenant_arrays(fairness: &Fairness) -> (Vec<String>, Vec<i32>, Vec<Option<i32>>) {
    let cap = |c: Option<u32>| c.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
    let names = fairness.tenants.iter().map(|t| t.tenant.clone()).collect();
    let weights = fairness
        .tenants
        .iter()
        .map(|t| i32::try_from(t.weight).unwrap_or(i32::MAX))
        .collect();
    let caps = fairness
        .tenants
        .iter()
        .map(|t| cap(t.max_running))
        .collect();
    (names, weights, caps)
}

impl PostgresStore {
    pub(super) async fn claim_fairly(
        &self,
        worker: &str,
        max: u32,
        ttl: Duration,
        fairness: &Fairness,
    ) -> Result<Vec<Lease>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (names, weights, caps) = tenant_arrays(fairness);
        let query = sqlx::query(CLAIM)
            .bind(i64::from(max))
            .bind(worker)
            .bind(millis(ttl))
            .bind(i32::try_from(fairness.default_weight.max(1)).unwrap_or(i32::MAX))
            .bind(
                fairness
                    .default_max_running
                    .map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            )
            .bind(names)
            .bind(weights)
            .bind(caps);
        let rows = if fairness.has_caps() {
            let mut tx = self.pool().begin().await?;
            sqlx::query(LOCK_CLOCK).execute(&mut *tx).await?;
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        } else {
            query.fetch_all(self.pool()).await?
        };
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    task: amas_types::TaskId(row.try_get("task_id")?),
                    epoch: shared::from_db_seq(row.try_get("epoch")?)?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }
}
