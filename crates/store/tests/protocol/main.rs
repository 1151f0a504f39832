//! The lease, fencing, approval and cancel protocol of issue 14 (ADR 12), model-checked with
//! `stateright` (`model.rs`, checked in `check.rs`) and tied to the real PostgreSQL store by
//! replaying the model's traces against it (`conformance.rs`).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod check;
mod conformance;
mod model;
