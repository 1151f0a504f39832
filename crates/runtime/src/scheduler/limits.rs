//! Admission's backpressure: a place in the queue for a submission, or why there is none. The
//! global limit (`runtime.queue_capacity`) answers 429 `AMAS-TASK-0003`, a tenant's own
//! (`max_queued`) 429 `AMAS-TASK-0007` while other tenants are still admitted. One process
//! counts its own queue, exactly; on PostgreSQL the database is the queue, so the tasks not yet
//! started are counted there (index-only counts that stop at the limit), plus the places this
//! process has reserved for submissions it is journaling. Two processes admitting at the same
//! instant may each pass the last place: the limit is exact per process and may be overshot by
//! the submissions in flight across processes.
//!
//! The global count costs a scan of up to `runtime.queue_capacity` index entries (2 ms at
//! 10,000 waiting), so it is not repeated on every submission while the queue is far from
//! full: a count below half the capacity is reused, plus this process's admissions since, for
//! up to a second. A tenant's count (bounded by its `max_queued`) is taken every time.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use amas_types::TenantId;

use super::queue::Refusal;
use super::{Mode, Reservation, Scheduler};
use crate::RuntimeError;

/// What a refused submission is told to wait before retrying.
const RETRY_AFTER_SECS: u64 = 1;

/// How long a count of the database's waiting tasks far below the capacity is reused.
const REUSE_COUNT: Duration = Duration::from_secs(1);

/// The last exact count of the tasks waiting in the database, with this process's admissions
/// since (PostgreSQL).
#[derive(Default)]
pub(super) struct TotalCount(Mutex<Option<(Instant, u64)>>);

impl TotalCount {
    /// The estimate to admit on without counting, if the last count allows reusing it.
    fn reusable(&self, capacity: u64) -> Option<u64> {
        let last = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.filter(|(at, total)| at.elapsed() < REUSE_COUNT && *total < capacity / 2)
            .map(|(_, total)| total)
    }

    fn counted(&self, total: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), total));
    }

    fn admitted(&self) {
        if let Some((_, total)) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            *total += 1;
        }
    }
}

impl Scheduler {
    /// A place in the queue for a task of `tenant`, or why there is none (backpressure).
    ///
    /// # Errors
    /// [`RuntimeError::QueueFull`], [`RuntimeError::TenantQueueFull`], or a store error while
    /// counting (PostgreSQL).
    pub(crate) async fn reserve(&self, tenant: &TenantId) -> Result<Reservation<'_>, RuntimeError> {
        let database = match self.mode() {
            Mode::Local => None,
            Mode::Claims(_) | Mode::Elsewhere => self.database.get(),
        };
        let Some(database) = database else {
            self.queue().reserve(&tenant.0).map_err(refused)?;
            return Ok(self.reservation(tenant));
        };
        let (mine, all) = self.queue().hold(&tenant.0);
        // Given back if refused: dropped unused.
        let reservation = self.reservation(tenant);
        let limit = self.scheduling.tenant(&tenant.0).max_queued.map(u64::from);
        let capacity = u64::try_from(self.capacity).unwrap_or(u64::MAX);
        let reused = self.waiting_total.reusable(capacity);
        let waiting = match (reused, limit) {
            // Nothing to count: the total is reused and the tenant has no limit of its own.
            (Some(total), None) => amas_store::Waiting { tenant: 0, total },
            _ => {
                let mut waiting = database
                    .waiting(
                        &tenant.0,
                        limit,
                        if reused.is_some() { 0 } else { capacity },
                    )
                    .await?;
                match reused {
                    Some(total) => waiting.total = total,
                    None => self.waiting_total.counted(waiting.total),
                }
                waiting
            }
        };
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if waiting.total.saturating_add(count(all)) > capacity {
            return Err(refused(Refusal::Full {
                capacity: self.capacity,
            }));
        }
        if let Some(limit) = limit
            && waiting.tenant.saturating_add(count(mine)) > limit
        {
            return Err(RuntimeError::TenantQueueFull {
                limit,
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        self.waiting_total.admitted();
        Ok(reservation)
    }

    fn reservation(&self, tenant: &TenantId) -> Reservation<'_> {
        Reservation {
            scheduler: self,
            tenant: tenant.clone(),
            used: false,
        }
    }
}

fn refused(refusal: Refusal) -> RuntimeError {
    match refusal {
        Refusal::Full { capacity } => RuntimeError::QueueFull {
            capacity,
            retry_after_secs: RETRY_AFTER_SECS,
        },
        Refusal::TenantFull { limit } => RuntimeError::TenantQueueFull {
            limit: u64::try_from(limit).unwrap_or(u64::MAX),
            retry_after_secs: RETRY_AFTER_SECS,
        },
    }
}
