//! The single writer of one task's journal inside this process: it serialises appends from the
//! task's parallel steps and publishes each stored record to live subscribers.

use std::sync::Arc;

use tokio::sync::{Mutex, broadcast};

use amas_store::{StoreError, TaskJournal};
use amas_types::{JournalEvent, JournalRecord, TaskId};

pub(crate) struct TaskWriter {
    journal: Arc<dyn TaskJournal>,
    task: TaskId,
    last_seq: Mutex<u64>,
    live: broadcast::Sender<JournalRecord>,
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
            last_seq: Mutex::new(last_seq),
            live,
        }
    }

    /// Appends one event at the next sequence number. A conflict means another writer owns the
    /// task; the caller stops working on it.
    pub(crate) async fn append(&self, event: JournalEvent) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(&event)).await
    }

    /// Appends events atomically, in one commit (one fsync for all of them).
    pub(crate) async fn append_all(&self, events: &[JournalEvent]) -> Result<(), StoreError> {
        let mut last = self.last_seq.lock().await;
        let records = self.journal.append(self.task, *last, events).await?;
        let Some(tail) = records.last() else {
            return Err(StoreError::InvalidAppend(
                "the store returned no record for an append".to_owned(),
            ));
        };
        *last = tail.seq;
        for record in records {
            // Nobody listening is fine.
            let _ = self.live.send(record);
        }
        Ok(())
    }
}
