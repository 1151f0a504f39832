//! Task operations, as plain async functions that know nothing about HTTP: the handlers in
//! `routes` call these and map the result.

use std::collections::BTreeMap;

use amas_config::AmasConfig;
use amas_runtime::Runtime;
use amas_store::{TaskFilter, TaskPage};
use amas_types::{Principal, TaskId, TaskStatus};

use crate::dto::{CreateTask, ListQuery, TaskCreated, TaskList};
use crate::error::ApiError;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// A page size from the `limit` query parameter: 1..=500, 50 when absent.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ))
    }
}

pub async fn create_task(
    runtime: &Runtime,
    principal: Principal,
    body: CreateTask,
    trace_id: Option<String>,
) -> Result<TaskCreated, ApiError> {
    let floor = body.floor()?;
    let spec = body.into_spec()?;
    let task_type = spec.task_type.clone();
    let record = runtime
        .admission()
        .submit_as(principal, spec, floor, trace_id)
        .await?;
    Ok(TaskCreated {
        id: record.task_id.to_string(),
        status: TaskStatus::Queued,
        task_type,
        created_at: record.recorded_at,
    })
}

pub async fn list_tasks(
    runtime: &Runtime,
    principal: &Principal,
    query: ListQuery,
) -> Result<TaskList, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "must be one of queued, running, waiting_approval, succeeded, failed, cancelled",
            )
        })?),
    };
    let limit = page_limit(query.limit)?;
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<TaskId>().map_err(|_| {
            ApiError::invalid("cursor", "must be a cursor returned by a previous page")
        })?),
    };
    let filter = TaskFilter {
        tenant: None,
        status,
        task_type: query.task_type,
        limit,
        cursor,
    };
    let TaskPage { tasks, next_cursor } = runtime.reader().list_tasks(principal, filter).await?;
    Ok(TaskList {
        tasks,
        next_cursor: next_cursor.map(|c| c.to_string()),
    })
}

/// The reason a cancellation is recorded with: the caller's (at most 500 characters), or who
/// cancelled.
pub fn cancel_reason(principal: &Principal, reason: Option<String>) -> Result<String, ApiError> {
    let reason = reason.unwrap_or_else(|| format!("cancelled by {}", principal.sub));
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 500 characters",
        ));
    }
    Ok(reason)
}

/// The seq a live stream resumes after, from its `Last-Event-ID` values (the `id` of the last
/// event the client got, which is the event's seq): 0, from the start, without one.
pub fn resume_after<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<u64, ApiError> {
    let Some(value) = values.next() else {
        return Ok(0);
    };
    if values.next().is_some() {
        return Err(ApiError::BadLastEventId {
            reason: "sent more than once",
        });
    }
    let digits = value.iter().all(u8::is_ascii_digit);
    // Longer than any u64 would overflow; an empty value names no event.
    if !digits || value.is_empty() || value.len() > 20 {
        return Err(ApiError::BadLastEventId {
            reason: "must be the id (a seq number) of an event this stream sent",
        });
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(ApiError::BadLastEventId {
            reason: "must be the id (a seq number) of an event this stream sent",
        })
}

pub(crate) fn parse_id(id: &str) -> Result<TaskId, ApiError> {
    // A malformed id cannot name a task: same answer as an unknown one.
    id.parse::<TaskId>().map_err(|_| ApiError::NotFound)
}

/// Agents as the API shows them (contracts included, prompts too: they are configuration).
pub fn agents(config: &AmasConfig) -> serde_json::Value {
    serde_json::to_value(&config.agents).unwrap_or_default()
}

pub fn workflows(config: &AmasConfig) -> serde_json::Value {
    let map: BTreeMap<_, _> = config.workflows.iter().collect();
    serde_json::to_value(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(values: &[&str]) -> Result<u64, ApiError> {
        resume_after(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn last_event_ids_are_seqs() {
        assert_eq!(after(&[]).ok(), Some(0), "no header: from the start");
        assert_eq!(after(&["0"]).ok(), Some(0));
        assert_eq!(after(&["17"]).ok(), Some(17));
        assert_eq!(after(&["18446744073709551615"]).ok(), Some(u64::MAX));
        for bad in [
            &[""][..],
            &["-1"],
            &["1.5"],
            &[" 3"],
            &["abc"],
            &["18446744073709551616"],
            &["123456789012345678901"],
            &["1", "2"],
        ] {
            assert!(
                matches!(after(bad), Err(ApiError::BadLastEventId { .. })),
                "{bad:?}"
            );
        }
    }
}
