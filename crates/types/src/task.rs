//! What a user submits, who submits it, and the statuses a task and its steps move through.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// Scheduling priority, 1 (lowest) to 10 (highest); 5 when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

/// A priority outside 1..=10.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("priority must be between 1 and 10, got {0}")]
pub struct PriorityError(pub i64);

impl Priority {
    pub const DEFAULT: Self = Self(5);

    /// # Errors
    /// When `value` is outside 1..=10.
    pub fn new(value: i64) -> Result<Self, PriorityError> {
        match u8::try_from(value) {
            Ok(v @ 1..=10) => Ok(Self(v)),
            _ => Err(PriorityError(value)),
        }
    }

    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(i64::from(value))
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> Self {
        p.0
    }
}

/// A task as submitted: validated, immutable once journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_type: String,
    pub title: String,
    pub description: String,
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub priority: Priority,
}

/// Who acts: a user or service identified by a verified token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The subject, as its issuer names it: unique only together with `issuer`.
    pub sub: String,
    pub roles: Vec<String>,
    pub tenant: TenantId,
    /// How the principal was authenticated (`local_jwt`, `oidc:<name>`, `cli`).
    pub auth_method: String,
    /// Who vouched for `sub`: the verified `iss` of the token (`cli` or `system` for AMAS's
    /// own principals). Empty in journals written before issuers were recorded.
    #[serde(default)]
    pub issuer: String,
}

impl Principal {
    /// The principal of in-process CLI runs: the operator at the terminal.
    #[must_use]
    pub fn local_operator() -> Self {
        Self {
            sub: "local-operator".to_owned(),
            roles: vec!["admin".to_owned()],
            tenant: TenantId::default_tenant(),
            auth_method: "cli".to_owned(),
            issuer: "cli".to_owned(),
        }
    }

    /// Who this is: the subject at its issuer. Two principals with the same `sub` from two
    /// issuers are two people.
    #[must_use]
    pub fn identity(&self) -> Identity {
        Identity::new(&self.issuer, &self.sub)
    }
}

/// A person or service: a subject at the issuer that vouched for it. Ownership, self-approval,
/// duplicate votes and distinct approvers all compare identities, never a bare `sub`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
}

impl Identity {
    #[must_use]
    pub fn new(issuer: &str, subject: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        }
    }

    /// Whether this is `subject` at `issuer`.
    #[must_use]
    pub fn is(&self, issuer: &str, subject: &str) -> bool {
        self.issuer == issuer && self.subject == subject
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.issuer.is_empty() {
            f.write_str(&self.subject)
        } else {
            write!(f, "{} ({})", self.subject, self.issuer)
        }
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    /// Paused on at least one pending approval.
    WaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::WaitingApproval,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingApproval => "waiting_approval",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the `snake_case` name used in the API and the store.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once nothing more will happen to the task.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Succeeded | Self::Failed | Self::Cancelled => true,
            Self::Queued | Self::Running | Self::WaitingApproval => false,
        }
    }

    /// The status given how many approvals are still pending: waiting while any is, running
    /// again once none is. Terminal and queued statuses are unchanged.
    #[must_use]
    pub fn with_pending_approvals(self, pending: usize) -> Self {
        match self {
            Self::Running | Self::WaitingApproval if pending > 0 => Self::WaitingApproval,
            Self::WaitingApproval => Self::Running,
            other => other,
        }
    }
}

/// Where a step is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl StepStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}
