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
//!
//! Live streams get each task's records through its feed (`journal/feeds.rs`). When other
//! processes write the same store (PostgreSQL), this process follows their commits
//! (`journal/follow.rs`): the store announces each commit, and the feeds of tasks with
//! subscribers here read the new records from the journal.

mod feeds;
mod follow;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use amas_store::audit::PendingAppend;
use amas_store::{AuditWriter, Fence, StoreError, TaskJournal};
use amas_types::{JournalEvent, JournalRecord, TaskId, TaskState};

use feeds::Feeds;

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

/// What committed records feed: the read model and the live streams.
struct Published {
    /// Every task's records committed by this process, for the few subscribers that want
    /// them all.
    live: broadcast::Sender<JournalRecord>,
    /// One task's records, for its event streams: a stream gets only its task's records, so a
    /// record is copied once per subscriber that wants it, not once per open stream. They
    /// carry other processes' commits too, once this process follows them (`follow.rs`).
    feeds: Feeds,
    states: Mutex<HashMap<TaskId, TaskState>>,
}

impl Journal {
    /// The journal of `store`, written through `writer` (started with
    /// [`AuditWriter::start_group`] on that store; the runtime checks it), which publishes each
    /// commit here, in commit order.
    pub(crate) fn new(store: Arc<dyn TaskJournal>, writer: Arc<AuditWriter>) -> Self {
        let published = Arc::new(Published {
            live: broadcast::channel(LIVE_BUFFER).0,
            feeds: Feeds::new(),
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

    /// Live records of every task this process commits, from now on (in order per task).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JournalRecord> {
        self.published.live.subscribe()
    }

    /// Live records of `task` from now on (committed, in order, each once), whichever
    /// process commits them once this one follows the others ([`Journal::follow`]).
    pub(crate) fn subscribe_task(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        self.published.feeds.subscribe(task)
    }

    /// A subscriber of `task` (subscribed first) has read its journal up to `seq`: its live
    /// records follow from there.
    pub(crate) fn anchor(&self, task: TaskId, seq: u64) {
        self.published.feeds.anchor(task, seq);
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

    /// Applies records this process committed to the read model, then sends them to live
    /// subscribers.
    fn publish(&self, records: &[JournalRecord]) {
        self.apply(records, true);
        if self.live.receiver_count() > 0 {
            for r in records {
                // Nobody listening is fine.
                let _ = self.live.send(r.clone());
            }
        }
        self.feeds.publish(records);
    }

    /// Records of one task read from the journal (what other processes committed, and
    /// perhaps some of this one's): to the read model if they extend a task it holds, then
    /// to the task's feed.
    fn publish_read(&self, records: &[JournalRecord]) {
        self.apply(records, false);
        self.feeds.publish(records);
    }

    /// Moves the read model on with stored records of one task, in seq order: those after
    /// the state it holds, if they follow it; a task it does not hold is added only from its
    /// first record and when `may_add` (this process wrote it).
    fn apply(&self, records: &[JournalRecord], may_add: bool) {
        let Some(first) = records.first() else {
            return;
        };
        let task = first.task_id;
        let mut states = self.states();
        let room = states.len() < READ_MODEL_CAPACITY;
        match states.get_mut(&task) {
            Some(state) => {
                let last = state.last_seq;
                let fresh: Vec<&JournalRecord> = records.iter().filter(|r| r.seq > last).collect();
                match fresh.first() {
                    // Already applied (both paths may bring a record).
                    None => {}
                    Some(next) if next.seq == last + 1 => {
                        for r in &fresh {
                            state.apply(r);
                        }
                    }
                    // A gap (an append this process did not see): forget rather than guess.
                    Some(_) => {
                        states.remove(&task);
                    }
                }
            }
            None if may_add && first.seq == 1 && room => {
                if let Some(state) = TaskState::fold(records) {
                    states.insert(task, state);
                }
            }
            None => {}
        }
        if states.get(&task).is_some_and(|s| s.status.is_terminal()) {
            states.remove(&task);
        }
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
