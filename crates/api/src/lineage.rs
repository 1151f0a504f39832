//! `GET /api/v1/tasks/{id}/lineage`: where each payload of a task came from and how sensitive
//! it is (nodes with level, tags and why; edges from inputs to what was derived from them).
//! Authorized exactly like reading the task (`task.read`); another tenant's task is not found.

use axum::Extension;
use axum::Json;
use axum::extract::State;

use amas_runtime::LineageGraph;
use amas_types::Principal;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::tasks;

pub async fn get_lineage(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LineageGraph>, ApiError> {
    let task = tasks::parse_id(&id)?;
    Ok(Json(
        app.runtime.reader().read_lineage(&principal, task).await?,
    ))
}
