//! Task leases: how worker processes sharing one database divide the runnable tasks between
//! them. A worker claims tasks ([`TaskLeases::claim`], `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), renews its leases before they expire and releases them when it stops. Each
//! claim of a task raises its fencing epoch; every journal append the worker makes for the
//! task carries that epoch ([`Fence`], [`crate::TaskJournal::append_fenced`]) and the store
//! refuses it unless it is still current, so a worker that lost its lease (paused, partitioned,
//! killed and replaced) can never write for the task again.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use amas_types::TaskId;

use crate::{Fairness, StoreError};

/// The fencing token a worker's appends carry: the epoch of its lease on the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence {
    pub epoch: u64,
}

/// A claimed task: the worker may write its journal under `epoch` until `expires_at` (the
/// database's clock), unless it renews first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub task: TaskId,
    pub epoch: u64,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// What the worker's appends for this task carry.
    #[must_use]
    pub fn fence(&self) -> Fence {
        Fence { epoch: self.epoch }
    }
}

/// Leases on runnable tasks for the worker processes of one installation.
#[async_trait]
pub trait TaskLeases: Send + Sync {
    /// Claims up to `max` unfinished tasks that nobody holds (never leased, released, or
    /// expired), each for `ttl` under an epoch one higher than the task's last, every tenant at
    /// weight 1 without caps ([`TaskLeases::claim_fair`] with [`Fairness::default`]).
    /// Concurrent claimers never get the same task.
    ///
    /// # Errors
    /// Backend errors.
    async fn claim(&self, worker: &str, max: u32, ttl: Duration) -> Result<Vec<Lease>, StoreError> {
        self.claim_fair(worker, max, ttl, &Fairness::default())
            .await
    }

    /// [`TaskLeases::claim`] divided fairly between tenants (see [`crate::queue`]): the tasks
    /// come from the tenants with the smallest pass, each tenant's in priority order, and no
    /// tenant beyond its `max_running` live leases. Claims of different workers never get the
    /// same task; with caps they serialize, so a cap holds across workers.
    ///
    /// # Errors
    /// Backend errors.
    async fn claim_fair(
        &self,
        worker: &str,
        max: u32,
        ttl: Duration,
        fairness: &Fairness,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Extends the leases `worker` still holds among `leases` by `ttl` from now and returns
    /// them; the others are lost (expired and possibly claimed by another worker) and their
    /// tasks must stop.
    ///
    /// # Errors
    /// Backend errors.
    async fn renew(
        &self,
        worker: &str,
        leases: &[Lease],
        ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError>;

    /// Gives up `leases` now (a worker stopping, a task that ended): another worker may claim
    /// their tasks at once, under a higher epoch. Leases already lost are skipped.
    ///
    /// # Errors
    /// Backend errors.
    async fn release(&self, worker: &str, leases: &[Lease]) -> Result<(), StoreError>;

    /// Gives up `lease` because its task waits (for an approval) until `until`: claims skip
    /// the task until then, unless a command for it is pending ([`crate::TaskCommands`]),
    /// which is what wakes it. A lease already lost is skipped.
    ///
    /// # Errors
    /// Backend errors.
    async fn park(
        &self,
        worker: &str,
        lease: &Lease,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Claims `task` alone, for `ttl`, when nobody holds it (parked or not): a process that
    /// does not run the task writes to its journal under this lease (a cancel of a task no
    /// worker runs). `None` when another process holds it, or the task is unknown or ended.
    ///
    /// # Errors
    /// Backend errors.
    async fn claim_task(
        &self,
        worker: &str,
        task: TaskId,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;
}

/// The refusal of a fence by a backend that has no leases.
pub(crate) fn unsupported() -> StoreError {
    StoreError::InvalidAppend(
        "this store holds no task leases (SQLite runs one process); a fenced append needs \
         PostgreSQL"
            .to_owned(),
    )
}

/// The lease length in whole milliseconds, as the SQL takes it.
pub(crate) fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
