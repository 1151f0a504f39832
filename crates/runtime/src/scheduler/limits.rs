//! Admission's backpressure: a place in the queue for a submission, or why there is none. The
//! global limit (`runtime.queue_capacity`) answers 429 `AMAS-TASK-0003`, a tenant's own
//! (`max_queued`) 429 `AMAS-TASK-0007` while other tenants are still admitted. One process
//! counts its own queue, exactly; on PostgreSQL the database is the queue, so the tasks not yet
//! started are counted there (index-only counts that stop at the limit), plus the places this
//! process has reserved for submissions it is journaling. Two processes admitting at the same
//! instant may each pass the last place: the limit is exact per process and may be overshot by
//! the submissions in flight across processes.

use amas_types::TenantId;

use super::queue::Refusal;
use super::{Mode, Reservation, Scheduler};
use crate::RuntimeError;

/// What a refused submission is told to wait before retrying.
const RETRY_AFTER_SECS: u64 = 1;

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
        let waiting = database.waiting(&tenant.0, limit, capacity).await?;
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
