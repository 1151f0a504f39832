//! Task operations, as plain async functions that know nothing about HTTP: the handlers in
//! `routes` call these and map the result.

use std::collections::BTreeMap;

use amas_runtime::{ApiResource, Runtime};
use amas_store::{TaskFilter, TaskPage};
use amas_types::{JournalRecord, Principal, TaskId, TaskState, TaskStatus};

use crate::dto::{CreateTask, ListQuery, TaskCreated, TaskList, TaskView};
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

/// The task if it exists, belongs to the principal's tenant, and policy lets the principal
/// perform `operation` on it. Another tenant's task is reported exactly like a missing one
/// (404, before policy is asked), so ids leak nothing; a refusal on one's own tenant's task is
/// a 403.
pub async fn visible_task(
    runtime: &Runtime,
    principal: &Principal,
    id: &str,
    operation: &str,
) -> Result<TaskState, ApiError> {
    let id = parse_id(id)?;
    let state = match runtime.get(id).await? {
        Some(state) if state.principal.tenant == principal.tenant => state,
        Some(_) => {
            runtime
                .cross_tenant_attempt(principal, operation, &format!("task:{id}"))
                .await;
            return Err(ApiError::NotFound);
        }
        None => return Err(ApiError::NotFound),
    };
    let resource = ApiResource {
        tenant: &state.principal.tenant,
        owner: &state.principal.sub,
    };
    runtime
        .authorize_api(principal, operation, Some(resource))
        .await?;
    Ok(state)
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

pub async fn task_events(
    runtime: &Runtime,
    principal: &Principal,
    id: &str,
) -> Result<(TaskState, Vec<JournalRecord>), ApiError> {
    let state = visible_task(runtime, principal, id, "task.events").await?;
    let records = runtime
        .journal()
        .read(state.id, 0)
        .await
        .map_err(amas_runtime::RuntimeError::from)?;
    Ok((state, records))
}

pub async fn cancel_task(
    runtime: &Runtime,
    principal: &Principal,
    id: &str,
    reason: Option<String>,
) -> Result<TaskState, ApiError> {
    let state = visible_task(runtime, principal, id, "task.cancel").await?;
    let reason = reason.unwrap_or_else(|| format!("cancelled by {}", principal.sub));
    if reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "must be at most 500 characters",
        ));
    }
    Ok(runtime.cancel(state.id, reason).await?)
}

/// The task as `principal` may see it: payloads above its clearance redacted, the view marked
/// and the redaction audited.
pub async fn release_task(
    runtime: &Runtime,
    principal: &Principal,
    mut state: TaskState,
    action: &str,
) -> TaskView {
    let released = runtime.outbound(principal).task(&mut state);
    runtime
        .audit_release(principal, action, state.id, &released)
        .await;
    let mut view = TaskView::from(state);
    view.redacted_for_clearance = released.redacted();
    view
}

/// One journal record as `principal` may see it (JSON), judged at `floor` (the task's most
/// sensitive lineage node) and its own scan; an object gets `redacted_for_clearance: true`
/// when it was above clearance.
pub fn release_record(
    outbound: &amas_runtime::Outbound<'_>,
    floor: amas_dataprotect::Level,
    record: &JournalRecord,
    released: &mut amas_runtime::Released,
) -> serde_json::Value {
    let mut value = serde_json::to_value(record)
        .unwrap_or_else(|_| serde_json::Value::String(amas_runtime::WITHHELD.to_owned()));
    let mut mine = amas_runtime::Released::default();
    if let Some(event) = value.get_mut("event") {
        outbound.value("event", floor, event, &mut mine);
    }
    if mine.redacted()
        && let Some(obj) = value.as_object_mut()
    {
        obj.insert(
            "redacted_for_clearance".to_owned(),
            serde_json::Value::Bool(true),
        );
    }
    released.merge(mine);
    value
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
