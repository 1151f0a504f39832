//! A task's journal as a live stream for its reader: the records so far (or after the seq a
//! resuming client names), then each new one as it commits, in whichever process, until the
//! task ends; every record released at the reader's clearance, the first
//! redaction of a stream audited (one record per stream, not per event). The API's SSE handler
//! is an adapter over [`LiveEvents::next`].

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use tracing::warn;

use amas_dataprotect::Level;
use amas_store::TaskJournal;
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
    store: Arc<dyn TaskJournal>,
    principal: Principal,
    task: TaskId,
    /// Records read from the journal, sent before anything live (at the start, and after a
    /// gap in the live records).
    history: std::vec::IntoIter<JournalRecord>,
    live: broadcast::Receiver<JournalRecord>,
    /// A live record that came ahead of missing ones, kept while they are read.
    held: Option<JournalRecord>,
    /// The level every record is judged at: the task's most sensitive lineage node so far.
    floor: Level,
    audited: bool,
    /// The seq of the last record returned (or the reader's resume point).
    last_seq: u64,
    ended: bool,
}

impl Reader {
    /// `task.events` as a live stream (see [`LiveEvents`]) of the records after seq `after`
    /// (0: all of them; a client resuming says where it stopped).
    ///
    /// # Errors
    /// As [`Reader::visible_task`]; [`RuntimeError::EventBeyondJournal`] when `after` is past
    /// the journal's end; a store error.
    pub async fn live_events(
        &self,
        principal: &Principal,
        task: TaskId,
        after: u64,
    ) -> Result<LiveEvents, RuntimeError> {
        // Subscribe before reading, so nothing appended in between is missed.
        let live = self.journal.subscribe_task(task);
        let state = self.visible_task(principal, task, "task.events").await?;
        let store = Arc::clone(self.journal.store());
        if after > state.last_seq {
            // The state may be this process's read model: only the journal says for sure.
            let end = store.summary(state.id).await?.map_or(0, |s| s.last_seq);
            if after > end {
                return Err(RuntimeError::EventBeyondJournal {
                    task: state.id,
                    seq: after,
                    last_seq: end,
                });
            }
        }
        let records = store.read(state.id, after).await?;
        self.journal
            .anchor(state.id, records.last().map_or(after, |r| r.seq));
        Ok(LiveEvents {
            access: Arc::clone(&self.access),
            store,
            principal: principal.clone(),
            task: state.id,
            history: records.into_iter(),
            live,
            held: None,
            floor: Outbound::event_floor(&state),
            audited: false,
            last_seq: after,
            ended: state.status.is_terminal(),
        })
    }
}

impl LiveEvents {
    /// The next record, released; `None` once the task has ended (after its last record),
    /// its stream closed, or missing records could not be read (the client resumes from the
    /// last seq it got). Each record once, in seq order, without a gap. Cancel-safe: a record
    /// is taken only when it is returned.
    pub async fn next(&mut self) -> Option<LiveEvent> {
        let record = self.next_record().await?;
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

    async fn next_record(&mut self) -> Option<JournalRecord> {
        loop {
            if let Some(record) = self.history.next() {
                if record.seq > self.last_seq {
                    return Some(self.observe(record));
                }
                continue;
            }
            if self.ended {
                return None;
            }
            let record = match self.held.take() {
                Some(record) => record,
                None => match self.live.recv().await {
                    Ok(r) => r,
                    // The records it missed are read below, at the next one's gap.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                },
            };
            if record.task_id != self.task || record.seq <= self.last_seq {
                continue;
            }
            if record.seq == self.last_seq + 1 {
                return Some(self.observe(record));
            }
            // A gap (this stream lagged, or joined while its feed was elsewhere): read what it
            // missed from the journal.
            let seq = record.seq;
            self.held = Some(record);
            match self.store.read(self.task, self.last_seq).await {
                Ok(missed) if missed.first().is_some_and(|r| r.seq == self.last_seq + 1) => {
                    self.history = missed.into_iter();
                }
                Ok(_) => {
                    warn!(task.id = %self.task, seq, after = self.last_seq, "Journal records missing before a live one; ending the stream.");
                    return None;
                }
                Err(e) => {
                    warn!(task.id = %self.task, error.code = e.code(), error.message = %e, "Reading missed journal records failed; ending the stream (the client resumes).");
                    return None;
                }
            }
        }
    }

    /// Takes `record` as the stream's next: its end, a raised level.
    fn observe(&mut self, record: JournalRecord) -> JournalRecord {
        self.last_seq = record.seq;
        if record
            .event
            .status_effect()
            .is_some_and(|s| s.is_terminal())
        {
            self.ended = true;
        }
        // A newly classified payload raises the level later events are judged at.
        if let JournalEvent::LineageRecorded { node } = &record.event {
            self.floor = self.floor.max(from_labels(&node.labels).level);
        }
        record
    }
}
