//! Approvals: listing what the caller may decide, reading one, and voting. Handlers are thin;
//! the rules (tenant, requester, roles, dual approval) live in the runtime and in policy.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use amas_runtime::{ApiResource, Runtime};
use amas_store::ApprovalFilter;
use amas_types::{Approval, ApprovalStatus, Principal, Verdict};

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
    app.runtime
        .authorize_api(&principal, "approval.list", None)
        .await?;
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
        not_requested_by: Some(principal.sub.clone()),
        limit,
        cursor: query.cursor,
    };
    let page = app.runtime.approvals(&principal, filter).await?;
    let mut approvals = page.approvals;
    for approval in &mut approvals {
        release(&app.runtime, &principal, "approval_list", approval).await;
    }
    Ok(Json(ApprovalList {
        approvals,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/approvals/{id}`: one approval of the caller's tenant.
pub async fn get(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Approval>, ApiError> {
    let mut approval = visible_approval(&app.runtime, &principal, &id, "approval.list").await?;
    release(&app.runtime, &principal, "approval_read", &mut approval).await;
    Ok(Json(approval))
}

/// Redacts the tool arguments of `approval` when they are above `principal`'s clearance (an
/// approver sees what they approve in the form their clearance allows: `***-**-****`), and
/// audits the redaction.
async fn release(runtime: &Runtime, principal: &Principal, action: &str, approval: &mut Approval) {
    let outbound = runtime.outbound(principal);
    let mut released = amas_runtime::Released::default();
    outbound.value(
        "arguments",
        amas_dataprotect::Level::Public,
        &mut approval.arguments,
        &mut released,
    );
    runtime
        .audit_release(principal, action, approval.task_id, &released)
        .await;
}

/// The approval if it exists, belongs to the principal's tenant (else 404, before policy is
/// asked, so ids leak nothing), and policy lets the principal perform `operation` on it.
async fn visible_approval(
    runtime: &Runtime,
    principal: &Principal,
    id: &str,
    operation: &str,
) -> Result<Approval, ApiError> {
    let approval = runtime
        .approval(id, principal, operation)
        .await?
        .ok_or(ApiError::NotFound)?;
    let resource = ApiResource {
        tenant: &approval.tenant,
        owner: &approval.requested_by,
    };
    runtime
        .authorize_api(principal, operation, Some(resource))
        .await?;
    Ok(approval)
}

/// `POST /api/v1/approvals/{id}/approve`.
pub async fn approve(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<VoteBody>,
) -> Result<Json<Approval>, ApiError> {
    vote(&app.runtime, principal, &id, Verdict::Approve, body).await
}

/// `POST /api/v1/approvals/{id}/deny`.
pub async fn deny(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<VoteBody>,
) -> Result<Json<Approval>, ApiError> {
    vote(&app.runtime, principal, &id, Verdict::Deny, body).await
}

async fn vote(
    runtime: &Runtime,
    principal: Principal,
    id: &str,
    verdict: Verdict,
    body: VoteBody,
) -> Result<Json<Approval>, ApiError> {
    visible_approval(runtime, &principal, id, "approval.decide").await?;
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
    let voter = principal.clone();
    let mut approval = runtime
        .decide_approval(id, principal, verdict, reason.to_owned())
        .await?;
    release(runtime, &voter, "approval_decide", &mut approval).await;
    Ok(Json(approval))
}
