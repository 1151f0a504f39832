//! The conformance suite every [`TaskJournal`] backend passes. Each check is a `pub async fn`
//! that takes a fresh, empty store and returns a [`CheckFailure`] naming what broke; none of
//! them panics, so a fixture's teardown always runs.
//!
//! A backend's integration test runs the whole suite, one `#[tokio::test]` per check, with
//! [`journal_conformance_tests!`](crate::journal_conformance_tests):
//!
//! ```text
//! amas_store::journal_conformance_tests!(
//!     || async { std::sync::Arc::new(amas_store::SqliteStore::in_memory().await.unwrap()) },
//!     |_store| async {}
//! );
//! ```
//!
//! The first closure makes a fresh store (an `Arc<S>` for any `S: TaskJournal`); the optional
//! second one receives it after the check, to drop a schema or delete a directory.

mod approvals;
mod checks;
pub(crate) mod fixtures;
mod group;
mod purge;

use std::fmt;

pub use approvals::approvals_project_from_the_journal;
pub use checks::{
    an_ended_task_refuses_appends, append_then_read_roundtrips, concurrent_appends_have_one_winner,
    events_roundtrip_exactly, first_event_must_be_a_submission,
    list_filters_by_status_type_and_tenant, pagination_returns_every_task_once,
    stale_expected_seq_is_rejected, status_projection_follows_events,
    unfinished_lists_open_tasks_oldest_first, unknown_task_reads_empty,
};
pub use group::{
    a_group_commit_refuses_appends_after_the_end, a_refused_append_refuses_only_itself,
    group_commit_writes_every_task_and_the_audit_chain, one_task_twice_in_a_batch_applies_in_order,
    the_writer_commits_concurrent_appends,
};
pub use purge::purge_leaves_tombstones;

use crate::StoreError;

/// A check found the store misbehaving (or the store failed where it must not).
#[derive(Debug)]
pub struct CheckFailure(pub String);

impl fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailure {}

impl From<StoreError> for CheckFailure {
    fn from(e: StoreError) -> Self {
        Self(format!("unexpected store error {}: {e}", e.code()))
    }
}

impl From<tokio::task::JoinError> for CheckFailure {
    fn from(e: tokio::task::JoinError) -> Self {
        Self(format!("a spawned append did not finish: {e}"))
    }
}

/// What every check returns.
pub type CheckResult = Result<(), CheckFailure>;

/// Fails the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::conformance::CheckFailure(format!($($msg)+)));
        }
    };
}

/// Fails the check unless both sides are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err($crate::conformance::CheckFailure(format!(
                "{}\n  left: {:?}\n right: {:?}",
                format_args!($($msg)+),
                left,
                right
            )));
        }
    }};
}

pub(crate) use {ensure, ensure_eq};

/// One `#[tokio::test]` per conformance check, for the store made by `$make`; see
/// [`conformance`](crate::conformance).
#[macro_export]
macro_rules! journal_conformance_tests {
    ($make:expr) => {
        $crate::journal_conformance_tests!($make, |_store| async {});
    };
    ($make:expr, $teardown:expr) => {
        $crate::__journal_conformance_case!($make, $teardown, append_then_read_roundtrips);
        $crate::__journal_conformance_case!($make, $teardown, stale_expected_seq_is_rejected);
        $crate::__journal_conformance_case!($make, $teardown, concurrent_appends_have_one_winner);
        $crate::__journal_conformance_case!($make, $teardown, first_event_must_be_a_submission);
        $crate::__journal_conformance_case!($make, $teardown, status_projection_follows_events);
        $crate::__journal_conformance_case!($make, $teardown, an_ended_task_refuses_appends);
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            list_filters_by_status_type_and_tenant
        );
        $crate::__journal_conformance_case!($make, $teardown, pagination_returns_every_task_once);
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            unfinished_lists_open_tasks_oldest_first
        );
        $crate::__journal_conformance_case!($make, $teardown, unknown_task_reads_empty);
        $crate::__journal_conformance_case!($make, $teardown, events_roundtrip_exactly);
        $crate::__journal_conformance_case!($make, $teardown, approvals_project_from_the_journal);
        $crate::__journal_conformance_case!($make, $teardown, purge_leaves_tombstones);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __journal_conformance_case {
    ($make:expr, $teardown:expr, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let store = ($make)().await;
            let result = $crate::conformance::$check(store.clone()).await;
            ($teardown)(store).await;
            if let Err(failure) = result {
                panic!("{}: {failure}", stringify!($check));
            }
        }
    };
}

/// One `#[tokio::test]` per group-commit check, for the store made by `$make` (an `Arc<S>` for
/// any `S: GroupCommit`), with the same teardown as the journal suite.
#[macro_export]
macro_rules! group_commit_conformance_tests {
    ($make:expr, $teardown:expr) => {
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            group_commit_writes_every_task_and_the_audit_chain
        );
        $crate::__journal_conformance_case!($make, $teardown, a_refused_append_refuses_only_itself);
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            a_group_commit_refuses_appends_after_the_end
        );
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            one_task_twice_in_a_batch_applies_in_order
        );
        $crate::__journal_conformance_case!(
            $make,
            $teardown,
            the_writer_commits_concurrent_appends
        );
    };
}
