//! A task's journal as a live stream for its reader: the records so far, then each new one as
//! it commits, until the task ends; every record released at the reader's clearance, the first
//! redaction of a stream audited (one record per stream, not per event). The API's SSE handler
//! is an adapter over [`LiveEvents::next`].

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use amas_dataprotect::Level;
use amas_types::{JournalEvent, JournalRecord, Principal, TaskId};

use super::{Reader, release_record};
use crate::access::Access;
use crate::lineage::from_labels;
use crate::{Outbound, Released, RuntimeError};

/// One record of a live stream, released for its reader.
#[derive(Debug)]
pub struct LiveEvent {
    /// The event's kind (`task_started`, `step_succeeded`, ...).
    pub kind: &'static str,
    pub seq: u64,
    /// The record as JSON, redacted above the reader's clearance.
    pub data: Value,
}

/// A task's records for one reader, history first, then live until the task ends.
pub struct LiveEvents {
    access: Arc<Access>,
    principal: Principal,
    task: TaskId,
    history: std::vec::IntoIter<JournalRecord>,
    live: broadcast::Receiver<JournalRecord>,
    /// The level every record is judged at: the task's most sensitive lineage node so far.
    floor: Level,
    audited: bool,
    last_seq: u64,
    ended: bool,
}

impl Reader {
    /// `task.events` as a live stream (see [`LiveEvents`]).
    ///
    /// # Errors
    /// As [`Reader::visible_task`], or a store error.
    pub async fn live_events(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<LiveEvents, RuntimeError> {
        // Subscribe before reading, so nothing appended in between is missed.
        let live = self.journal.subscribe_task(task);
        let state = self.visible_task(principal, task, "task.events").await?;
        let records = self.journal.store().read(task, 0).await?;
        Ok(LiveEvents {
            access: Arc::clone(&self.access),
            principal: principal.clone(),
            task: state.id,
            history: records.into_iter(),
            live,
            floor: Outbound::event_floor(&state),
            audited: false,
            last_seq: 0,
            ended: state.status.is_terminal(),
        })
    }
}

impl LiveEvents {
    /// The next record, released; `None` once the task has ended (after its last record) or
    /// its stream closed. Cancel-safe: a record is taken only when it is returned.
    pub async fn next(&mut self) -> Option<LiveEvent> {
        let record = match self.history.next() {
            Some(record) => record,
            None => self.next_live().await?,
        };
        self.last_seq = record.seq;
        let outbound = self.access.outbound(&self.principal);
        let mut released = Released::default();
        let data = release_record(&outbound, self.floor, &record, &mut released);
        if released.redacted() && !self.audited {
            self.audited = true;
            self.access
                .audit_release(&self.principal, "task_events_stream", self.task, &released)
                .await;
        }
        Some(LiveEvent {
            kind: record.event.kind(),
            seq: record.seq,
            data,
        })
    }

    async fn next_live(&mut self) -> Option<JournalRecord> {
        loop {
            if self.ended {
                return None;
            }
            let record = match self.live.recv().await {
                Ok(r) => r,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            };
            if record.task_id != self.task || record.seq <= self.last_seq {
                continue;
            }
            self.ended = record
                .event
                .status_effect()
                .is_some_and(|s| s.is_terminal());
            // A newly classified payload raises the level later events are judged at.
            if let JournalEvent::LineageRecorded { node } = &record.event {
                self.floor = self.floor.max(from_labels(&node.labels).level);
            }
            return Some(record);
        }
    }
}
