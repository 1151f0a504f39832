//! The single writer of one task's journal inside this process: it serialises appends from the
//! task's parallel steps and hands them to the runtime's [`Journal`] (group commit, live
//! publish, read model).
//!
//! Three ways to write, by what depends on the events:
//! - [`TaskWriter::append_all`] returns once the events are durable: before a tool runs, before
//!   a model answer is used, before the task's end is reported.
//! - [`TaskWriter::send`] queues events nothing outside AMAS waits on (a step's start) and goes
//!   on; the store's writer commits them in order, usually in the same group commit as other
//!   tasks' appends, and any failure surfaces at the next `append_all`.
//! - [`TaskWriter::defer`] keeps events (lineage, the task's start) to ride along with the next
//!   write: a restart recomputes them if they never made it.
//!
//! The writer also keeps the task's lineage nodes, written or still queued, so the next nodes
//! are computed against everything already decided, not only what is committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use amas_store::StoreError;
use amas_store::audit::PendingAppend;
use amas_types::{JournalEvent, LineageNode, TaskId};

use crate::journal::Journal;

pub(crate) struct TaskWriter {
    journal: Arc<Journal>,
    task: TaskId,
    state: Mutex<WriterState>,
}

struct WriterState {
    /// The seq the last queued append ends at (committed or not).
    last_seq: u64,
    /// Events nothing waits on, committed with the next write instead of costing their own.
    deferred: Vec<JournalEvent>,
    /// Appends queued with [`TaskWriter::send`] whose commit nobody has checked yet.
    in_flight: Vec<PendingAppend>,
    /// The task's lineage nodes: journaled, queued or deferred.
    lineage: BTreeMap<String, LineageNode>,
}

impl TaskWriter {
    pub(crate) fn new(journal: Arc<Journal>, task: TaskId, last_seq: u64) -> Self {
        Self {
            journal,
            task,
            state: Mutex::new(WriterState {
                last_seq,
                deferred: Vec::new(),
                in_flight: Vec::new(),
                lineage: BTreeMap::new(),
            }),
        }
    }

    /// The lineage nodes the task's journal already holds (when its run starts).
    pub(crate) async fn seed_lineage(&self, nodes: &BTreeMap<String, LineageNode>) {
        self.state.lock().await.lineage.clone_from(nodes);
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

    /// Queues `events` (after any deferred ones) for commit without waiting for it. Without a
    /// group-committing writer they are deferred instead.
    pub(crate) async fn send(&self, events: Vec<JournalEvent>) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let mut batch = std::mem::take(&mut state.deferred);
        batch.extend(events);
        if batch.is_empty() {
            return Ok(());
        }
        let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        match self
            .journal
            .send(self.task, state.last_seq, batch.clone())
            .await?
        {
            Some(pending) => {
                state.last_seq += count;
                state.in_flight.push(pending);
            }
            None => state.deferred = batch,
        }
        Ok(())
    }

    /// Appends events atomically (after any deferred ones), in one commit, and returns once it
    /// is durable, together with everything queued before.
    pub(crate) async fn append_all(&self, events: &[JournalEvent]) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        self.commit(&mut state, events).await
    }

    /// Computes the lineage nodes still missing with `missing` (given every node decided so
    /// far) and, with `done` (the task's end), appends them with it and waits; without, defers
    /// them to the next write.
    pub(crate) async fn lineage(
        &self,
        missing: impl FnOnce(&BTreeMap<String, LineageNode>) -> Vec<LineageNode>,
        done: Option<JournalEvent>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let nodes = missing(&state.lineage);
        for node in &nodes {
            state.lineage.insert(node.id.clone(), node.clone());
        }
        let mut events: Vec<JournalEvent> = nodes
            .into_iter()
            .map(|node| JournalEvent::LineageRecorded { node })
            .collect();
        match done {
            Some(end) => {
                events.push(end);
                self.commit(&mut state, &events).await
            }
            None => {
                state.deferred.extend(events);
                Ok(())
            }
        }
    }

    async fn commit(
        &self,
        state: &mut WriterState,
        events: &[JournalEvent],
    ) -> Result<(), StoreError> {
        let batch: Vec<JournalEvent> = if state.deferred.is_empty() {
            events.to_vec()
        } else {
            state.deferred.iter().chain(events).cloned().collect()
        };
        if batch.is_empty() {
            return self.settle(state).await;
        }
        let result = self.journal.append(self.task, state.last_seq, &batch).await;
        // What was queued before committed first (or failed, which explains this failure).
        self.settle(state).await?;
        let records = result?;
        let Some(tail) = records.last() else {
            return Err(StoreError::InvalidAppend(
                "the store returned no record for an append".to_owned(),
            ));
        };
        state.last_seq = tail.seq;
        state.deferred.clear();
        Ok(())
    }

    /// Waits for the appends queued with [`Self::send`]; the first failure among them.
    async fn settle(&self, state: &mut WriterState) -> Result<(), StoreError> {
        let mut failure = None;
        for pending in state.in_flight.drain(..) {
            let outcome = pending.await.unwrap_or(Err(StoreError::Closed));
            if let Err(e) = outcome {
                failure.get_or_insert(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}
