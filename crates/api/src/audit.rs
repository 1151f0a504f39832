//! `GET /api/v1/audit`: the caller's tenant's audit records, for roles policy allows to read
//! audit data (`audit.read`: auditor, admin), filtered and paged by seq.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use amas_store::audit::{AuditDecision, AuditQuery, StoredAuditRecord};
use amas_types::Principal;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub task_id: Option<String>,
    pub trace_id: Option<String>,
    pub principal: Option<String>,
    pub decision: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub records: Vec<StoredAuditRecord>,
    /// Pass as `cursor` for the next page; `None` when this page was not full.
    pub next_cursor: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = crate::tasks::page_limit(params.limit)?;
    let time = |field: &str, text: Option<&String>| -> Result<Option<DateTime<Utc>>, ApiError> {
        text.map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 timestamp"))
        })
        .transpose()
    };
    let query = AuditQuery {
        from_seq: match &params.cursor {
            None => 1,
            Some(c) => c.parse::<u64>().ok().filter(|s| *s >= 1).ok_or_else(|| {
                ApiError::invalid("cursor", "must be a cursor returned by a previous page")
            })?,
        },
        to_seq: None,
        since: time("since", params.since.as_ref())?,
        until: time("until", params.until.as_ref())?,
        tenant: None,
        task_id: params
            .task_id
            .as_deref()
            .map(|t| {
                t.parse()
                    .map_err(|_| ApiError::invalid("task_id", "must be a task id (UUID)"))
            })
            .transpose()?,
        trace_id: params.trace_id,
        principal: params.principal,
        decision: params
            .decision
            .as_deref()
            .map(|d| {
                AuditDecision::parse(d).ok_or_else(|| {
                    ApiError::invalid(
                        "decision",
                        "must be one of allow, deny, require_approval, approval_granted, approval_denied, approval_expired, recorded",
                    )
                })
            })
            .transpose()?,
        limit,
    };
    let records = app
        .runtime
        .reader()
        .audit_records(&principal, query)
        .await?;
    let full = records.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = full
        .then(|| records.last().map(|r| (r.seq + 1).to_string()))
        .flatten();
    Ok(Json(AuditPage {
        records,
        next_cursor,
    }))
}
