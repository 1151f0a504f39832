//! Request and response bodies of the task API, and their validation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use amas_store::TaskSummary;
use amas_types::{ErrorInfo, Priority, TaskSpec, TaskState, TaskStatus, Usage};

use crate::error::ApiError;

const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 20_000;
const MAX_TASK_TYPE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub task_type: String,
    pub title: String,
    pub description: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub priority: Option<i64>,
    /// A floor the submitter declares for the input's classification.
    #[serde(default)]
    pub classification: Option<DeclaredClassification>,
}

/// `{"level": "confidential", "tags": ["PHI"]}`: the input is at least this sensitive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredClassification {
    pub level: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl CreateTask {
    /// The declared classification floor, checked: an unknown level or tag is refused with the
    /// field it is in.
    pub fn floor(&self) -> Result<Option<amas_dataprotect::Classification>, ApiError> {
        self.classification
            .as_ref()
            .map(|c| {
                amas_runtime::declared_floor(&c.level, &c.tags)
                    .map_err(|e| ApiError::invalid(e.field, e.message))
            })
            .transpose()
    }

    /// Checks the fields a schema cannot express well and builds the spec.
    pub fn into_spec(self) -> Result<TaskSpec, ApiError> {
        let task_type = self.task_type.trim();
        if task_type.is_empty() || task_type.len() > MAX_TASK_TYPE {
            return Err(ApiError::invalid(
                "task_type",
                format!("must be 1 to {MAX_TASK_TYPE} characters"),
            ));
        }
        check_text("title", &self.title, MAX_TITLE)?;
        check_text("description", &self.description, MAX_DESCRIPTION)?;
        let priority = match self.priority {
            None => Priority::DEFAULT,
            Some(p) => {
                Priority::new(p).map_err(|e| ApiError::invalid("priority", e.to_string()))?
            }
        };
        Ok(TaskSpec {
            task_type: task_type.to_owned(),
            title: self.title,
            description: self.description,
            parameters: self.parameters.unwrap_or_default(),
            priority,
        })
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct TaskCreated {
    pub id: String,
    pub status: TaskStatus,
    pub task_type: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub task_type: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TaskList {
    pub tasks: Vec<TaskSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub name: amas_types::StepId,
    pub agent: amas_types::AgentId,
    pub status: amas_types::StepStatus,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub tokens: Usage,
    pub output: Option<Value>,
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Serialize)]
pub struct TaskView {
    pub id: String,
    pub task_type: String,
    pub title: String,
    pub description: String,
    pub parameters: Map<String, Value>,
    pub priority: Priority,
    pub status: TaskStatus,
    pub submitted_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub steps: Vec<StepView>,
    pub tokens: Usage,
    pub result: Option<Value>,
    /// The result's classification (level and tags), once the task has one.
    pub classification: Option<amas_types::DataLabels>,
    pub error: Option<ErrorInfo>,
    /// Whether payloads above the reader's clearance were redacted in this view.
    pub redacted_for_clearance: bool,
}

impl From<amas_runtime::ReleasedTask> for TaskView {
    fn from(released: amas_runtime::ReleasedTask) -> Self {
        let mut view = Self::from(released.state);
        view.redacted_for_clearance = released.redacted_for_clearance;
        view
    }
}

impl From<TaskState> for TaskView {
    fn from(s: TaskState) -> Self {
        let tokens = s.usage();
        let steps = s
            .steps
            .into_values()
            .map(|st| StepView {
                duration_ms: match (st.started_at, st.finished_at) {
                    (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
                    _ => None,
                },
                name: st.step,
                agent: st.agent,
                status: st.status,
                attempts: st.attempts,
                started_at: st.started_at,
                finished_at: st.finished_at,
                tokens: st.usage,
                output: st.output,
                error: st.error,
            })
            .collect();
        Self {
            id: s.id.to_string(),
            task_type: s.spec.task_type,
            title: s.spec.title,
            description: s.spec.description,
            parameters: s.spec.parameters,
            priority: s.spec.priority,
            status: s.status,
            submitted_by: s.principal.sub,
            created_at: s.created_at,
            updated_at: s.updated_at,
            steps,
            tokens,
            result: s.result,
            classification: s.classification,
            error: s.error,
            redacted_for_clearance: false,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelTask {
    pub reason: Option<String>,
}

/// `GET /api/v1/me`: the caller's identity as AMAS understood its token.
#[derive(Debug, Serialize)]
pub struct MeView {
    pub sub: String,
    pub roles: Vec<String>,
    pub tenant: String,
    /// `local_jwt` for the local issuer, `oidc:<name>` for a configured identity provider.
    pub auth_method: String,
    /// The token's verified `iss`: with `sub`, who the caller is.
    pub issuer: String,
}

impl From<amas_types::Principal> for MeView {
    fn from(p: amas_types::Principal) -> Self {
        Self {
            sub: p.sub,
            roles: p.roles,
            tenant: p.tenant.0,
            auth_method: p.auth_method,
            issuer: p.issuer,
        }
    }
}
