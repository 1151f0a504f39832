//! The live feed of each task that has subscribers in this process: its committed records,
//! in seq order, each sent once. Records reach a feed two ways: this process's own commits
//! (the store's writer publishes them) and catch-up reads of the journal (`follow.rs`), which
//! bring what other processes committed. Both may bring the same record (this process's
//! commit is also announced to it by the store); a feed sends only records after the last one
//! it sent, so a record is never sent twice, and sends them only in an unbroken run, so a
//! record that arrives ahead of one still missing waits for the catch-up read that brings
//! both.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::{broadcast, mpsc};

use amas_types::{JournalRecord, TaskId};

/// Live records buffered per subscriber of one task before it lags.
const TASK_LIVE_BUFFER: usize = 512;

/// One task's feed.
struct Feed {
    sender: broadcast::Sender<JournalRecord>,
    /// The seq of the last record sent, or the seq a subscriber has read up to before anything
    /// was sent ([`Feeds::anchor`]); 0: nothing known yet.
    sent: u64,
    /// Something was committed after the last catch-up read began (a notice, a reconnection,
    /// a record ahead of a missing one): read again.
    dirty: bool,
    /// A catch-up read is under way or queued.
    fetching: bool,
}

/// The feeds of the tasks with subscribers in this process.
pub(super) struct Feeds {
    tasks: Mutex<HashMap<TaskId, Feed>>,
    /// Where catch-up reads are asked for, once this process follows the commits of others
    /// (`follow.rs`); until then a record ahead of a missing one is sent as it is (one process
    /// writes everything, so nothing is missing), and each stream reads its own gaps.
    fetcher: OnceLock<mpsc::UnboundedSender<TaskId>>,
}

impl Feeds {
    pub(super) fn new() -> Self {
        Self {
            tasks: Mutex::new(HashMap::new()),
            fetcher: OnceLock::new(),
        }
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<TaskId, Feed>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Catch-up reads go to `fetcher` from now on; `false` when they already go elsewhere.
    pub(super) fn fetch_with(&self, fetcher: mpsc::UnboundedSender<TaskId>) -> bool {
        self.fetcher.set(fetcher).is_ok()
    }

    fn following(&self) -> bool {
        self.fetcher.get().is_some()
    }

    /// Asks for a catch-up read of `task` (the caller marked its feed fetching).
    fn ask(&self, task: TaskId) {
        if let Some(fetcher) = self.fetcher.get() {
            // The fetcher is gone only at shutdown, when nobody reads any more.
            let _ = fetcher.send(task);
        }
    }

    /// Live records of `task` from now on.
    pub(super) fn subscribe(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        let mut tasks = self.tasks();
        // Feeds of tasks that never published again are dropped here, bounding the map.
        tasks.retain(|_, feed| feed.sender.receiver_count() > 0);
        tasks
            .entry(task)
            .or_insert_with(|| Feed {
                sender: broadcast::channel(TASK_LIVE_BUFFER).0,
                sent: 0,
                dirty: false,
                fetching: false,
            })
            .sender
            .subscribe()
    }

    /// A subscriber of `task` has read its journal up to `seq`: a feed that has sent nothing
    /// yet starts after it, so its first catch-up read does not read the journal from the
    /// start. A subscriber that joined with less reads the difference itself.
    pub(super) fn anchor(&self, task: TaskId, seq: u64) {
        let start = {
            let mut tasks = self.tasks();
            let Some(feed) = tasks.get_mut(&task) else {
                return;
            };
            if feed.sent == 0 {
                feed.sent = seq;
            }
            feed.start_if_dirty()
        };
        if start {
            self.ask(task);
        }
    }

    /// Sends committed records of one task (in seq order): those after the last sent, if
    /// they follow it without a gap. A gap is left for a catch-up read to fill.
    pub(super) fn publish(&self, records: &[JournalRecord]) {
        let Some(first) = records.first() else {
            return;
        };
        let task = first.task_id;
        let start = {
            let mut tasks = self.tasks();
            let Some(feed) = tasks.get_mut(&task) else {
                return;
            };
            let fresh: Vec<&JournalRecord> = records.iter().filter(|r| r.seq > feed.sent).collect();
            let Some(next) = fresh.first() else {
                return;
            };
            let unbroken = feed.sent == 0 || next.seq == feed.sent + 1;
            if unbroken || !self.following() {
                for r in &fresh {
                    // Nobody listening is fine.
                    let _ = feed.sender.send((*r).clone());
                }
                feed.sent = fresh.last().map_or(feed.sent, |r| r.seq);
                let ended = fresh
                    .iter()
                    .any(|r| r.event.status_effect().is_some_and(|s| s.is_terminal()));
                // Nothing follows a task's end; receivers still get what is buffered.
                if ended || feed.sender.receiver_count() == 0 {
                    tasks.remove(&task);
                }
                false
            } else {
                feed.dirty = true;
                feed.start_if_dirty()
            }
        };
        if start {
            self.ask(task);
        }
    }

    /// A commit of `task` up to `last_seq` was announced: read it unless it was sent (or
    /// nobody reads the feed any more).
    pub(super) fn notice(&self, task: TaskId, last_seq: u64) {
        let start = {
            let mut tasks = self.tasks();
            match tasks.get_mut(&task) {
                Some(feed) if last_seq > feed.sent && feed.sender.receiver_count() > 0 => {
                    feed.dirty = true;
                    feed.start_if_dirty()
                }
                _ => false,
            }
        };
        if start {
            self.ask(task);
        }
    }

    /// Announcements may have been lost: read every feed again.
    pub(super) fn resync(&self) {
        let started: Vec<TaskId> = {
            let mut tasks = self.tasks();
            tasks.retain(|_, feed| feed.sender.receiver_count() > 0);
            tasks
                .iter_mut()
                .filter_map(|(task, feed)| {
                    feed.dirty = true;
                    feed.start_if_dirty().then_some(*task)
                })
                .collect()
        };
        for task in started {
            self.ask(task);
        }
    }

    /// Feeds left wanting a read by a failed one: they are started again.
    pub(super) fn stalled(&self) -> Vec<TaskId> {
        let mut tasks = self.tasks();
        tasks
            .iter_mut()
            .filter_map(|(task, feed)| feed.start_if_dirty().then_some(*task))
            .collect()
    }

    /// A catch-up read of `task` begins: the seq to read after, or `None` when its feed is
    /// gone (no subscribers left, or its task ended).
    pub(super) fn begin_read(&self, task: TaskId) -> Option<u64> {
        let mut tasks = self.tasks();
        let feed = tasks.get_mut(&task)?;
        feed.dirty = false;
        Some(feed.sent)
    }

    /// The catch-up read of `task` sent what it read: whether to read again (something was
    /// announced since the read began).
    pub(super) fn end_read(&self, task: TaskId) -> bool {
        let mut tasks = self.tasks();
        let Some(feed) = tasks.get_mut(&task) else {
            return false;
        };
        if feed.dirty {
            return true;
        }
        feed.fetching = false;
        false
    }

    /// The catch-up read of `task` failed: it stays wanted, for [`Feeds::stalled`].
    pub(super) fn failed_read(&self, task: TaskId) {
        if let Some(feed) = self.tasks().get_mut(&task) {
            feed.dirty = true;
            feed.fetching = false;
        }
    }
}

impl Feed {
    /// Marks the feed fetching if it needs a read and none is under way; whether it did.
    fn start_if_dirty(&mut self) -> bool {
        if self.dirty && !self.fetching {
            self.fetching = true;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use amas_types::JournalEvent;

    fn record(task: TaskId, seq: u64) -> JournalRecord {
        JournalRecord {
            task_id: task,
            seq,
            recorded_at: chrono::Utc::now(),
            event: JournalEvent::TaskStarted,
        }
    }

    fn received(rx: &mut broadcast::Receiver<JournalRecord>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|r| r.seq)).collect()
    }

    /// What both paths bring (this process's commit, and the catch-up read announced by the
    /// store) is sent once, in order.
    #[test]
    fn a_record_from_both_paths_is_sent_once() {
        let feeds = Feeds::new();
        let (tx, _rx) = mpsc::unbounded_channel();
        assert!(feeds.fetch_with(tx));
        let task = TaskId::new();
        let mut live = feeds.subscribe(task);
        feeds.anchor(task, 3);
        feeds.publish(&[record(task, 4), record(task, 5)]);
        feeds.publish(&[record(task, 4), record(task, 5), record(task, 6)]);
        feeds.publish(&[record(task, 2), record(task, 3)]);
        assert_eq!(received(&mut live), [4, 5, 6]);
    }

    /// A record ahead of a missing one is held back and a catch-up read asked for; the read
    /// sends both, in order; an announcement during the read asks for another.
    #[test]
    fn a_gap_waits_for_the_catch_up_read() {
        let feeds = Feeds::new();
        let (tx, mut asked) = mpsc::unbounded_channel();
        assert!(feeds.fetch_with(tx));
        let task = TaskId::new();
        let mut live = feeds.subscribe(task);
        feeds.anchor(task, 3);
        feeds.publish(&[record(task, 6)]);
        assert_eq!(
            received(&mut live),
            Vec::<u64>::new(),
            "6 waits for 4 and 5"
        );
        assert_eq!(asked.try_recv().ok(), Some(task));
        // More gaps and notices while the read is queued ask for nothing more.
        feeds.notice(task, 7);
        assert!(asked.try_recv().is_err());

        assert_eq!(feeds.begin_read(task), Some(3));
        feeds.notice(task, 8);
        feeds.publish(&[
            record(task, 4),
            record(task, 5),
            record(task, 6),
            record(task, 7),
        ]);
        assert!(feeds.end_read(task), "8 was announced during the read");
        assert_eq!(feeds.begin_read(task), Some(7));
        feeds.publish(&[record(task, 8)]);
        assert!(!feeds.end_read(task));
        assert_eq!(received(&mut live), [4, 5, 6, 7, 8]);
        // Announced and already sent: nothing to read.
        feeds.notice(task, 8);
        assert!(asked.try_recv().is_err());
    }

    /// A reconnection reads every feed again; a failed read is retried.
    #[test]
    fn a_resync_reads_every_feed_and_a_failed_read_is_retried() {
        let feeds = Feeds::new();
        let (tx, mut asked) = mpsc::unbounded_channel();
        assert!(feeds.fetch_with(tx));
        let (a, b) = (TaskId::new(), TaskId::new());
        let _live_a = feeds.subscribe(a);
        let _live_b = feeds.subscribe(b);
        feeds.resync();
        let mut got = vec![
            asked.try_recv().expect("one read"),
            asked.try_recv().expect("another"),
        ];
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want);
        assert_eq!(feeds.begin_read(a), Some(0));
        feeds.failed_read(a);
        assert_eq!(feeds.stalled(), [a]);
        assert!(feeds.stalled().is_empty(), "started once");
    }

    /// A task's end closes its feed; a feed nobody reads is not read for.
    #[test]
    fn the_end_closes_the_feed() {
        let feeds = Feeds::new();
        let (tx, mut asked) = mpsc::unbounded_channel();
        assert!(feeds.fetch_with(tx));
        let task = TaskId::new();
        let mut live = feeds.subscribe(task);
        feeds.anchor(task, 1);
        let mut end = record(task, 2);
        end.event = JournalEvent::TaskCancelled {
            reason: "r".to_owned(),
        };
        feeds.publish(&[end]);
        assert_eq!(received(&mut live), [2]);
        feeds.notice(task, 3);
        assert!(asked.try_recv().is_err(), "no feed, no read");
        assert_eq!(feeds.begin_read(task), None);
    }
}
