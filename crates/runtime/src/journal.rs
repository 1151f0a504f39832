//! The runtime's one way to its journal: every append goes through [`Journal::append`], which
//! commits through the store's group-committing writer, publishes
//! the stored records to live subscribers and keeps the read model of unfinished tasks in step.
//!
//! The read model holds the folded state of the tasks this process is writing (queued,
//! running, waiting for approval), so a `GET` of a running task costs a map lookup instead of
//! re-reading and folding its journal. Only the write path fills it: a reader that misses reads
//! the store and does not insert what it read, so a read racing an append can never leave a
//! stale state behind. A task leaves it when it ends, so payloads a retention purge tombstones
//! (only ended tasks are purged) are never served from memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use amas_store::audit::PendingAppend;
use amas_store::{AuditWriter, Fence, StoreError, TaskJournal};
use amas_types::{JournalEvent, JournalRecord, TaskId, TaskState};

/// Unfinished tasks whose state is kept in memory at most; past it, reads go to the store.
const READ_MODEL_CAPACITY: usize = 100_000;

pub(crate) struct Journal {
    store: Arc<dyn TaskJournal>,
    /// The store's one writer: appends are group-committed through it.
    writer: Arc<AuditWriter>,
    published: Arc<Published>,
}

/// Live records of every task buffered per subscriber before it lags.
const LIVE_BUFFER: usize = 4096;

/// Live records buffered per subscriber of one task before it lags.
const TASK_LIVE_BUFFER: usize = 512;

/// What committed records feed: the read model and the live streams.
struct Published {
    /// Every task's records, for the few subscribers that want them all.
    live: broadcast::Sender<JournalRecord>,
    /// One task's records, for its event streams: a stream gets only its task's records, so a
    /// record is copied once per subscriber that wants it, not once per open stream.
    tasks: Mutex<HashMap<TaskId, broadcast::Sender<JournalRecord>>>,
    states: Mutex<HashMap<TaskId, TaskState>>,
}

impl Journal {
    /// The journal of `store`, written through `writer` (started with
    /// [`AuditWriter::start_group`] on that store; the runtime checks it), which publishes each
    /// commit here, in commit order.
    pub(crate) fn new(store: Arc<dyn TaskJournal>, writer: Arc<AuditWriter>) -> Self {
        let published = Arc::new(Published {
            live: broadcast::channel(LIVE_BUFFER).0,
            tasks: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
        });
        let listener = Arc::clone(&published);
        writer.listen(Arc::new(move |records: &[JournalRecord]| {
            listener.publish(records);
        }));
        Self {
            store,
            writer,
            published,
        }
    }

    /// Queues an append without waiting for its commit (see [`AuditWriter::send`]), under
    /// the lease `fence` of the worker running the task, if any.
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the writer is shut down.
    pub(crate) async fn send(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: Vec<JournalEvent>,
        fence: Option<Fence>,
    ) -> Result<PendingAppend, StoreError> {
        self.writer
            .send_fenced(task, expected_last_seq, events, fence)
            .await
    }

    pub(crate) fn store(&self) -> &Arc<dyn TaskJournal> {
        &self.store
    }

    /// Appends `events` after `expected_last_seq`; returns once they are durable, after
    /// publishing them.
    ///
    /// # Errors
    /// As [`TaskJournal::append`].
    pub(crate) async fn append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
    ) -> Result<Vec<JournalRecord>, StoreError> {
        self.append_fenced(task, expected_last_seq, events, None)
            .await
    }

    /// [`Journal::append`] under the lease `fence` of the worker running the task
    /// ([`TaskJournal::append_fenced`]).
    ///
    /// # Errors
    /// As [`TaskJournal::append_fenced`].
    pub(crate) async fn append_fenced(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
        fence: Option<Fence>,
    ) -> Result<Vec<JournalRecord>, StoreError> {
        // The writer published them before answering.
        self.writer
            .append_fenced(task, expected_last_seq, events, fence)
            .await
    }

    /// Seeds the read model with a task this process is about to run, from its whole journal
    /// (read by the caller, before any append of the run).
    pub(crate) fn track(&self, state: &TaskState) {
        self.published.track(state);
    }

    /// Stops keeping `task` in memory (this process no longer writes it).
    pub(crate) fn forget(&self, task: TaskId) {
        self.published.states().remove(&task);
    }

    /// The task's current state: from memory while this process writes it, else folded from
    /// the store.
    ///
    /// # Errors
    /// A store error.
    pub(crate) async fn state(&self, task: TaskId) -> Result<Option<TaskState>, StoreError> {
        if let Some(state) = self.cached(task) {
            return Ok(Some(state));
        }
        let records = self.store.read(task, 0).await?;
        Ok(TaskState::fold(&records))
    }

    /// Live records of every task from now on (committed, in order per task).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JournalRecord> {
        self.published.live.subscribe()
    }

    /// Live records of `task` from now on (committed, in order).
    pub(crate) fn subscribe_task(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        self.published.subscribe_task(task)
    }

    /// The task's state if the read model holds it.
    pub(crate) fn cached(&self, task: TaskId) -> Option<TaskState> {
        self.published.states().get(&task).cloned()
    }
}

impl Published {
    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, TaskState>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies stored records to the read model, then sends them to live subscribers.
    fn publish(&self, records: &[JournalRecord]) {
        let Some(first) = records.first() else {
            return;
        };
        {
            let mut states = self.states();
            let task = first.task_id;
            let contiguous = states
                .get(&task)
                .is_some_and(|s| s.last_seq + 1 == first.seq);
            if contiguous {
                if let Some(state) = states.get_mut(&task) {
                    for r in records {
                        state.apply(r);
                    }
                }
            } else if first.seq == 1 && states.len() < READ_MODEL_CAPACITY {
                if let Some(state) = TaskState::fold(records) {
                    states.insert(task, state);
                }
            } else {
                // A gap (an append this process did not make): forget rather than guess.
                states.remove(&task);
            }
            if states.get(&task).is_some_and(|s| s.status.is_terminal()) {
                states.remove(&task);
            }
        }
        if self.live.receiver_count() > 0 {
            for r in records {
                // Nobody listening is fine.
                let _ = self.live.send(r.clone());
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = tasks.get(&first.task_id) {
            for r in records {
                let _ = sender.send(r.clone());
            }
            let ended = records
                .iter()
                .any(|r| r.event.status_effect().is_some_and(|s| s.is_terminal()));
            // Nothing follows a task's end; receivers still get what is buffered.
            if ended || sender.receiver_count() == 0 {
                tasks.remove(&first.task_id);
            }
        }
    }

    /// Live records of `task` from now on.
    fn subscribe_task(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Streams of tasks that never published again are dropped here, bounding the map.
        tasks.retain(|_, sender| sender.receiver_count() > 0);
        tasks
            .entry(task)
            .or_insert_with(|| broadcast::channel(TASK_LIVE_BUFFER).0)
            .subscribe()
    }

    fn track(&self, state: &TaskState) {
        if state.status.is_terminal() {
            return;
        }
        let mut states = self.states();
        if states.len() < READ_MODEL_CAPACITY || states.contains_key(&state.id) {
            states.insert(state.id, state.clone());
        }
    }
}
