//! The dispatcher of one process's own queue (SQLite): whenever a slot is free, it asks the
//! fair queue (`queue.rs`) for the next task and runs it; when every tenant with tasks waiting
//! is at its cap, or nothing waits, it sleeps until a task is queued or one ends.

use std::sync::Arc;

use super::Scheduler;
use super::queue::Next;

impl Scheduler {
    pub(super) fn start_dispatching(self: &Arc<Self>) {
        let scheduler = Arc::clone(self);
        let mut stopping = amas_telemetry::tasks::global().stopping();
        amas_telemetry::tasks::spawn("runtime.dispatcher", async move {
            // At shutdown queued tasks stay in their journal and resume at the next start.
            loop {
                let permit = tokio::select! {
                    permit = Arc::clone(&scheduler.slots).acquire_owned() => permit,
                    () = stopping.wait() => break,
                };
                let Ok(permit) = permit else {
                    break;
                };
                let next = tokio::select! {
                    next = scheduler.next_task() => next,
                    () = stopping.wait() => break,
                };
                let scheduler = Arc::clone(&scheduler);
                amas_telemetry::tasks::spawn("runtime.task", async move {
                    scheduler.run_one(next.task, None).await;
                    scheduler.queue().finish(&next.tenant);
                    drop(permit);
                    scheduler.queue_changed.notify_one();
                });
            }
        });
    }

    /// Waits for the task the fair queue hands the free slot.
    async fn next_task(&self) -> Next {
        loop {
            let popped = {
                let mut queue = self.queue();
                queue.pop().map(|next| (next, queue.queued()))
            };
            if let Some((next, depth)) = popped {
                self.metrics
                    .queue_depth
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
                return next;
            }
            // A task queued or ended since the pop left its permit here: no wake-up is lost.
            self.queue_changed.notified().await;
        }
    }
}
