//! The orchestrator, as services with one job each, assembled once by the composition root
//! ([`compose`]) and shared through a thin handle ([`Runtime`]):
//!
//! - [`Admission`] decides whether a task may enter (validation, the submission's governance,
//!   its first journal append) and queues it;
//! - [`Scheduler`] owns the queue and the slots: start, recovery, cancel, drain;
//! - step execution (`executor.rs`, `step.rs`, `tools.rs`) runs a task's steps, every governed
//!   action through the pipeline;
//! - [`Approvals`] lists, reads and decides approval requests and hands votes to waiting steps;
//! - [`Reader`] answers principals: views released for the reader, the release audited;
//! - [`Access`] authorizes API operations, audits security events and releases payloads;
//! - [`Retention`] purges expired payloads.
//!
//! They share the journal (`journal.rs`: group-committed appends, the live streams and the read
//! model; `writer.rs`: one writer per running task) and the governance `Pipeline`.

mod access;
mod admission;
mod approvals;
mod clearance;
pub mod compose;
mod error;
mod executor;
mod inputs;
mod journal;
mod lineage;
mod reader;
mod replay;
mod retention;
mod safety;
mod scheduler;
mod step;
mod tools;
mod usage;
mod writer;

pub use access::{Access, ApiResource};
pub use admission::Admission;
pub use approvals::Approvals;
pub use clearance::{Outbound, Released, WITHHELD, lineage_level};
pub use compose::RuntimeParts;
pub use error::{RuntimeError, codes};
pub use lineage::{
    FloorError, GraphEdge, GraphNode, LineageGraph, Why, declared_floor, graph as lineage_graph,
};
pub use reader::{LiveEvent, LiveEvents, Reader, ReleasedEvents, ReleasedTask, release_record};
pub use replay::{DecisionDiff, ReplayReport, Replayer, Ruling};
pub use retention::{PurgeReport, PurgedPayload, Retention, RetentionRun};
pub use scheduler::{LeaseSettings, Scheduler};

use std::sync::Arc;

use amas_config::AmasConfig;
use amas_store::TaskJournal;

/// The runtime: a handle on its services. Cheap to clone. Built by [`compose::compose`].
#[derive(Clone)]
pub struct Runtime {
    services: Arc<Services>,
}

/// The services of one runtime, each built once.
struct Services {
    config: Arc<AmasConfig>,
    store: Arc<dyn TaskJournal>,
    admission: Admission,
    scheduler: Arc<Scheduler>,
    approvals: Arc<Approvals>,
    reader: Reader,
    access: Arc<Access>,
    retention: Arc<Retention>,
}

impl Runtime {
    /// Task submission.
    #[must_use]
    pub fn admission(&self) -> &Admission {
        &self.services.admission
    }

    /// The queue and the running tasks: start, recover, cancel, drain.
    #[must_use]
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.services.scheduler
    }

    /// Approval requests and votes.
    #[must_use]
    pub fn approvals(&self) -> &Approvals {
        &self.services.approvals
    }

    /// Tasks, journals and approvals as principals may see them, and the read model.
    #[must_use]
    pub fn reader(&self) -> &Reader {
        &self.services.reader
    }

    /// API authorization, security events, release to readers and the audit trail.
    #[must_use]
    pub fn access(&self) -> &Access {
        &self.services.access
    }

    /// The retention purge.
    #[must_use]
    pub fn retention(&self) -> &Arc<Retention> {
        &self.services.retention
    }

    /// The configuration the runtime was built with.
    #[must_use]
    pub fn config(&self) -> &Arc<AmasConfig> {
        &self.services.config
    }

    /// Feeds the journal commits of every process sharing the store, as `listener` announces
    /// them, into this process's live streams: a process whose tasks may run elsewhere (an API
    /// process, or any process on PostgreSQL) streams them as they happen. Call once, inside
    /// the Tokio runtime; later calls do nothing.
    pub fn follow_commits(&self, listener: Box<dyn amas_store::CommitListener>) {
        self.services.reader.journal.follow(listener);
    }

    /// The journal store itself (readiness probes, tests).
    #[must_use]
    pub fn journal(&self) -> &Arc<dyn TaskJournal> {
        &self.services.store
    }
}
