//! A task's tool usage rebuilt from its journal, so quotas hold across a restart.

use std::collections::BTreeMap;

use amas_governance::pipeline::TaskToolUsage;
use amas_tools::ToolRegistry;
use amas_types::JournalEvent;

/// Tool usage already recorded in a task's journal (for quotas after a restart): calls that
/// started count, denied ones do not; counted exactly as `ToolRunner::run` counts live calls.
pub(crate) fn usage_from_journal(
    records: &[amas_types::JournalRecord],
    registry: &ToolRegistry,
) -> TaskToolUsage {
    let mut usage = TaskToolUsage::default();
    let mut agents: BTreeMap<&str, &str> = BTreeMap::new();
    let mut arguments: BTreeMap<(&str, &str), &serde_json::Value> = BTreeMap::new();
    for record in records {
        match &record.event {
            JournalEvent::TaskStarted => {
                usage
                    .started_at
                    .get_or_insert(std::time::SystemTime::from(record.recorded_at));
            }
            JournalEvent::StepStarted { step, agent, .. } => {
                agents.insert(step, agent);
            }
            JournalEvent::ModelResponded {
                step,
                usage: tokens,
                tool_calls,
                ..
            } => {
                if let Some(agent) = agents.get(step.as_str()) {
                    usage.count_tokens(agent, tokens.input_tokens + tokens.output_tokens);
                }
                for call in tool_calls {
                    arguments.insert((step, &call.id), &call.arguments);
                }
            }
            JournalEvent::ToolStarted {
                step,
                call_id,
                tool,
                ..
            } => {
                usage.count_start(registry.get(tool).map(|t| t.spec().kind));
                if let Some(args) = arguments.get(&(step.as_str(), call_id.as_str())) {
                    usage.count_input(args);
                }
            }
            JournalEvent::ToolCompleted { output, .. } => usage.count_output(output),
            _ => {}
        }
    }
    usage
}
