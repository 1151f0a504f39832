//! The queue of one process (SQLite, or any store run as a single process): which waiting task
//! the next free slot runs. Start-time fair queueing across tenants, the rule PostgreSQL's
//! claims follow too (`amas_store::Fairness`):
//!
//! - Each tenant has a pass, the virtual time its next task starts at; starting a task moves it
//!   `1 / weight`. The next task comes from the tenant with the smallest pass; ties go to the
//!   tenant whose next task has the higher priority, then to the older task.
//! - The queue's clock is the pass the last task started at. A tenant that becomes ready again
//!   (it had nothing waiting, or was at its cap) restarts from the clock if its pass fell
//!   behind it, so waiting idle banks no credit: a tenant's single task waits for at most one
//!   task of each other tenant (the one tied with it), whatever they have queued.
//! - Within a tenant: the highest priority first, then the oldest. Priority never overtakes
//!   another tenant's share: it orders a tenant's own tasks and breaks ties.
//! - A tenant running `max_running` tasks is skipped until one of them ends; the others go on.
//!
//! The queue also counts what admission checks: tasks waiting (queued, and places reserved for
//! submissions being journaled) in total against `runtime.queue_capacity` and per tenant
//! against `max_queued`. It is plain data under the scheduler's lock: no I/O, no clock but
//! the enqueue instants.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use amas_config::{SchedulingConfig, TenantSchedule};
use amas_types::TaskId;

/// A pass moves `UNIT / weight` per task started: fixed point, so ordering is exact integer
/// comparison (the rounding error of `1 / weight` is below 1e-9 of a task).
const UNIT: u128 = 1 << 40;

/// Priorities run 1..=10.
const PRIORITIES: usize = 10;

/// Why a place in the queue was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `runtime.queue_capacity` tasks are waiting.
    Full { capacity: usize },
    /// The tenant has its `max_queued` tasks waiting.
    TenantFull { limit: usize },
}

/// A task the queue handed a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Next {
    pub task: TaskId,
    pub tenant: Arc<str>,
}

/// Where a ready tenant sorts: its pass, then its next task's priority (higher first) and age.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    pass: u128,
    priority: Reverse<u8>,
    seq: u64,
    tenant: Arc<str>,
}

struct Waiting {
    task: TaskId,
    seq: u64,
    since: Instant,
}

struct Tenant {
    schedule: TenantSchedule,
    /// By priority - 1; each in arrival order.
    waiting: [VecDeque<Waiting>; PRIORITIES],
    queued: usize,
    reserved: usize,
    running: usize,
    pass: u128,
    /// Its place in `ready` while it has tasks waiting and is below its cap.
    key: Option<Key>,
}

impl Tenant {
    fn new(schedule: TenantSchedule) -> Self {
        Self {
            schedule,
            waiting: std::array::from_fn(|_| VecDeque::new()),
            queued: 0,
            reserved: 0,
            running: 0,
            pass: 0,
            key: None,
        }
    }

    fn at_cap(&self) -> bool {
        self.schedule
            .max_running
            .is_some_and(|cap| self.running >= usize::try_from(cap).unwrap_or(usize::MAX))
    }

    /// The next task: highest priority, then oldest.
    fn head(&self) -> Option<(u8, &Waiting)> {
        (0..PRIORITIES).rev().find_map(|p| {
            self.waiting[p]
                .front()
                .map(|w| (u8::try_from(p + 1).unwrap_or(u8::MAX), w))
        })
    }

    fn idle(&self) -> bool {
        self.queued == 0 && self.reserved == 0 && self.running == 0
    }

    fn stride(&self) -> u128 {
        UNIT / u128::from(self.schedule.weight.max(1))
    }
}

/// See the module docs.
pub(crate) struct FairQueue {
    config: SchedulingConfig,
    capacity: usize,
    tenants: HashMap<Arc<str>, Tenant>,
    ready: BTreeSet<Key>,
    /// Tenants with nothing waiting, reserved or running whose pass is still ahead of the
    /// clock: kept until the clock passes it, so going idle after each task gains nothing.
    idle: BTreeSet<(u128, Arc<str>)>,
    clock: u128,
    seq: u64,
    queued: usize,
    reserved: usize,
}

impl FairQueue {
    pub(crate) fn new(config: SchedulingConfig, capacity: usize) -> Self {
        Self {
            config,
            capacity,
            tenants: HashMap::new(),
            ready: BTreeSet::new(),
            idle: BTreeSet::new(),
            clock: 0,
            seq: 0,
            queued: 0,
            reserved: 0,
        }
    }

    fn tenant(&mut self, tenant: &str) -> (Arc<str>, &mut Tenant) {
        let name: Arc<str> = match self.tenants.get_key_value(tenant) {
            Some((name, t)) => {
                let name = Arc::clone(name);
                self.idle.remove(&(t.pass, Arc::clone(&name)));
                name
            }
            None => Arc::from(tenant),
        };
        let schedule = self.config.tenant(tenant);
        let entry = self
            .tenants
            .entry(Arc::clone(&name))
            .or_insert_with(|| Tenant::new(schedule));
        (name, entry)
    }

    /// Takes a place for a submission of `tenant`, unless the queue or the tenant's share of
    /// it is full.
    pub(crate) fn reserve(&mut self, tenant: &str) -> Result<(), Refusal> {
        if self.queued + self.reserved >= self.capacity {
            return Err(Refusal::Full {
                capacity: self.capacity,
            });
        }
        let limit = self
            .config
            .tenant(tenant)
            .max_queued
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let waiting = self
            .tenants
            .get(tenant)
            .map_or(0, |t| t.queued + t.reserved);
        if let Some(limit) = limit.filter(|l| waiting >= *l) {
            return Err(Refusal::TenantFull { limit });
        }
        self.hold(tenant);
        Ok(())
    }

    /// Takes a place without checking the limits (the database counts them, on PostgreSQL);
    /// returns what is now reserved in this process, the tenant's and in total.
    pub(crate) fn hold(&mut self, tenant: &str) -> (usize, usize) {
        let (_, t) = self.tenant(tenant);
        t.reserved += 1;
        let of_tenant = t.reserved;
        self.reserved += 1;
        (of_tenant, self.reserved)
    }

    /// Gives back a place taken by [`FairQueue::reserve`] or [`FairQueue::hold`].
    pub(crate) fn unreserve(&mut self, tenant: &str) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.reserved = t.reserved.saturating_sub(1);
            self.reserved = self.reserved.saturating_sub(1);
        }
        self.forget_if_idle(tenant);
    }

    /// Queues `task` in the place reserved for it (`reserved`), or beyond the limits
    /// (recovery: these tasks were admitted before).
    pub(crate) fn push(&mut self, tenant: &str, task: TaskId, priority: u8, reserved: bool) {
        self.seq += 1;
        let seq = self.seq;
        let (_, t) = self.tenant(tenant);
        let from_reserved = reserved && t.reserved > 0;
        if from_reserved {
            t.reserved -= 1;
        }
        let p = usize::from(priority.clamp(1, 10)) - 1;
        t.waiting[p].push_back(Waiting {
            task,
            seq,
            since: Instant::now(),
        });
        t.queued += 1;
        if from_reserved {
            self.reserved = self.reserved.saturating_sub(1);
        }
        self.queued += 1;
        self.rekey(tenant);
    }

    /// The task the next free slot runs, if any tenant below its cap has one waiting.
    pub(crate) fn pop(&mut self) -> Option<Next> {
        let key = self.ready.pop_first()?;
        let clock = key.pass;
        let t = self.tenants.get_mut(&key.tenant)?;
        t.key = None;
        let (priority, _) = t.head()?;
        let waiting = t.waiting[usize::from(priority) - 1].pop_front()?;
        t.queued -= 1;
        t.running += 1;
        t.pass = key.pass + t.stride();
        self.queued -= 1;
        self.clock = self.clock.max(clock);
        self.rekey(&key.tenant);
        // Idle tenants the clock caught up with would restart from it anyway.
        while let Some((pass, name)) = self.idle.first().cloned()
            && pass <= self.clock
        {
            self.idle.remove(&(pass, Arc::clone(&name)));
            self.tenants.remove(&name);
        }
        Some(Next {
            task: waiting.task,
            tenant: key.tenant,
        })
    }

    /// A task [`FairQueue::pop`] handed out has stopped running: its tenant may run another.
    pub(crate) fn finish(&mut self, tenant: &str) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.running = t.running.saturating_sub(1);
        }
        self.rekey(tenant);
        self.forget_if_idle(tenant);
    }

    /// Puts `tenant` in `ready` at its current key, or takes it out (nothing waiting, at cap).
    fn rekey(&mut self, tenant: &str) {
        let clock = self.clock;
        let Some(name) = self
            .tenants
            .get_key_value(tenant)
            .map(|(k, _)| Arc::clone(k))
        else {
            return;
        };
        let Some(t) = self.tenants.get_mut(tenant) else {
            return;
        };
        let was_ready = t.key.take();
        if let Some(old) = &was_ready {
            self.ready.remove(old);
        }
        if t.at_cap() {
            return;
        }
        let Some((priority, seq)) = t.head().map(|(p, head)| (p, head.seq)) else {
            return;
        };
        if was_ready.is_none() {
            // Becoming ready again: an idle or capped spell banks no credit.
            t.pass = t.pass.max(clock);
        }
        let key = Key {
            pass: t.pass,
            priority: Reverse(priority),
            seq,
            tenant: name,
        };
        t.key = Some(key.clone());
        self.ready.insert(key);
    }

    /// A tenant with nothing waiting, reserved or running is dropped once the clock has caught
    /// up with its pass (it would restart from the clock anyway); until then it is kept idle.
    fn forget_if_idle(&mut self, tenant: &str) {
        let Some((name, t)) = self.tenants.get_key_value(tenant) else {
            return;
        };
        if !t.idle() {
            return;
        }
        if t.pass <= self.clock {
            self.tenants.remove(tenant);
        } else {
            self.idle.insert((t.pass, Arc::clone(name)));
        }
    }

    /// Tasks waiting for a slot, and places reserved for submissions being journaled.
    pub(crate) fn len(&self) -> usize {
        self.queued + self.reserved
    }

    /// Tasks waiting for a slot.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Tasks waiting, by tenant.
    pub(crate) fn depths(&self) -> impl Iterator<Item = (&str, usize)> {
        self.tenants
            .iter()
            .filter(|(_, t)| t.queued > 0)
            .map(|(name, t)| (&**name, t.queued))
    }

    /// When the oldest waiting task was queued.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.tenants
            .values()
            .flat_map(|t| t.waiting.iter().filter_map(VecDeque::front))
            .map(|w| w.since)
            .min()
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
