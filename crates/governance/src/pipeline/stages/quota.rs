//! Quotas: per-task totals (derived from the task's journal, so they survive a restart) and
//! per-minute call windows (in memory, per task or shared by all tasks of a principal).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amas_config::QuotaScope;
use amas_tools::{ToolKind, ToolSpec};

use amas_types::Stage;

use super::{allow, deny};
use crate::pipeline::{StageDecision, ToolCallRequest, codes};

const WINDOW: Duration = Duration::from_secs(60);

/// A task's tool and model usage so far, folded from its journal by the runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskToolUsage {
    /// Tool calls that ran (completed or failed while running).
    pub tool_calls: u32,
    pub bytes_out: u64,
    /// Bytes of the parameters of calls that ran.
    pub bytes_in: u64,
    pub file_reads: u32,
    pub file_writes: u32,
    /// Model tokens (input + output) by agent, over all steps.
    pub tokens: std::collections::BTreeMap<String, u64>,
    /// When the task started running (wall-time quota); `None` before.
    pub started_at: Option<std::time::SystemTime>,
}

impl TaskToolUsage {
    /// Counts one call that started; file tools also count against the sandbox's file bounds.
    pub fn count_start(&mut self, kind: Option<ToolKind>) {
        self.tool_calls += 1;
        match kind {
            Some(ToolKind::FileRead) => self.file_reads += 1,
            Some(ToolKind::FileWrite) => self.file_writes += 1,
            Some(
                ToolKind::HttpFetch
                | ToolKind::SqlQuery
                | ToolKind::Calculator
                | ToolKind::CodeAnalyzer
                | ToolKind::VulnerabilityScanner
                | ToolKind::SystemExecutor
                | ToolKind::DangerousTool,
            )
            | None => {}
        }
    }

    /// Counts the parameters a call that started was given, by the size of their JSON text.
    pub fn count_input(&mut self, arguments: &serde_json::Value) {
        self.bytes_in += json_len(arguments);
    }

    /// Counts tokens an agent's model call used.
    pub fn count_tokens(&mut self, agent: &str, tokens: u64) {
        *self.tokens.entry(agent.to_owned()).or_default() += tokens;
    }

    /// Tokens `agent` used in this task so far.
    #[must_use]
    pub fn tokens_of(&self, agent: &str) -> u64 {
        self.tokens.get(agent).copied().unwrap_or(0)
    }

    /// Counts a result by the size of its JSON text, as the model receives it (live and when
    /// rebuilt from the journal alike).
    pub fn count_output(&mut self, output: &serde_json::Value) {
        self.bytes_out += json_len(output);
    }
}

fn json_len(value: &serde_json::Value) -> u64 {
    u64::try_from(value.to_string().len()).unwrap_or(u64::MAX)
}

/// Sliding one-minute windows of call times, by scope key, agent and tool.
#[derive(Default)]
pub struct QuotaWindows {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl QuotaWindows {
    /// Per-task totals first, then the per-minute window; with `take`, an allowed call is
    /// counted in its window at once, so concurrent calls cannot both take the last slot (a call
    /// that waits for approval only looks, and is counted when it is allowed).
    pub(crate) fn check(
        &self,
        req: &ToolCallRequest<'_>,
        spec: &ToolSpec,
        take: bool,
    ) -> StageDecision {
        let q = &req.agent.quotas;
        if req.usage.tool_calls >= q.tool_calls_per_task {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!(
                    "tool call quota reached: {} calls per task",
                    q.tool_calls_per_task
                ),
            );
        }
        if req.usage.bytes_out >= q.bytes_out_per_task {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!(
                    "tool output quota reached: {} bytes per task",
                    q.bytes_out_per_task
                ),
            );
        }
        let incoming = json_len(req.arguments);
        if req.usage.bytes_in.saturating_add(incoming) > q.bytes_in_per_task {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!(
                    "tool input quota reached: {} bytes of parameters per task ({} used, this call {incoming})",
                    q.bytes_in_per_task, req.usage.bytes_in
                ),
            );
        }
        if req.usage.tokens_of(&req.agent.id) >= q.tokens_per_task {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!(
                    "token quota reached: {} tokens per task for agent `{}`",
                    q.tokens_per_task, req.agent.id
                ),
            );
        }
        if let Some(started) = req.usage.started_at
            && started.elapsed().unwrap_or_default() >= q.wall_time_per_task
        {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!(
                    "wall-time quota reached: the task has run longer than {:?}",
                    q.wall_time_per_task
                ),
            );
        }
        let scope = match q.scope {
            QuotaScope::Task => format!("task:{}", req.task_id),
            QuotaScope::Principal => {
                format!("principal:{}/{}", req.principal.tenant.0, req.principal.sub)
            }
        };
        let key = format!("{scope}|{}|{}", req.agent.id, spec.name);
        self.take(key, q.calls_per_minute, Instant::now(), take)
    }

    fn take(&self, key: String, per_minute: u32, now: Instant, take: bool) -> StageDecision {
        // A poisoned lock only means another thread panicked mid-update; the window data is
        // still a valid (if slightly stale) count, so keep enforcing rather than failing open.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = windows.entry(key).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= per_minute as usize {
            return deny(
                Stage::Quota,
                codes::QUOTA,
                format!("rate quota reached: {per_minute} calls per minute"),
            );
        }
        if take {
            window.push_back(now);
        }
        allow(Stage::Quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Outcome;

    /// The window admits exactly `per_minute` calls, then refuses, then admits again once the
    /// oldest call is a minute old.
    #[test]
    fn window_allows_exactly_the_limit() {
        let w = QuotaWindows::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let peek = w.take("k".into(), 3, t0 + Duration::from_millis(i), false);
            assert_eq!(peek.outcome, Outcome::Allow, "a look takes no slot");
            let d = w.take("k".into(), 3, t0 + Duration::from_millis(i), true);
            assert_eq!(d.outcome, Outcome::Allow, "call {i}");
        }
        let refused = w.take("k".into(), 3, t0 + Duration::from_secs(1), true);
        assert_eq!(refused.outcome, Outcome::Deny);
        assert_eq!(refused.code, Some(codes::QUOTA));
        assert_eq!(
            w.take("other".into(), 3, t0, true).outcome,
            Outcome::Allow,
            "keys are separate"
        );
        let later = w.take("k".into(), 3, t0 + WINDOW + Duration::from_millis(1), true);
        assert_eq!(later.outcome, Outcome::Allow);
    }
}
