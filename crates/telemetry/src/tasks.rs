//! Background tasks, named and drained at shutdown: the one way AMAS code starts a Tokio task
//! (`clippy.toml` forbids a bare `tokio::spawn`). Every task is spawned through a
//! [`TaskTracker`] under a static name; [`TaskTracker::shutdown`] tells loops to stop (they
//! watch [`TaskTracker::stopping`]), waits for every task up to a patience, then aborts and
//! names the ones that did not finish, so `amas serve` neither exits under a task that is still
//! writing audit records nor hangs on one that is stuck.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::{AbortHandle, JoinHandle};

/// Tracks spawned tasks by name. Clones share the same set.
#[derive(Clone)]
pub struct TaskTracker {
    inner: Arc<Inner>,
}

struct Inner {
    live: Mutex<BTreeMap<u64, Live>>,
    next: AtomicU64,
    /// Woken whenever a task ends.
    ended: Notify,
    stop: watch::Sender<bool>,
}

struct Live {
    name: &'static str,
    abort: Option<AbortHandle>,
}

/// What [`TaskTracker::shutdown`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks that ended within the patience.
    pub finished: usize,
    /// Names of the tasks still running when the patience ran out (aborted), sorted.
    pub abandoned: Vec<&'static str>,
}

/// Resolves once shutdown has begun; loops select on it next to their work.
#[derive(Clone, Debug)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Waits until shutdown begins (at once if it has; also if the tracker is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }
}

/// Removes its task from the live set when the task's future is dropped: when it finishes,
/// is aborted, or its runtime goes away.
struct Guard {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        self.inner.ended.notify_waiters();
    }
}

impl Default for TaskTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TaskTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskTracker")
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl TaskTracker {
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                live: Mutex::new(BTreeMap::new()),
                next: AtomicU64::new(0),
                ended: Notify::new(),
                stop: watch::Sender::new(false),
            }),
        }
    }

    /// Spawns `future` on the current Tokio runtime as the task `name`.
    ///
    /// # Panics
    /// As `tokio::spawn`: when called outside a Tokio runtime.
    pub fn spawn<F>(&self, name: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(&Handle::current(), name, future)
    }

    /// As [`TaskTracker::spawn`], on `runtime` (for callbacks running on other threads).
    pub fn spawn_on<F>(
        &self,
        runtime: &Handle,
        name: &'static str,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Live { name, abort: None });
        let guard = Guard {
            inner: Arc::clone(&self.inner),
            id,
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "the tracker is the one place a task is spawned"
        )]
        let handle = runtime.spawn(async move {
            let _guard = guard;
            future.await
        });
        if let Some(live) = self.lock().get_mut(&id) {
            live.abort = Some(handle.abort_handle());
        }
        handle
    }

    /// A signal that resolves when shutdown begins.
    #[must_use]
    pub fn stopping(&self) -> Stopping {
        Stopping(self.inner.stop.subscribe())
    }

    /// The names of the tasks running now, sorted.
    #[must_use]
    pub fn live(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.lock().values().map(|l| l.name).collect();
        names.sort_unstable();
        names
    }

    /// Begins shutdown ([`TaskTracker::stopping`] resolves), waits up to `patience` for every
    /// tracked task to end, then aborts the ones left and names them in the report. Tasks
    /// spawned meanwhile are waited for too.
    pub async fn shutdown(&self, patience: Duration) -> ShutdownReport {
        self.inner.stop.send_replace(true);
        let started = self.lock().len();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so an end between the check and the wait wakes us.
            let ended = self.inner.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.lock().is_empty() {
                return ShutdownReport {
                    finished: started,
                    abandoned: Vec::new(),
                };
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let left: Vec<Live> = std::mem::take(&mut *self.lock()).into_values().collect();
        let mut abandoned: Vec<_> = left.iter().map(|l| l.name).collect();
        abandoned.sort_unstable();
        for live in left {
            if let Some(abort) = live.abort {
                abort.abort();
            }
        }
        ShutdownReport {
            finished: started.saturating_sub(abandoned.len()),
            abandoned,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Live>> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's tracker: what [`spawn`] uses and `amas serve` drains at shutdown.
#[must_use]
pub fn global() -> &'static TaskTracker {
    static GLOBAL: OnceLock<TaskTracker> = OnceLock::new();
    GLOBAL.get_or_init(TaskTracker::new)
}

/// Spawns `future` as the task `name` on the [`global`] tracker (current Tokio runtime).
///
/// # Panics
/// As `tokio::spawn`: when called outside a Tokio runtime.
pub fn spawn<F>(name: &'static str, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    global().spawn(name, future)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn a_tracked_task_finishes_before_shutdown_returns() {
        let tracker = TaskTracker::new();
        let wrote = Arc::new(AtomicBool::new(false));
        let w = Arc::clone(&wrote);
        // A loop that, told to stop, still finishes its last write (like an audit flush).
        let mut stopping = tracker.stopping();
        tracker.spawn("writer", async move {
            stopping.wait().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            w.store(true, Ordering::SeqCst);
        });
        assert_eq!(tracker.live(), vec!["writer"]);
        assert!(!wrote.load(Ordering::SeqCst));

        let report = tracker.shutdown(Duration::from_secs(30)).await;

        assert!(
            wrote.load(Ordering::SeqCst),
            "shutdown returned before the write"
        );
        assert_eq!(report.finished, 1);
        assert!(report.abandoned.is_empty(), "{report:?}");
        assert!(tracker.live().is_empty());
    }

    #[tokio::test]
    async fn a_stuck_task_is_abandoned_after_the_patience_and_named() {
        let tracker = TaskTracker::new();
        let quick = tracker.spawn("quick", async {});
        let dropped = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let marker = SetOnDrop(Arc::clone(&dropped));
        let stuck = tracker.spawn("stuck", async move {
            let _marker = marker;
            // Ignores the stop signal.
            std::future::pending::<()>().await;
        });
        quick.await.unwrap();

        let report = tracker.shutdown(Duration::from_millis(100)).await;

        assert_eq!(report.abandoned, vec!["stuck"]);
        assert_eq!(
            report.finished, 0,
            "only the stuck task was live at shutdown"
        );
        let err = stuck.await.unwrap_err();
        assert!(err.is_cancelled(), "the abandoned task is aborted: {err}");
        assert!(dropped.load(Ordering::SeqCst));
        assert!(tracker.live().is_empty());
    }

    #[tokio::test]
    async fn finished_tasks_leave_the_live_set_and_stopping_starts_unset() {
        let tracker = TaskTracker::new();
        let stopping = tracker.stopping();
        assert!(!stopping.is_stopping());
        tracker.spawn("a", async { 1 }).await.unwrap();
        assert!(tracker.live().is_empty());
        let report = tracker.shutdown(Duration::from_millis(10)).await;
        assert_eq!(report, ShutdownReport::default());
        assert!(stopping.is_stopping());
    }
}
