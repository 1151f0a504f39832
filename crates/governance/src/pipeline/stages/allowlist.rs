//! Stage: the agent's configured allowlist, enforced whatever policy said.

use amas_types::{Decision, Stage};

use super::{allow, deny};
use crate::pipeline::{ToolCallRequest, codes};

/// Allows a tool the agent lists in `allowed_tools`, refuses any other (`AMAS-GOV-0002`).
pub(crate) fn allowlist(req: &ToolCallRequest<'_>) -> Decision {
    if req.agent.allowed_tools.iter().any(|t| t == req.tool) {
        allow(Stage::Allowlist)
    } else {
        deny(
            Stage::Allowlist,
            codes::NOT_ALLOWLISTED,
            format!(
                "tool `{}` is not in agent `{}`'s allowed_tools",
                req.tool, req.agent.id
            ),
        )
    }
}
