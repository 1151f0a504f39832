//! Task operations, as plain async functions that know nothing about HTTP: the handlers in
//! `routes` call these and map the result.

use std::collections::BTreeMap;

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
    runtime
        .authorize_api(&principal, "task.submit", None)
        .await?;
    let floor = body.floor()?;
    let spec = body.into_spec()?;
    let task_type = spec.task_type.clone();
    let record = runtime
        .submit_classified(spec, principal, trace_id, floor)
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
    runtime.authorize_api(principal, "task.list", None).await?;
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
        tenant: Some(principal.tenant.clone()),
        status,
        task_type: query.task_type,
        limit,
        cursor,
    };
    let TaskPage {
        mut tasks,
        next_cursor,
    } = runtime
        .journal()
        .list(&filter)
        .await
        .map_err(amas_runtime::RuntimeError::from)?;
    // A listing has no lineage at hand: each title is judged by its own scan.
    let outbound = runtime.outbound(principal);
    for task in &mut tasks {
        let mut released = amas_runtime::Released::default();
        outbound.text(
            "title",
            amas_dataprotect::Level::Public,
            &mut task.title,
            &mut released,
        );
        // Audited like every other release that redacted something.
        runtime
            .audit_release(principal, "task_list", task.id, &released)
            .await;
    }
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

pub(crate) fn parse_id(id: &str) -> Result<TaskId, ApiError> {
    // A malformed id cannot name a task: same answer as an unknown one.
    id.parse::<TaskId>().map_err(|_| ApiError::NotFound)
}

/// Agents as the API shows them (contracts included, prompts too: they are configuration).
pub fn agents(runtime: &Runtime) -> serde_json::Value {
    serde_json::to_value(&runtime.config().agents).unwrap_or_default()
}

pub fn workflows(runtime: &Runtime) -> serde_json::Value {
    let map: BTreeMap<_, _> = runtime.config().workflows.iter().collect();
    serde_json::to_value(map).unwrap_or_default()
}
