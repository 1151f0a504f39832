//! The database as the queue (PostgreSQL, several processes): how claims divide the runnable
//! tasks between tenants ([`Fairness`], used by [`crate::TaskLeases::claim_fair`]) and what
//! admission and the queue metrics read from it ([`TaskQueue`]).
//!
//! Claims are start-time fair queueing across tenants, the same rule as the local queue of a
//! single process: each tenant has a pass (virtual time) that moves `1 / weight` for each task
//! it starts; the next task comes from the tenant with the smallest pass (ties: the higher
//! priority, then the older task), and a tenant whose pass fell behind the system's virtual
//! time (it was idle, or at its cap) restarts from it, so idleness banks no credit. Within a
//! tenant, highest priority first, then oldest. A tenant at its `max_running` (live leases,
//! on every worker) is skipped.

use std::time::Duration;

use async_trait::async_trait;

use amas_config::SchedulingConfig;

use crate::StoreError;

/// One tenant with a weight or a cap of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantShare {
    pub tenant: String,
    pub weight: u32,
    /// Live leases it may hold at once; `None`: no cap.
    pub max_running: Option<u32>,
}

/// How claims order and cap tenants: the `scheduling` section as a claim takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fairness {
    /// Every tenant not in `tenants`.
    pub default_weight: u32,
    pub default_max_running: Option<u32>,
    pub tenants: Vec<TenantShare>,
}

impl Default for Fairness {
    /// Every tenant at weight 1, without caps.
    fn default() -> Self {
        Self {
            default_weight: 1,
            default_max_running: None,
            tenants: Vec::new(),
        }
    }
}

impl Fairness {
    /// Whether any tenant is capped: such claims serialize across workers (they lock the
    /// scheduler's clock first), so that each reads the live leases the previous one left and
    /// a cap holds exactly.
    #[must_use]
    pub fn has_caps(&self) -> bool {
        self.default_max_running.is_some() || self.tenants.iter().any(|t| t.max_running.is_some())
    }
}

impl From<&SchedulingConfig> for Fairness {
    fn from(config: &SchedulingConfig) -> Self {
        Self {
            default_weight: config.default.weight,
            default_max_running: config.default.max_running,
            tenants: config
                .tenants
                .iter()
                .map(|(tenant, s)| TenantShare {
                    tenant: tenant.clone(),
                    weight: s.weight,
                    max_running: s.max_running,
                })
                .collect(),
        }
    }
}

/// Tasks waiting for their first start, as admission counts them (each count stops at the
/// limit it was asked about: beyond it the exact number does not matter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub tenant: u64,
    pub total: u64,
}

/// The tasks waiting for a worker (unfinished, no live lease) of one tenant, or of every
/// tenant not asked about by name (`tenant: None`).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantBacklog {
    pub tenant: Option<String>,
    pub depth: u64,
    /// Since the submission of the oldest of them (the database's clock).
    pub oldest_age: Duration,
}

/// The queue as the database holds it, for processes that share it.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Tasks submitted and not yet started: `tenant`'s, counted up to `tenant_limit` (0 when
    /// `None`), and everyone's, counted up to `total_limit` (0: not counted).
    ///
    /// # Errors
    /// Backend errors.
    async fn waiting(
        &self,
        tenant: &str,
        tenant_limit: Option<u64>,
        total_limit: u64,
    ) -> Result<Waiting, StoreError>;

    /// The tasks waiting for a worker: one row for each tenant of `named` that has any, and one
    /// (`tenant: None`) for all the others together.
    ///
    /// # Errors
    /// Backend errors.
    async fn backlog(&self, named: &[String]) -> Result<Vec<TenantBacklog>, StoreError>;
}
