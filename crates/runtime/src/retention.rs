//! Retention: deletes the payloads of ended tasks once their classification's retention has
//! passed (counted from the task's end), leaving tombstones with each payload's SHA-256, and
//! erases the task's audit details (the audit chain keeps their hashes, so it still verifies).
//! A task's workspace (the files its tools wrote) is deleted when its first payload expires:
//! the files were made from the task's data and may hold its most sensitive part.
//! Idempotent; never touches a task that has not ended; every purge is audited. The retention
//! service runs it on demand (`amas retention purge`) or every `retention.purge_interval`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use amas_config::AmasConfig;
use amas_dataprotect::Classification;
use amas_dataprotect::DataProtector;
use amas_governance::pipeline::SecurityEvent;
use amas_store::audit::AuditQuery;
use amas_store::retention::{has_payload, is_purged};
use amas_store::{AuditLog, TaskJournal, TaskSummary};
use amas_types::{JournalEvent, JournalRecord, LineageNode, Principal, TaskState};

use crate::RuntimeError;
use crate::access::Access;
use crate::lineage::from_labels;
use crate::scheduler::Scheduler;

/// Ended tasks examined per store page.
const PAGE: u32 = 200;

/// One purge run: as of `now` (the real clock in production; tests pass a later time instead
/// of sleeping), and whether it only reports.
#[derive(Clone, Copy, Debug)]
pub struct RetentionRun {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
}

/// One payload that expired (and was purged, unless the run was a dry run).
#[derive(Clone, Debug, Serialize)]
pub struct PurgedPayload {
    pub seq: u64,
    /// The event kind holding the payload (`task_submitted`, `step_succeeded`, ...).
    pub kind: &'static str,
    /// The lineage node whose classification decided (absent: classified now, see docs).
    pub node: Option<String>,
    pub level: String,
    pub expired_at: DateTime<Utc>,
}

/// The expired payloads of one task.
#[derive(Clone, Debug, Serialize)]
pub struct PurgedTask {
    pub task_id: String,
    pub tenant: String,
    pub ended_at: DateTime<Utc>,
    pub payloads: Vec<PurgedPayload>,
    /// Audit records of the task whose details were erased (0 in a dry run).
    pub audit_details_erased: u64,
    /// The task's workspace expired and was deleted (in a dry run: would be).
    pub workspace_deleted: bool,
}

/// What a run found and did.
#[derive(Clone, Debug, Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    pub now: DateTime<Utc>,
    /// Ended tasks old enough to hold an expired payload.
    pub tasks_examined: u64,
    /// Tasks with payloads that expired and were not yet purged.
    pub tasks: Vec<PurgedTask>,
    /// Payloads purged (or, in a dry run, that would be).
    pub payloads: u64,
    /// Task workspaces deleted (or, in a dry run, that would be).
    pub workspaces: u64,
}

/// Deletes expired payloads of ended tasks.
pub struct Retention {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) store: Arc<dyn TaskJournal>,
    pub(crate) protector: Arc<DataProtector>,
    /// The audit log, whose details of purged tasks are erased.
    pub(crate) audit_log: Arc<dyn AuditLog>,
    pub(crate) access: Arc<Access>,
    /// Whether the runtime still runs (the periodic purge stops at shutdown).
    pub(crate) scheduler: Arc<Scheduler>,
    /// The directory under which each task has its workspace.
    pub(crate) workspaces: PathBuf,
}

impl Retention {
    /// Purges every expired payload (or, with `dry_run`, lists what would go and changes
    /// nothing). See the module docs and `docs/data-protection.md#retention`.
    ///
    /// # Errors
    /// A store or audit log error; what was purged before it stays purged (a later run goes on).
    pub async fn purge_expired(&self, run: RetentionRun) -> Result<PurgeReport, RuntimeError> {
        let retention = &self.config.retention;
        let mut report = PurgeReport {
            dry_run: run.dry_run,
            now: run.now,
            tasks_examined: 0,
            tasks: Vec::new(),
            payloads: 0,
            workspaces: 0,
        };
        let shortest = [
            retention.restricted,
            retention.confidential,
            retention.internal,
            retention.public,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(shortest) = shortest else {
            return Ok(report);
        };
        let Some(cutoff) = chrono::Duration::from_std(shortest)
            .ok()
            .and_then(|d| run.now.checked_sub_signed(d))
        else {
            return Ok(report);
        };
        let journal = &self.store;
        let mut after = None;
        loop {
            // Strictly before the cutoff, plus the cutoff itself for a zero period.
            let page = journal
                .ended_before(cutoff + chrono::Duration::microseconds(1), after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for summary in &page {
                report.tasks_examined += 1;
                if let Some(task) = self.purge_task(summary, run).await? {
                    report.payloads += u64::try_from(task.payloads.len()).unwrap_or(u64::MAX);
                    report.workspaces += u64::from(task.workspace_deleted);
                    report.tasks.push(task);
                }
            }
            if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        if !run.dry_run && (report.payloads > 0 || report.workspaces > 0) {
            info!(
                tasks = report.tasks.len(),
                payloads = report.payloads,
                workspaces = report.workspaces,
                "Retention purge deleted expired payloads and workspaces."
            );
        }
        Ok(report)
    }

    async fn purge_task(
        &self,
        summary: &TaskSummary,
        run: RetentionRun,
    ) -> Result<Option<PurgedTask>, RuntimeError> {
        let records = self.store.read(summary.id, 0).await?;
        let Some(state) = TaskState::fold(&records) else {
            return Ok(None);
        };
        if !state.status.is_terminal() {
            return Ok(None);
        }
        let expiries = self.payload_expiries(&state, &records, summary.updated_at);
        let workspace = self.workspaces.join(summary.id.to_string());
        // The workspace goes with the task's first expiring payload, purged before or now.
        let workspace_expired = expiries.iter().any(|(p, _)| p.expired_at <= run.now)
            && tokio::fs::symlink_metadata(&workspace).await.is_ok();
        let expired: Vec<PurgedPayload> = expiries
            .into_iter()
            .filter(|(p, purged)| !purged && p.expired_at <= run.now)
            .map(|(p, _)| p)
            .collect();
        if expired.is_empty() && !workspace_expired {
            return Ok(None);
        }
        let mut task = PurgedTask {
            task_id: summary.id.to_string(),
            tenant: summary.tenant.0.clone(),
            ended_at: summary.updated_at,
            payloads: expired,
            audit_details_erased: 0,
            workspace_deleted: workspace_expired,
        };
        if run.dry_run {
            return Ok(Some(task));
        }
        if !task.payloads.is_empty() {
            let seqs: Vec<u64> = task.payloads.iter().map(|p| p.seq).collect();
            let purged = self
                .store
                .purge_payloads(summary.id, &seqs, run.now)
                .await?;
            task.payloads.retain(|p| purged.contains(&p.seq));
            if !task.payloads.is_empty() {
                task.audit_details_erased = self.erase_audit_details(summary).await?;
            }
        }
        if workspace_expired {
            // `remove_dir_all` does not follow symlinks: a link a tool left there is removed,
            // not what it points to.
            if let Err(e) = tokio::fs::remove_dir_all(&workspace).await {
                tracing::warn!(task.id = %summary.id, error = %e, "Cannot delete an expired task workspace; retrying at the next run.");
                task.workspace_deleted = false;
            }
        }
        if task.payloads.is_empty() && !task.workspace_deleted {
            return Ok(None);
        }
        self.audit_purge(&state, &task).await;
        Ok(Some(task))
    }

    /// Every payload of `state` with a retention period, when it expires, and whether it was
    /// purged already.
    fn payload_expiries(
        &self,
        state: &TaskState,
        records: &[JournalRecord],
        ended_at: DateTime<Utc>,
    ) -> Vec<(PurgedPayload, bool)> {
        let retention = &self.config.retention;
        // A payload without a lineage node (a journal from before lineage, a failed step) is
        // classified now, and as sensitive as the most sensitive node of its task: never kept
        // longer than its own content or its task's data allows.
        let task_max =
            Classification::union(state.lineage.values().map(|n| from_labels(&n.labels)));
        let mut out = Vec::new();
        for record in records {
            let event = &record.event;
            if !has_payload(event) {
                continue;
            }
            let node_id = node_of(event);
            let (node, class) = match node_id.as_ref().and_then(|id| state.lineage.get(id)) {
                Some(node) => (Some(node.id.clone()), from_labels(&node.labels)),
                None => (None, self.classify_now(event).max(task_max)),
            };
            let level = class.level.name().to_owned();
            let Some(period) = retention.period(&level) else {
                continue;
            };
            let Some(expired_at) = chrono::Duration::from_std(period)
                .ok()
                .and_then(|d| ended_at.checked_add_signed(d))
            else {
                continue;
            };
            let payload = PurgedPayload {
                seq: record.seq,
                kind: event.kind(),
                node,
                level,
                expired_at,
            };
            out.push((payload, is_purged(event)));
        }
        out
    }

    fn classify_now(&self, event: &JournalEvent) -> Classification {
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        match self.protector.redact_json(
            &value,
            &amas_dataprotect::TenantKey::new(b"retention".to_vec()),
        ) {
            Ok(out) => out.classification,
            Err(_) => Classification::new(
                amas_dataprotect::Level::Restricted,
                amas_dataprotect::Tags::EMPTY,
            ),
        }
    }

    /// Erases the details of every audit record of the task; returns how many were erased.
    async fn erase_audit_details(&self, summary: &TaskSummary) -> Result<u64, RuntimeError> {
        let log = &self.audit_log;
        let mut erased = 0;
        let mut from_seq = 1;
        loop {
            let page = log
                .query(&AuditQuery {
                    from_seq,
                    task_id: Some(summary.id),
                    limit: 500,
                    ..AuditQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            from_seq = last.seq + 1;
            for record in &page {
                if !record.details_redacted
                    && !record.record.details.is_null()
                    && log.redact_details(record.seq).await?
                {
                    erased += 1;
                }
            }
            if page.len() < 500 {
                break;
            }
        }
        Ok(erased)
    }

    async fn audit_purge(&self, state: &TaskState, task: &PurgedTask) {
        let principal = Principal {
            sub: "amas-retention".to_owned(),
            roles: Vec::new(),
            tenant: state.principal.tenant.clone(),
            auth_method: "system".to_owned(),
            issuer: "system".to_owned(),
        };
        let mut levels: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &task.payloads {
            *levels.entry(p.level.as_str()).or_insert(0) += 1;
        }
        let summary = levels
            .iter()
            .map(|(level, n)| format!("{n} {level}"))
            .collect::<Vec<_>>()
            .join(", ");
        let workspace = if task.workspace_deleted {
            "; deleted the task's workspace"
        } else {
            ""
        };
        self.access.security_event(
            &principal,
            SecurityEvent::RetentionPurge {
                task: state.id,
                task_type: &state.spec.task_type,
                reason: format!(
                    "purged {} expired payloads ({summary}); erased details of {} audit records{workspace}",
                    task.payloads.len(),
                    task.audit_details_erased
                ),
            },
        )
        .await;
    }
}

/// The lineage node whose classification governs the payload of `event`.
fn node_of(event: &JournalEvent) -> Option<String> {
    match event {
        JournalEvent::TaskSubmitted { .. } => Some(LineageNode::INPUT.to_owned()),
        JournalEvent::StepStarted { step, .. }
        | JournalEvent::ModelResponded { step, .. }
        | JournalEvent::ApprovalRequested { step, .. }
        | JournalEvent::StepSucceeded { step, .. } => Some(LineageNode::step_id(step)),
        JournalEvent::ToolCompleted { step, call_id, .. } => {
            Some(LineageNode::tool_id(step, call_id))
        }
        JournalEvent::TaskSucceeded { .. } => Some(LineageNode::RESULT.to_owned()),
        _ => None,
    }
}

impl Retention {
    /// Runs [`Retention::purge_expired`] every `retention.purge_interval` (the first run after
    /// one interval) until the handle is aborted, the runtime shuts down or the process's
    /// tasks are told to stop (`amas_telemetry::tasks`); a run under way then finishes. A failed run is
    /// logged and retried at the next tick.
    #[must_use]
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let retention = Arc::clone(self);
        let every = self.config.retention.purge_interval;
        let mut stopping = amas_telemetry::tasks::global().stopping();
        amas_telemetry::tasks::spawn("retention.purge", async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stopping.wait() => return,
                }
                if !retention.scheduler.admitting() {
                    return;
                }
                let run = RetentionRun {
                    now: Utc::now(),
                    dry_run: false,
                };
                if let Err(e) = retention.purge_expired(run).await {
                    tracing::warn!(error = %e, "Retention purge failed; retrying at the next interval.");
                }
            }
        })
    }
}
