//! The single writer of one task's journal inside this process: it serialises appends from the
//! task's parallel steps and hands them to the runtime's [`Journal`] (group commit, live
//! publish, read model).
//!
//! Three ways to write, by what depends on the events:
//! - [`TaskWriter::append_all`] returns once the events are durable: before a tool runs, before
//!   a step's failure or the task's end is reported.
//! - [`TaskWriter::send`] queues events nothing outside AMAS waits on (a step's start, its
//!   success) and goes on; the store's writer commits them in order, usually in the same group
//!   commit as other tasks' appends, and any failure surfaces at the next `append_all`.
//! - [`TaskWriter::defer`] keeps events (lineage, the task's start) to ride along with the next
//!   write: a restart recomputes them if they never made it.
//!
//! The writer also keeps its own view of the task: the journal's state with every event it has
//! queued applied, committed or not. Lineage is computed on that view, so a node never misses
//! an upstream step whose success is still on its way to disk.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use tokio::sync::Mutex;

use amas_store::audit::PendingAppend;
use amas_store::{Fence, StoreError};
use amas_types::{JournalEvent, JournalRecord, LineageNode, TaskId, TaskState};

use crate::journal::Journal;

pub(crate) struct TaskWriter {
    journal: Arc<Journal>,
    task: TaskId,
    /// The lease this process runs the task under (PostgreSQL workers): every append carries
    /// it, and the store refuses them all once the lease is lost.
    lease: Option<HeldLease>,
    state: Mutex<WriterState>,
}

/// A run's lease as this process knows it: its fence, and the instant up to which it surely
/// holds it (measured before the claim or renewal that granted it, so never later than the
/// database's expiry). Past it the writer refuses appends itself, without asking the store:
/// a worker that was paused past its lease stops before it does more work (a next model
/// call) for a task another worker may be running.
pub(crate) struct HeldLease {
    fence: Fence,
    until: std::sync::Mutex<Instant>,
}

impl HeldLease {
    pub(crate) fn new(fence: Fence, until: Instant) -> Self {
        Self {
            fence,
            until: std::sync::Mutex::new(until),
        }
    }
}

struct WriterState {
    /// The seq the last queued append ends at (committed or not).
    last_seq: u64,
    /// Events nothing waits on, committed with the next write instead of costing their own.
    deferred: Vec<JournalEvent>,
    /// Appends queued with [`TaskWriter::send`] whose commit nobody has checked yet.
    in_flight: Vec<PendingAppend>,
    /// The task as this writer has it: the journal's state at the start of the run with every
    /// event queued since applied (`None` until seeded).
    view: Option<TaskState>,
}

impl WriterState {
    /// Applies queued events to the view, at provisional seqs after `last_seq`.
    fn apply(&mut self, events: &[JournalEvent]) {
        let Some(view) = &mut self.view else {
            return;
        };
        let at = chrono::Utc::now();
        for event in events {
            let record = JournalRecord {
                task_id: view.id,
                seq: view.last_seq + 1,
                recorded_at: at,
                event: event.clone(),
            };
            view.apply(&record);
        }
    }
}

impl TaskWriter {
    pub(crate) fn new(
        journal: Arc<Journal>,
        task: TaskId,
        last_seq: u64,
        lease: Option<HeldLease>,
    ) -> Self {
        Self {
            journal,
            task,
            lease,
            state: Mutex::new(WriterState {
                last_seq,
                deferred: Vec::new(),
                in_flight: Vec::new(),
                view: None,
            }),
        }
    }

    /// A renewal granted the lease up to `until` (measured before the renewal was asked).
    pub(crate) fn extend_lease(&self, until: Instant) {
        if let Some(lease) = &self.lease {
            let mut held = lease.until.lock().unwrap_or_else(PoisonError::into_inner);
            *held = (*held).max(until);
        }
    }

    /// The fence every append carries; [`StoreError::LeaseLost`] when this process knows the
    /// lease has run out (the store would refuse the append anyway).
    fn fence(&self) -> Result<Option<Fence>, StoreError> {
        let Some(lease) = &self.lease else {
            return Ok(None);
        };
        let until = *lease.until.lock().unwrap_or_else(PoisonError::into_inner);
        if Instant::now() >= until {
            return Err(StoreError::LeaseLost {
                task: self.task,
                epoch: lease.fence.epoch,
            });
        }
        Ok(Some(lease.fence))
    }

    /// The task as its journal holds it when the run starts (before any append of the run).
    pub(crate) async fn seed(&self, state: &TaskState) {
        self.state.lock().await.view = Some(state.clone());
    }

    /// Appends one event at the next sequence number. A conflict means another writer owns the
    /// task; the caller stops working on it.
    pub(crate) async fn append(&self, event: JournalEvent) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(&event)).await
    }

    /// Queues an event to be committed with the next append.
    pub(crate) async fn defer(&self, event: JournalEvent) {
        let mut state = self.state.lock().await;
        state.apply(std::slice::from_ref(&event));
        state.deferred.push(event);
    }

    /// Queues `events` (after any deferred ones) for commit without waiting for it.
    pub(crate) async fn send(&self, events: Vec<JournalEvent>) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        if events.is_empty() && state.deferred.is_empty() {
            return Ok(());
        }
        let fence = self.fence()?;
        // Deferred events are already in the view; these are not yet.
        state.apply(&events);
        let mut batch = std::mem::take(&mut state.deferred);
        batch.extend(events);
        let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let pending = self
            .journal
            .send(self.task, state.last_seq, batch, fence)
            .await?;
        state.last_seq += count;
        state.in_flight.push(pending);
        Ok(())
    }

    /// Appends events atomically (after any deferred ones), in one commit, and returns once it
    /// is durable, together with everything queued before.
    pub(crate) async fn append_all(&self, events: &[JournalEvent]) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        self.commit(&mut state, events).await
    }

    /// Computes the lineage nodes still missing with `missing` (on this writer's view of the
    /// task, which has every event queued so far) and, with `done` (the task's end), appends
    /// them with it and waits; without, defers them to the next write.
    pub(crate) async fn lineage(
        &self,
        missing: impl FnOnce(&TaskState) -> Vec<LineageNode>,
        done: Option<JournalEvent>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        let Some(view) = &state.view else {
            return match done {
                Some(end) => self.commit(&mut state, &[end]).await,
                None => Ok(()),
            };
        };
        let mut events: Vec<JournalEvent> = missing(view)
            .into_iter()
            .map(|node| JournalEvent::LineageRecorded { node })
            .collect();
        match done {
            Some(end) => {
                events.push(end);
                self.commit(&mut state, &events).await
            }
            None => {
                state.apply(&events);
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
        let fence = self.fence()?;
        state.apply(events);
        let result = self
            .journal
            .append_fenced(self.task, state.last_seq, &batch, fence)
            .await;
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
