//! Group commit: the journal appends of many tasks and the audit records queued beside them,
//! written in one transaction. One commit (one fsync) then serves every task that asked in the
//! meantime, instead of one commit per append and another per audit batch.
//!
//! A refused append (a seq conflict) refuses only itself: the others of its batch commit.

use async_trait::async_trait;

use amas_types::{JournalEvent, JournalRecord, TaskId};

use crate::leases::Fence;

use crate::audit::{AuditLog, AuditRecord, StoredAuditRecord};
use crate::{StoreError, TaskJournal};

/// One task's append, as [`TaskJournal::append`] takes it.
#[derive(Clone, Debug)]
pub struct Append {
    pub task: TaskId,
    pub expected_last_seq: u64,
    pub events: Vec<JournalEvent>,
    /// The lease of the worker making the append (`None`: not a worker's append, e.g. a
    /// submission or a cancel); see [`TaskJournal::append_fenced`].
    pub fence: Option<Fence>,
}

/// What a group commit wrote.
#[derive(Debug)]
pub struct Committed {
    /// Per append, in the order given: its records, or why it alone was refused.
    pub appends: Vec<Result<Vec<JournalRecord>, StoreError>>,
    /// The audit records, linked into the chain, in the order given.
    pub audit: Vec<StoredAuditRecord>,
}

/// A store that holds both the journal and the audit log and can commit to both at once.
#[async_trait]
pub trait GroupCommit: TaskJournal + AuditLog {
    /// Writes `appends` (each checked against its expected seq, as [`TaskJournal::append`]
    /// does) and `audit` atomically. The same task may appear more than once: its appends
    /// apply in order.
    ///
    /// The default writes them one by one, each in its own transaction: correct, but without
    /// the shared commit; a backend overrides it to commit once.
    ///
    /// # Errors
    /// A backend error that failed the whole batch; nothing of it is then committed by
    /// backends that override this (the default may have committed a prefix, as separate
    /// appends do).
    async fn group_commit(
        &self,
        appends: &[Append],
        audit: &[AuditRecord],
    ) -> Result<Committed, StoreError> {
        let mut out = Vec::with_capacity(appends.len());
        for a in appends {
            out.push(
                TaskJournal::append_fenced(self, a.task, a.expected_last_seq, &a.events, a.fence)
                    .await,
            );
        }
        let audit = AuditLog::append(self, audit).await?;
        Ok(Committed {
            appends: out,
            audit,
        })
    }
}
