//! [`AuditLog`] on PostgreSQL: the audit tables live beside the journal, in the same schema.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use amas_types::TaskId;

use super::chain::{self, ChainLink};
use super::checkpoint::Checkpoint;
use super::guards;
use super::row::{COLUMNS, Insert, Row as AuditRow};
use super::{AuditLog, AuditQuery, AuditRecord, ChainEntry, StoredAuditRecord};
use crate::{PostgresStore, StoreError, shared};

/// Rows per INSERT statement: 26 parameters each stays below PostgreSQL's 65535 bind limit.
const ROWS_PER_INSERT: usize = 200;

fn decode_row(row: &PgRow) -> Result<ChainEntry, StoreError> {
    let seq = shared::from_db_seq(row.try_get("seq")?)?;
    let raw = || -> Result<AuditRow, sqlx::Error> {
        let task_id: Option<uuid::Uuid> = row.try_get("task_id")?;
        Ok(AuditRow {
            seq,
            timestamp: Ok(row.try_get("recorded_at")?),
            task_id: Ok(task_id.map(TaskId)),
            tenant: row.try_get("tenant")?,
            principal_sub: row.try_get("principal_sub")?,
            principal_roles: row.try_get("principal_roles")?,
            auth_method: row.try_get("auth_method")?,
            stage: row.try_get("stage")?,
            action: row.try_get("action")?,
            decision: row.try_get("decision")?,
            reasons: row.try_get("reasons")?,
            agent: row.try_get("agent")?,
            step: row.try_get("step")?,
            trace_id: row.try_get("trace_id")?,
            resource: row.try_get("resource")?,
            policy_version: row.try_get("policy_version")?,
            policy_hash: row.try_get("policy_hash")?,
            classification: row.try_get("classification")?,
            duration_us: row.try_get("duration_us")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_micros: row.try_get("cost_micros")?,
            details: row.try_get("details")?,
            details_hash: row.try_get("details_hash")?,
            prev_hash: row.try_get("prev_hash")?,
            hash: row.try_get("hash")?,
        })
    };
    Ok(match raw() {
        Ok(raw) => raw.decode(),
        Err(e) => Err(super::UnreadableRecord {
            seq,
            reason: StoreError::from(e).to_string(),
        }),
    })
}

fn checkpoint_from_row(row: &PgRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        up_to_seq: shared::from_db_seq(row.try_get("up_to_seq")?)?,
        hash: row.try_get("hash")?,
        tree_root: row.try_get("tree_root")?,
        signed_at: row.try_get("signed_at")?,
        key_id: row.try_get("key_id")?,
        signature: row.try_get("signature")?,
    })
}

fn db_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl PostgresStore {
    async fn audit_rows(&self, q: &AuditQuery) -> Result<Vec<ChainEntry>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT ");
        query.push(COLUMNS).push(" FROM audit_log WHERE seq >= ");
        query.push_bind(db_seq(q.from_seq));
        if let Some(to) = q.to_seq {
            query.push(" AND seq <= ").push_bind(db_seq(to));
        }
        if let Some(since) = q.since {
            query.push(" AND recorded_at >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            query.push(" AND recorded_at < ").push_bind(until);
        }
        if let Some(tenant) = &q.tenant {
            query.push(" AND tenant = ").push_bind(tenant.0.clone());
        }
        if let Some(task) = q.task_id {
            query.push(" AND task_id = ").push_bind(task.0);
        }
        if let Some(trace) = &q.trace_id {
            query.push(" AND trace_id = ").push_bind(trace.clone());
        }
        if let Some(sub) = &q.principal {
            query.push(" AND principal_sub = ").push_bind(sub.clone());
        }
        if let Some(decision) = q.decision {
            query.push(" AND decision = ").push_bind(decision.as_str());
        }
        query
            .push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = query.build().fetch_all(self.pool()).await?;
        rows.iter().map(decode_row).collect()
    }
}

/// Links `records` to the chain's head and inserts them inside `tx`. Takes the audit table's
/// lock first, which conflicts with itself but not with readers: appenders from every process
/// sharing the database queue on it, so no two link to the same head. Shared by the audit-only
/// append and the group commit that writes journal appends beside them.
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    records: &[AuditRecord],
) -> Result<Vec<StoredAuditRecord>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| -> Result<ChainLink, StoreError> {
            Ok(ChainLink {
                seq: shared::from_db_seq(row.try_get("seq")?)?,
                hash: row.try_get("hash")?,
            })
        })
        .transpose()?;
    let sealed = chain::seal(head.as_ref(), records)?;
    let inserts = sealed
        .iter()
        .map(Insert::new)
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in inserts.chunks(ROWS_PER_INSERT) {
        let mut query = QueryBuilder::<Postgres>::new("INSERT INTO audit_log (");
        query.push(COLUMNS).push(") ");
        query.push_values(chunk, |mut b, ins| {
            let r = &ins.rec.record;
            b.push_bind(ins.seq)
                .push_bind(r.timestamp)
                .push_bind(r.tenant.0.clone())
                .push_bind(r.principal.sub.clone())
                .push_bind(ins.roles.clone())
                .push_bind(r.principal.auth_method.clone())
                .push_bind(r.stage.clone())
                .push_bind(r.action.clone())
                .push_bind(r.decision.as_str())
                .push_bind(ins.reasons.clone())
                .push_bind(r.agent.clone())
                .push_bind(r.task_id.map(|t| t.0))
                .push_bind(r.step.clone())
                .push_bind(r.trace_id.clone())
                .push_bind(r.resource.clone())
                .push_bind(r.policy.as_ref().map(|p| p.version.clone()))
                .push_bind(r.policy.as_ref().map(|p| p.hash.clone()))
                .push_bind(r.classification.clone())
                .push_bind(ins.duration_us)
                .push_bind(ins.input_tokens)
                .push_bind(ins.output_tokens)
                .push_bind(ins.cost_micros)
                .push_bind(ins.details.to_owned())
                .push_bind(ins.rec.details_hash.clone())
                .push_bind(ins.rec.prev_hash.clone())
                .push_bind(ins.rec.hash.clone());
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(sealed.into_iter().map(|s| s.stored).collect())
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append(&self, records: &[AuditRecord]) -> Result<Vec<StoredAuditRecord>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        for rec in records {
            chain::validate(rec)?;
        }
        let mut tx = self.pool().begin().await?;
        let stored = append_in(&mut tx, records).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<StoredAuditRecord>, StoreError> {
        self.audit_rows(query)
            .await?
            .into_iter()
            .map(|entry| {
                entry.map_err(|u| {
                    StoreError::Corrupt(format!("audit record {}: {}", u.seq, u.reason))
                })
            })
            .collect()
    }

    async fn chain(
        &self,
        from_seq: u64,
        to_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChainEntry>, StoreError> {
        self.audit_rows(&AuditQuery {
            from_seq,
            to_seq: Some(to_seq),
            limit,
            ..AuditQuery::default()
        })
        .await
    }

    async fn head(&self) -> Result<Option<ChainLink>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(ChainLink {
                seq: shared::from_db_seq(row.try_get("seq")?)?,
                hash: row.try_get("hash")?,
            })
        })
        .transpose()
    }

    async fn links(
        &self,
        from_seq: u64,
        to_seq: u64,
        limit: u32,
    ) -> Result<Vec<ChainLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(db_seq(from_seq))
        .bind(db_seq(to_seq))
        .bind(i64::from(limit.max(1)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ChainLink {
                    seq: shared::from_db_seq(row.try_get("seq")?)?,
                    hash: row.try_get("hash")?,
                })
            })
            .collect()
    }

    /// `tgenabled` `O` (origin) or `A` (always) fire for AMAS's sessions; `D` is disabled and
    /// `R` fires only in replica sessions, so both leave the table unguarded. The functions
    /// are compared with the migration too: `CREATE OR REPLACE` of an empty body disarms a
    /// trigger that still looks enabled.
    async fn guard_problems(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        for (trigger, table, function) in guards::POSTGRES_TRIGGERS {
            let row = sqlx::query(
                "SELECT t.tgenabled::text AS enabled FROM pg_trigger t \
                 WHERE t.tgrelid = to_regclass($1) AND t.tgname = $2 AND NOT t.tgisinternal",
            )
            .bind(table)
            .bind(trigger)
            .fetch_optional(self.pool())
            .await?;
            match row.map(|r| r.try_get::<String, _>("enabled")).transpose()? {
                None => problems.push(format!(
                    "the guard trigger {trigger} on {table} is missing (dropped)"
                )),
                Some(state) if state != "O" && state != "A" => problems.push(format!(
                    "the guard trigger {trigger} on {table} is disabled (tgenabled = {state})"
                )),
                Some(_) => {}
            }
            let body = sqlx::query(
                "SELECT p.prosrc FROM pg_proc p \
                 WHERE p.oid = to_regprocedure($1 || '()')",
            )
            .bind(function)
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get::<String, _>("prosrc"))
            .transpose()?;
            let expected = guards::postgres_function_body(function).map(guards::normalized);
            match body {
                None => problems.push(format!("the guard function {function}() is missing")),
                Some(body) if Some(guards::normalized(&body)) != expected => problems.push(
                    format!("the guard function {function}() is not the one AMAS installed"),
                ),
                Some(_) => {}
            }
        }
        Ok(problems)
    }

    async fn add_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (up_to_seq, key_id, hash, tree_root, signed_at, \
             signature) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (up_to_seq, key_id) DO NOTHING",
        )
        .bind(shared::to_db_seq(cp.up_to_seq)?)
        .bind(&cp.key_id)
        .bind(&cp.hash)
        .bind(&cp.tree_root)
        .bind(cp.signed_at)
        .bind(&cp.signature)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn checkpoints(
        &self,
        from_seq: u64,
        to_seq: Option<u64>,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT up_to_seq, key_id, hash, tree_root, signed_at, signature FROM audit_checkpoints \
             WHERE up_to_seq >= $1 AND up_to_seq <= $2 ORDER BY up_to_seq, key_id",
        )
        .bind(db_seq(from_seq))
        .bind(db_seq(to_seq.unwrap_or(u64::MAX)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT up_to_seq, key_id, hash, tree_root, signed_at, signature FROM audit_checkpoints \
             ORDER BY up_to_seq DESC, key_id LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    async fn redact_details(&self, seq: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE audit_log SET details = NULL WHERE seq = $1 AND details IS NOT NULL",
        )
        .bind(shared::to_db_seq(seq)?)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
