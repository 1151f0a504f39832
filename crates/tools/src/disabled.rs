//! `system_executor` and `dangerous_tool`: policy targets only. They exist so that policy,
//! allowlists and approvals can be exercised on critical-risk tools; this build never executes
//! anything for them, whatever policy decides.

use async_trait::async_trait;

use crate::error::ToolError;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

pub struct Disabled {
    spec: ToolSpec,
}

impl Disabled {
    #[must_use]
    pub fn new(spec: ToolSpec) -> Self {
        Self { spec }
    }
}

#[async_trait]
impl Tool for Disabled {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _ctx: &ToolContext,
        _params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        Err(ToolError::Disabled {
            reason: format!(
                "`{}` is disabled in this build: it is a policy target and never executes",
                self.spec.name
            ),
        })
    }
}
