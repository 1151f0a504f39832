//! Approvals: listing what the caller may decide, reading one, and voting. Handlers are thin;
//! the rules (tenant, requester, roles, dual approval) live in the runtime and in policy.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use amas_runtime::Runtime;
use amas_store::ApprovalFilter;
use amas_types::{Approval, ApprovalId, ApprovalStatus, Principal, Verdict};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

/// Longest reason kept with a vote.
const MAX_REASON: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// `pending` (default), `approved`, `denied`, `expired` or `all`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub reason: String,
}

/// `GET /api/v1/approvals`: for approvers only, their tenant's approvals they may decide (never
/// their own requests).
pub async fn list(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ApprovalQuery>,
) -> Result<Json<ApprovalList>, ApiError> {
    let status = match query.status.as_deref().unwrap_or("pending") {
        "all" => None,
        s => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "must be one of pending, approved, denied, expired, all",
            )
        })?),
    };
    let limit = crate::tasks::page_limit(query.limit)?;
    if let Some(cursor) = &query.cursor
        && uuid::Uuid::parse_str(cursor).is_err()
    {
        return Err(ApiError::invalid(
            "cursor",
            "must be a cursor returned by a previous page",
        ));
    }
    let filter = ApprovalFilter {
        tenant: None,
        status,
        not_requested_by: Some(principal.identity()),
        limit,
        cursor: query.cursor,
    };
    let page = app
        .runtime
        .reader()
        .read_approvals(&principal, filter)
        .await?;
    Ok(Json(ApprovalList {
        approvals: page.approvals,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/approvals/{id}`: one approval of the caller's tenant.
pub async fn get(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<ApprovalId>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(
        app.runtime.reader().read_approval(&principal, &id).await?,
    ))
}

/// `POST /api/v1/approvals/{id}/approve`.
pub async fn approve(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<ApprovalId>,
    ApiJson(body): ApiJson<VoteBody>,
) -> Result<Json<Approval>, ApiError> {
    vote(&app.runtime, principal, &id, Verdict::Approve, body).await
}

/// `POST /api/v1/approvals/{id}/deny`.
pub async fn deny(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<ApprovalId>,
    ApiJson(body): ApiJson<VoteBody>,
) -> Result<Json<Approval>, ApiError> {
    vote(&app.runtime, principal, &id, Verdict::Deny, body).await
}

async fn vote(
    runtime: &Runtime,
    principal: Principal,
    id: &ApprovalId,
    verdict: Verdict,
    body: VoteBody,
) -> Result<Json<Approval>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "say why you decide this way (it is kept in the journal and audit log)",
        ));
    }
    if reason.len() > MAX_REASON || reason.contains('\0') {
        return Err(ApiError::invalid(
            "reason",
            format!("must be at most {MAX_REASON} bytes of text without NUL"),
        ));
    }
    Ok(Json(
        runtime
            .reader()
            .vote(principal, id, verdict, reason.to_owned())
            .await?,
    ))
}
