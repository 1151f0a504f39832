//! What both backends share, so they agree: what a valid append is, how the status projection
//! moves, how events, seqs and timestamps are encoded, and how a page is cut.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use amas_types::{Approval, ApprovalId, JournalEvent, JournalRecord, TaskId, TaskStatus, TenantId};

use crate::StoreError;

/// Why an append attempt failed: a store error, or a lost race that the backend reports as a
/// conflict once it has read the seq that won.
pub(crate) enum Failed {
    Store(StoreError),
    Raced,
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for Failed {
    /// A unique violation on `(task_id, seq)` or the task's id means another writer took the seq.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Raced,
            _ => Self::Store(e.into()),
        }
    }
}

/// Trims the extra row fetched beyond `limit` and returns the next cursor (the `key` of the
/// page's last item) when there was one.
pub(crate) fn page_cursor<T, C>(
    items: &mut Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> C,
) -> Option<C> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    }
}

/// Checks a batch before touching the database: non-empty, a new task starts with its
/// submission, a submission appears only as seq 1, and nothing follows a task's end.
pub(crate) fn validate(expected_last_seq: u64, events: &[JournalEvent]) -> Result<(), StoreError> {
    let Some(first) = events.first() else {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event".to_owned(),
        ));
    };
    if expected_last_seq == 0 && !matches!(first, JournalEvent::TaskSubmitted { .. }) {
        return Err(StoreError::InvalidAppend(format!(
            "the first event of a task must be task_submitted, got {}",
            first.kind()
        )));
    }
    if let JournalEvent::TaskSubmitted {
        spec, principal, ..
    } = first
    {
        // These become indexed text columns, and PostgreSQL text cannot hold NUL; refusing it
        // in both backends keeps them interchangeable. Event payloads may contain NUL.
        for (field, value) in [
            ("tenant", principal.tenant.0.as_str()),
            ("task_type", spec.task_type.as_str()),
            ("title", spec.title.as_str()),
        ] {
            if value.contains('\0') {
                return Err(StoreError::InvalidAppend(format!(
                    "the submitted {field} contains a NUL character"
                )));
            }
        }
    }
    for (offset, event) in events.iter().enumerate() {
        let seq = seq_at(expected_last_seq, offset)?;
        if seq != 1 && matches!(event, JournalEvent::TaskSubmitted { .. }) {
            return Err(StoreError::InvalidAppend(format!(
                "task_submitted may only be the first event of a task, not seq {seq}"
            )));
        }
        if offset + 1 < events.len() && ends_task(event) {
            return Err(StoreError::InvalidAppend(format!(
                "{} ends the task: no event may follow it (seq {seq})",
                event.kind()
            )));
        }
    }
    Ok(())
}

/// Whether `event` ends its task (success, failure, cancellation).
fn ends_task(event: &JournalEvent) -> bool {
    event.status_effect().is_some_and(TaskStatus::is_terminal)
}

/// The fence: a task whose journal holds its end (`status` is terminal) takes no more events.
pub(crate) fn refuse_if_ended(task: TaskId, status: TaskStatus) -> Result<(), StoreError> {
    if status.is_terminal() {
        return Err(StoreError::TaskEnded { task, status });
    }
    Ok(())
}

/// The seq of the event at `offset` in a batch appended after `expected_last_seq`, checked to fit
/// the databases' signed 64-bit integers.
pub(crate) fn seq_at(expected_last_seq: u64, offset: usize) -> Result<u64, StoreError> {
    u64::try_from(offset)
        .ok()
        .and_then(|o| expected_last_seq.checked_add(o)?.checked_add(1))
        .filter(|seq| i64::try_from(*seq).is_ok())
        .ok_or_else(|| StoreError::InvalidAppend("sequence number out of range".to_owned()))
}

/// The status after `events`, starting from `current` (`None` for a new task). A terminal status
/// is final, as in `TaskState::apply`, so the projection and the fold never disagree.
pub(crate) fn project_status(current: Option<TaskStatus>, events: &[JournalEvent]) -> TaskStatus {
    events.iter().filter_map(JournalEvent::status_effect).fold(
        current.unwrap_or(TaskStatus::Queued),
        |status, effect| {
            if status.is_terminal() { status } else { effect }
        },
    )
}

/// The ids of the approvals a batch opens, votes on or resolves, without duplicates.
pub(crate) fn touched_approvals(events: &[JournalEvent]) -> Vec<ApprovalId> {
    let mut ids: Vec<ApprovalId> = Vec::new();
    for event in events {
        let id = match event {
            JournalEvent::ApprovalRequested { approval_id, .. }
            | JournalEvent::ApprovalVoted { approval_id, .. }
            | JournalEvent::ApprovalResolved { approval_id, .. } => approval_id,
            _ => continue,
        };
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// Folds a batch's approval events into `approvals` (the touched ones, as stored before the
/// batch), exactly as `TaskState::apply` does. A vote for an unknown approval is ignored there
/// too, so the projection and the fold agree.
pub(crate) fn apply_approvals(
    approvals: &mut BTreeMap<ApprovalId, Approval>,
    task: TaskId,
    tenant: &TenantId,
    events: &[JournalEvent],
    at: DateTime<Utc>,
) {
    for event in events {
        match event {
            JournalEvent::ApprovalRequested { .. } => {
                if let Some(a) = Approval::requested(task, tenant, event, at) {
                    approvals.insert(a.id.clone(), a);
                }
            }
            JournalEvent::ApprovalVoted { approval_id, .. }
            | JournalEvent::ApprovalResolved { approval_id, .. } => {
                if let Some(a) = approvals.get_mut(approval_id) {
                    a.apply(event, at);
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn encode_approval(approval: &Approval) -> Result<String, StoreError> {
    serde_json::to_string(approval)
        .map_err(|e| StoreError::InvalidAppend(format!("approval does not serialize: {e}")))
}

pub(crate) fn decode_approval(json: &str) -> Result<Approval, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("approval does not decode: {e}")))
}

/// The listing fields a new task's projection row is seeded with.
pub(crate) struct NewTask<'a> {
    pub tenant: &'a str,
    pub task_type: &'a str,
    pub title: &'a str,
    pub priority: i16,
}

impl<'a> NewTask<'a> {
    /// From the first event of a validated batch for a new task.
    pub(crate) fn from_first(events: &'a [JournalEvent]) -> Result<Self, StoreError> {
        match events.first() {
            Some(JournalEvent::TaskSubmitted {
                spec, principal, ..
            }) => Ok(Self {
                tenant: &principal.tenant.0,
                task_type: &spec.task_type,
                title: &spec.title,
                priority: i16::from(spec.priority.get()),
            }),
            _ => Err(StoreError::InvalidAppend(
                "the first event of a task must be task_submitted".to_owned(),
            )),
        }
    }
}

/// The events of a batch as stored: seq, kind and JSON text.
pub(crate) struct Encoded {
    pub seqs: Vec<i64>,
    pub kinds: Vec<&'static str>,
    pub json: Vec<String>,
}

pub(crate) fn encode(
    expected_last_seq: u64,
    events: &[JournalEvent],
) -> Result<Encoded, StoreError> {
    let mut out = Encoded {
        seqs: Vec::with_capacity(events.len()),
        kinds: Vec::with_capacity(events.len()),
        json: Vec::with_capacity(events.len()),
    };
    for (offset, event) in events.iter().enumerate() {
        out.seqs
            .push(to_db_seq(seq_at(expected_last_seq, offset)?)?);
        out.kinds.push(event.kind());
        out.json
            .push(serde_json::to_string(event).map_err(|e| {
                StoreError::InvalidAppend(format!("event does not serialize: {e}"))
            })?);
    }
    Ok(out)
}

/// The records an append returns, built from what was written rather than read back.
pub(crate) fn records(
    task: TaskId,
    expected_last_seq: u64,
    recorded_at: DateTime<Utc>,
    events: &[JournalEvent],
) -> Result<Vec<JournalRecord>, StoreError> {
    events
        .iter()
        .enumerate()
        .map(|(offset, event)| {
            Ok(JournalRecord {
                task_id: task,
                seq: seq_at(expected_last_seq, offset)?,
                recorded_at,
                event: event.clone(),
            })
        })
        .collect()
}

/// One event as stored JSON text.
pub(crate) fn encode_one(event: &JournalEvent) -> Result<String, StoreError> {
    serde_json::to_string(event)
        .map_err(|e| StoreError::InvalidAppend(format!("event does not serialize: {e}")))
}

/// A purge may only touch a task that exists and has ended.
pub(crate) fn check_purgeable(task: TaskId, status: Option<&str>) -> Result<(), StoreError> {
    match status {
        None => Err(StoreError::NotPurgeable {
            task,
            status: "unknown".to_owned(),
        }),
        Some(text) if parse_status(text)?.is_terminal() => Ok(()),
        Some(text) => Err(StoreError::NotPurgeable {
            task,
            status: text.to_owned(),
        }),
    }
}

pub(crate) fn decode_event(task: TaskId, seq: u64, json: &str) -> Result<JournalEvent, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Corrupt(format!("task {task} seq {seq}: event does not decode: {e}"))
    })
}

/// Now, truncated to the microseconds both databases keep, so what an append returns equals what
/// a later read returns.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Fixed-width RFC 3339 in UTC, so text order is time order in SQLite.
pub(crate) fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("bad timestamp {text:?}: {e}")))
}

pub(crate) fn to_db_seq(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::InvalidAppend(format!("seq {seq} out of range")))
}

pub(crate) fn from_db_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative seq {seq}")))
}

pub(crate) fn parse_status(text: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown status {text:?}")))
}

pub(crate) fn parse_priority(value: i64) -> Result<amas_types::Priority, StoreError> {
    amas_types::Priority::new(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What purging one journal row writes, the same on every backend: the tombstoned event, and
/// the copies of its payload kept elsewhere (the listing title, an approval's arguments).
pub(crate) struct PurgedRow {
    /// The tombstoned event, encoded for the `journal.event` column.
    pub event: String,
    /// The new `tasks.title`, for a purged submission.
    pub title: Option<String>,
    /// The approval whose `arguments` become the tombstone, for a purged approval request.
    pub approval: Option<(ApprovalId, serde_json::Value)>,
}

/// The purge of the row holding `event_json` (`None` when the event carries no payload).
pub(crate) fn purge_row(
    task: TaskId,
    seq: u64,
    event_json: &str,
    at: DateTime<Utc>,
) -> Result<Option<PurgedRow>, StoreError> {
    let event = decode_event(task, seq, event_json)?;
    let Some(tombstoned) = crate::retention::tombstone_event(&event, at) else {
        return Ok(None);
    };
    let (title, approval) = match &tombstoned {
        JournalEvent::TaskSubmitted { spec, .. } => (Some(spec.title.clone()), None),
        JournalEvent::ApprovalRequested {
            approval_id,
            arguments,
            ..
        } => (None, Some((approval_id.clone(), arguments.clone()))),
        _ => (None, None),
    };
    Ok(Some(PurgedRow {
        event: encode_one(&tombstoned)?,
        title,
        approval,
    }))
}

/// The approval document `doc` with its `arguments` replaced.
pub(crate) fn approval_with_arguments(
    doc: &str,
    arguments: &serde_json::Value,
) -> Result<String, StoreError> {
    let mut approval = decode_approval(doc)?;
    approval.arguments = arguments.clone();
    encode_approval(&approval)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The projection must agree with the fold: once terminal, later effects are ignored.
    #[test]
    fn terminal_status_is_final_within_and_across_batches() {
        let cancel = JournalEvent::TaskCancelled { reason: "r".into() };
        let done = JournalEvent::TaskSucceeded {
            result: serde_json::Value::Null,
        };
        assert_eq!(
            project_status(
                Some(TaskStatus::Queued),
                &[JournalEvent::TaskStarted, cancel, done.clone()]
            ),
            TaskStatus::Cancelled
        );
        assert_eq!(
            project_status(Some(TaskStatus::Failed), &[done]),
            TaskStatus::Failed
        );
        assert_eq!(
            project_status(
                Some(TaskStatus::Running),
                &[JournalEvent::StepStarted {
                    step: "s".into(),
                    agent: "a".into(),
                    input: serde_json::Value::Null,
                }]
            ),
            TaskStatus::Running
        );
    }

    #[test]
    fn seqs_that_do_not_fit_the_database_are_rejected() {
        assert!(seq_at(u64::MAX, 0).is_err());
        assert!(seq_at(i64::MAX as u64 - 1, 1).is_err());
        assert_eq!(seq_at(4, 2).ok(), Some(7));
    }

    #[test]
    fn timestamps_roundtrip_through_text_at_micro_precision() {
        let at = now();
        assert_eq!(parse_time(&format_time(at)).ok(), Some(at));
    }
}
