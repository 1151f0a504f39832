//! Following the commits of other processes (PostgreSQL, several processes on one database):
//! the store announces every commit ([`CommitListener`]); for a task with subscribers here,
//! the records after the last one its feed sent are read from the journal and sent, in order.
//! After the listener reconnects (announcements made meanwhile are lost), every feed is read
//! again from its last seq. A read that failed is retried every second.
//!
//! Two background tasks: the listener, which only marks feeds (it must never be interrupted
//! in the middle of a read), and the catch-up reads, several at once.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::warn;

use amas_store::{CommitListener, CommitNotice, TaskJournal};
use amas_types::TaskId;

use super::{Journal, Published};

/// How often feeds whose read failed are read again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Journal {
    /// Feeds what every process commits (as `listener` announces it) into this process's live
    /// streams. Call once; later calls do nothing.
    pub(crate) fn follow(&self, mut listener: Box<dyn CommitListener>) {
        let (fetcher, mut asked) = mpsc::unbounded_channel();
        if !self.published.feeds.fetch_with(fetcher) {
            return;
        }
        let published = Arc::clone(&self.published);
        amas_telemetry::tasks::spawn("runtime.commit_listener", async move {
            let mut stopping = amas_telemetry::tasks::global().stopping();
            loop {
                let notice = tokio::select! {
                    notice = listener.next() => notice,
                    () = stopping.wait() => return,
                };
                match notice {
                    CommitNotice::Appended { task, last_seq } => {
                        published.feeds.notice(task, last_seq);
                    }
                    CommitNotice::Resync => published.feeds.resync(),
                }
            }
        });
        let published = Arc::clone(&self.published);
        let store = Arc::clone(&self.store);
        amas_telemetry::tasks::spawn("runtime.live_catch_up", async move {
            let mut stopping = amas_telemetry::tasks::global().stopping();
            let mut reads = FuturesUnordered::new();
            let mut retry = tokio::time::interval(RETRY_EVERY);
            loop {
                tokio::select! {
                    task = asked.recv() => match task {
                        Some(task) => reads.push(catch_up(Arc::clone(&published), Arc::clone(&store), task)),
                        None => return,
                    },
                    Some(()) = reads.next(), if !reads.is_empty() => {}
                    _ = retry.tick() => {
                        for task in published.feeds.stalled() {
                            reads.push(catch_up(Arc::clone(&published), Arc::clone(&store), task));
                        }
                    }
                    () = stopping.wait() => return,
                }
            }
        });
    }
}

/// Reads `task`'s journal after the last record its feed sent and publishes what it finds,
/// again as long as commits are announced meanwhile.
async fn catch_up(published: Arc<Published>, store: Arc<dyn TaskJournal>, task: TaskId) {
    loop {
        let Some(after) = published.feeds.begin_read(task) else {
            return;
        };
        match store.read(task, after).await {
            Ok(records) => {
                published.publish_read(&records);
                if !published.feeds.end_read(task) {
                    return;
                }
            }
            Err(e) => {
                warn!(task.id = %task, error.code = e.code(), error.message = %e, "Reading a task's new journal records failed; retrying.");
                published.feeds.failed_read(task);
                return;
            }
        }
    }
}
