//! Stage: the agent's side-effect bounds (read-only, network, file reads and writes per task).

use amas_config::SandboxConfig;
use amas_tools::{SideEffects, ToolKind, ToolSpec};
use amas_types::{Decision, Stage};

use super::{allow, deny};
use crate::pipeline::{TaskToolUsage, codes};

/// Refuses (`AMAS-GOV-0004`) a call the agent's sandbox does not permit.
pub(crate) fn sandbox(bounds: &SandboxConfig, spec: &ToolSpec, usage: &TaskToolUsage) -> Decision {
    let refuse = |why: String| deny(Stage::Sandbox, codes::SANDBOX, why);
    match spec.side_effects {
        SideEffects::Write | SideEffects::External if bounds.read_only => {
            return refuse(format!(
                "the agent is read-only and `{}` has {:?} side effects",
                spec.name, spec.side_effects
            ));
        }
        SideEffects::External if !bounds.network => {
            return refuse(format!(
                "the agent has no network access and `{}` reaches outside",
                spec.name
            ));
        }
        SideEffects::None | SideEffects::Read | SideEffects::Write | SideEffects::External => {}
    }
    match spec.kind {
        ToolKind::FileRead if usage.file_reads >= bounds.max_file_reads => refuse(format!(
            "file read limit reached ({} per task)",
            bounds.max_file_reads
        )),
        ToolKind::FileWrite if usage.file_writes >= bounds.max_file_writes => refuse(format!(
            "file write limit reached ({} per task)",
            bounds.max_file_writes
        )),
        _ => allow(Stage::Sandbox),
    }
}
