//! The single writer of one task's journal inside this process: it serialises appends from the
//! task's parallel steps and publishes each stored record to live subscribers.

use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use amas_store::{StoreError, TaskJournal};
use amas_types::{JournalEvent, JournalRecord, TaskId};

pub(crate) struct TaskWriter {
    journal: Arc<dyn TaskJournal>,
    task: TaskId,
    state: Mutex<WriterState>,
    live: broadcast::Sender<JournalRecord>,
}

struct WriterState {
    last_seq: u64,
    /// Events nothing waits on (e.g. `TaskStarted`), committed with the next append instead of
    /// costing a commit of their own.
    deferred: Vec<JournalEvent>,
}

impl TaskWriter {
    pub(crate) fn new(
        journal: Arc<dyn TaskJournal>,
        task: TaskId,
        last_seq: u64,
        live: broadcast::Sender<JournalRecord>,
    ) -> Self {
        Self {
            journal,
            task,
            state: Mutex::new(WriterState {
                last_seq,
                deferred: Vec::new(),
            }),
            live,
        }
    }

    /// Appends one event at the next sequence number. A conflict means another writer owns the
    /// task; the caller stops working on it.
    pub(crate) async fn append(&self, event: JournalEvent) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(&event)).await
    }

    /// Queues an event to be committed with the next append.
    pub(crate) async fn defer(&self, event: JournalEvent) {
        self.state.lock().await.deferred.push(event);
    }

    /// Appends events atomically (after any deferred ones), in one commit.
    pub(crate) async fn append_all(&self, events: &[JournalEvent]) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let batch: Vec<JournalEvent> = if state.deferred.is_empty() {
            events.to_vec()
        } else {
            state.deferred.iter().chain(events).cloned().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let records = self
            .journal
            .append(self.task, state.last_seq, &batch)
            .await?;
        let Some(tail) = records.last() else {
            return Err(StoreError::InvalidAppend(
                "the store returned no record for an append".to_owned(),
            ));
        };
        state.last_seq = tail.seq;
        state.deferred.clear();
        for record in records {
            // Nobody listening is fine.
            let _ = self.live.send(record);
        }
        Ok(())
    }
}
