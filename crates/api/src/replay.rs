//! `POST /api/v1/tasks/{id}/replay`: re-drives a task from its journal with no model or tool
//! calls and reports every recorded decision that the policies now in force would decide
//! differently. For roles policy lets read audit data (`audit.read`: auditor, admin); another
//! tenant's task is not found.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use amas_runtime::ReplayReport;
use amas_types::Principal;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiPath, OptionalJson};

/// The optional body: nothing to choose yet (the server replays under its own policies; a
/// caller never names a server-side policy directory).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayTask {}

pub async fn replay_task(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(ReplayTask {}): OptionalJson<ReplayTask>,
) -> Result<Json<ReplayReport>, ApiError> {
    let task = crate::tasks::parse_id(&id)?;
    Ok(Json(app.runtime.reader().replay(&principal, task).await?))
}
