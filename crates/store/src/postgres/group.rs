//! Group commit on PostgreSQL: the journal appends of many tasks and the audit records queued
//! beside them in one transaction, with one statement per kind of row (arrays through
//! `UNNEST`) rather than one per append.
//!
//! Each task's projection row is locked (`FOR UPDATE`, in id order, so two batches never wait
//! on each other in a circle) and each append checked against its expected seq on its own: a
//! stale one is refused alone. A new task is inserted with `ON CONFLICT DO NOTHING`, so a
//! process that created the same task first refuses that append only instead of aborting the
//! transaction. The audit table's lock is taken last, after the row locks, so it is held for
//! as short a time as the batch allows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use amas_types::{JournalEvent, JournalRecord, TaskId, TaskStatus, TenantId};

use super::{PostgresStore, leases, notify, project_approvals};
use crate::StoreError;
use crate::audit::AuditRecord;
use crate::commit::{Append, Committed};
use crate::shared::{self, Failed, NewTask};

/// A validated, encoded append waiting for its turn.
struct Prepared<'a> {
    /// Its position in the caller's batch.
    index: usize,
    task: TaskId,
    expected_last_seq: u64,
    events: &'a [JournalEvent],
    encoded: shared::Encoded,
    fence: Option<crate::Fence>,
}

/// A task's projection row as the transaction has it.
#[derive(Clone)]
struct Current {
    last_seq: u64,
    status: TaskStatus,
    tenant: TenantId,
}

type Results = Vec<Option<Result<Vec<JournalRecord>, StoreError>>>;

impl PostgresStore {
    /// The group commit. A task that appears more than once is handled in rounds (one
    /// occurrence per round), so each round reads the projection the previous one wrote.
    pub(super) async fn try_group(
        &self,
        appends: &[Append],
        records: &[AuditRecord],
    ) -> Result<Committed, Failed> {
        let mut results: Results = (0..appends.len()).map(|_| None).collect();
        let mut rounds: Vec<Vec<Prepared<'_>>> = Vec::new();
        let mut occurrences: BTreeMap<TaskId, usize> = BTreeMap::new();
        for (index, a) in appends.iter().enumerate() {
            let prepared = shared::validate(a.expected_last_seq, &a.events)
                .and_then(|()| shared::encode(a.expected_last_seq, &a.events));
            match prepared {
                Ok(encoded) => {
                    let round = occurrences.entry(a.task).or_default();
                    if rounds.len() <= *round {
                        rounds.push(Vec::new());
                    }
                    rounds[*round].push(Prepared {
                        index,
                        task: a.task,
                        expected_last_seq: a.expected_last_seq,
                        events: &a.events,
                        encoded,
                        fence: a.fence,
                    });
                    *round += 1;
                }
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        for rec in records {
            crate::audit::validate(rec)?;
        }
        let now = shared::now();

        let mut tx = self.pool.begin().await?;
        for round in &rounds {
            self.round(&mut tx, round, now, &mut results).await?;
        }
        let audit = crate::audit::postgres::append_in(&mut tx, records).await?;
        // One notice per task the batch appended to, delivered when it commits.
        let appended = notify::last_seqs(results.iter().flatten().flatten().flatten());
        notify::send(&mut tx, &self.channel, &appended).await?;
        let submitted = notify::submitted(results.iter().flatten().flatten().flatten());
        notify::send_submitted(&mut tx, self.schema(), &submitted).await?;
        tx.commit().await?;
        Ok(Committed {
            appends: results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(StoreError::InvalidAppend(
                            "the append was not processed".to_owned(),
                        ))
                    })
                })
                .collect(),
            audit,
        })
    }

    /// One round: lock and read the rows, judge each append, create the new tasks, move the
    /// others, insert every journal row, project approvals.
    async fn round(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        round: &[Prepared<'_>],
        now: DateTime<Utc>,
        results: &mut Results,
    ) -> Result<(), Failed> {
        let ids: Vec<Uuid> = round.iter().map(|p| p.task.0).collect();
        let mut current = locked_rows(tx, &ids).await?;
        // The leases of fenced appends, read under the row locks every claim also takes.
        let fenced: Vec<Uuid> = round
            .iter()
            .filter(|p| p.fence.is_some())
            .map(|p| p.task.0)
            .collect();
        let held = leases::current(tx, &fenced).await?;
        // New tasks first: one that another process created meanwhile is refused here. A
        // worker's (fenced) append never creates a task: it is judged below, and refused.
        let fresh: Vec<&Prepared<'_>> = round
            .iter()
            .filter(|p| {
                !current.contains_key(&p.task) && p.expected_last_seq == 0 && p.fence.is_none()
            })
            .collect();
        let created = insert_new(tx, &fresh, now).await?;
        let lost: Vec<Uuid> = fresh
            .iter()
            .filter(|p| !created.contains_key(&p.task))
            .map(|p| p.task.0)
            .collect();
        if !lost.is_empty() {
            current.extend(locked_rows(tx, &lost).await?);
        }
        let mut accepted: Vec<(&Prepared<'_>, Current)> = Vec::with_capacity(round.len());
        let mut moved: Vec<(Uuid, &'static str, i64)> = Vec::new();
        for p in round {
            let row = match created.get(&p.task) {
                Some(row) => row.clone(),
                None => {
                    let known = current.get(&p.task);
                    // The fence first: an ended task takes nothing, whatever seq is expected.
                    if let Some(c) = known
                        && let Err(e) = shared::refuse_if_ended(p.task, c.status)
                    {
                        results[p.index] = Some(Err(e));
                        continue;
                    }
                    // Then the lease's fence: a stale epoch or an expired lease writes nothing.
                    if let Some(fence) = p.fence
                        && let Err(e) = leases::check(&held, p.task, fence)
                    {
                        results[p.index] = Some(Err(e));
                        continue;
                    }
                    let actual = known.map_or(0, |c| c.last_seq);
                    let Some(known) = known.filter(|_| actual == p.expected_last_seq) else {
                        results[p.index] = Some(Err(StoreError::Conflict {
                            task: p.task,
                            expected: p.expected_last_seq,
                            actual,
                        }));
                        continue;
                    };
                    let row = Current {
                        last_seq: shared::seq_at(
                            p.expected_last_seq,
                            p.events.len().saturating_sub(1),
                        )?,
                        status: shared::project_status(Some(known.status), p.events),
                        tenant: known.tenant.clone(),
                    };
                    moved.push((
                        p.task.0,
                        row.status.as_str(),
                        shared::to_db_seq(row.last_seq)?,
                    ));
                    row
                }
            };
            accepted.push((p, row));
        }
        move_rows(tx, &moved, now).await?;
        insert_events(tx, &accepted, now).await?;
        for (p, row) in &accepted {
            project_approvals(tx, p.task, &row.tenant, row.status, p.events, now).await?;
            results[p.index] = Some(shared::records(p.task, p.expected_last_seq, now, p.events));
        }
        Ok(())
    }
}

/// The projection rows of `ids`, locked in id order.
async fn locked_rows(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<BTreeMap<TaskId, Current>, Failed> {
    let rows = sqlx::query(
        "SELECT id, last_seq, status, tenant FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut current = BTreeMap::new();
    for row in rows {
        current.insert(
            TaskId(row.try_get("id")?),
            Current {
                last_seq: shared::from_db_seq(row.try_get("last_seq")?)?,
                status: shared::parse_status(row.try_get("status")?)?,
                tenant: TenantId(row.try_get("tenant")?),
            },
        );
    }
    Ok(current)
}

/// Inserts the projection rows of new tasks in one statement; returns the rows it created (a
/// task another process created first is not among them).
async fn insert_new(
    tx: &mut Transaction<'_, Postgres>,
    fresh: &[&Prepared<'_>],
    now: DateTime<Utc>,
) -> Result<BTreeMap<TaskId, Current>, Failed> {
    if fresh.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut planned = BTreeMap::new();
    let (mut ids, mut tenants, mut types, mut titles) = (vec![], vec![], vec![], vec![]);
    let (mut priorities, mut statuses, mut seqs) = (vec![], vec![], vec![]);
    for p in fresh {
        let new = NewTask::from_first(p.events)?;
        let row = Current {
            last_seq: shared::seq_at(0, p.events.len().saturating_sub(1))?,
            status: shared::project_status(None, p.events),
            tenant: TenantId(new.tenant.to_owned()),
        };
        ids.push(p.task.0);
        tenants.push(new.tenant);
        types.push(new.task_type);
        titles.push(new.title);
        priorities.push(new.priority);
        statuses.push(row.status.as_str());
        seqs.push(shared::to_db_seq(row.last_seq)?);
        planned.insert(p.task, row);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO tasks (id, tenant, task_type, title, priority, status, created_at, \
         updated_at, last_seq) \
         SELECT n.id, n.tenant, n.task_type, n.title, n.priority, n.status, $1, $1, n.last_seq \
         FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::smallint[], \
                     $7::text[], $8::bigint[]) \
              AS n (id, tenant, task_type, title, priority, status, last_seq) \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(now)
    .bind(&ids)
    .bind(&tenants)
    .bind(&types)
    .bind(&titles)
    .bind(&priorities)
    .bind(&statuses)
    .bind(&seqs)
    .fetch_all(&mut **tx)
    .await?;
    planned.retain(|task, _| inserted.contains(&task.0));
    Ok(planned)
}

/// Moves the status and last seq of existing tasks, one statement for all.
async fn move_rows(
    tx: &mut Transaction<'_, Postgres>,
    moved: &[(Uuid, &'static str, i64)],
    now: DateTime<Utc>,
) -> Result<(), Failed> {
    if moved.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = moved.iter().map(|m| m.0).collect();
    let statuses: Vec<&str> = moved.iter().map(|m| m.1).collect();
    let seqs: Vec<i64> = moved.iter().map(|m| m.2).collect();
    sqlx::query(
        "UPDATE tasks SET status = v.status, updated_at = $1, last_seq = v.last_seq \
         FROM UNNEST($2::uuid[], $3::text[], $4::bigint[]) AS v (id, status, last_seq) \
         WHERE tasks.id = v.id",
    )
    .bind(now)
    .bind(&ids)
    .bind(&statuses)
    .bind(&seqs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The journal rows of every accepted append of a round, in one statement.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    accepted: &[(&Prepared<'_>, Current)],
    now: DateTime<Utc>,
) -> Result<(), Failed> {
    let rows = accepted.iter().map(|(p, _)| p.encoded.seqs.len()).sum();
    if rows == 0 {
        return Ok(());
    }
    let mut ids: Vec<Uuid> = Vec::with_capacity(rows);
    let mut seqs: Vec<i64> = Vec::with_capacity(rows);
    let mut kinds: Vec<&str> = Vec::with_capacity(rows);
    let mut events: Vec<&str> = Vec::with_capacity(rows);
    for (p, _) in accepted {
        for ((seq, kind), json) in p
            .encoded
            .seqs
            .iter()
            .zip(&p.encoded.kinds)
            .zip(&p.encoded.json)
        {
            ids.push(p.task.0);
            seqs.push(*seq);
            kinds.push(kind);
            events.push(json);
        }
    }
    sqlx::query(
        "INSERT INTO journal (task_id, seq, recorded_at, kind, event) \
         SELECT e.task_id, e.seq, $1, e.kind, e.event::json \
         FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[]) \
              AS e (task_id, seq, kind, event)",
    )
    .bind(now)
    .bind(&ids)
    .bind(&seqs)
    .bind(&kinds)
    .bind(&events)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
