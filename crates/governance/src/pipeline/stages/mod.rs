//! The named stage functions the pipeline's entry points run, one file per stage, in the
//! order of `docs/architecture.md`. A stage only decides; counting, journaling and auditing
//! its decision is the pipeline's (`super::audit`).

pub mod allowlist;
pub mod authorize;
pub mod contract;
pub mod dlp;
pub mod injection;
pub mod lineage;
pub mod quota;
pub mod safety;
pub mod sandbox;

use amas_types::{Decision, Stage};

pub(crate) fn deny(stage: Stage, code: &'static str, reason: String) -> Decision {
    Decision::deny(stage, code, reason)
}

pub(crate) fn allow(stage: Stage) -> Decision {
    Decision::allow(stage)
}
