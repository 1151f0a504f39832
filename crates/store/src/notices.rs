//! Commit notices: how a process hears, as they commit, the journal appends that other
//! processes sharing the store make (PostgreSQL: `LISTEN`/`NOTIFY`, `postgres/notify.rs`).
//! A notice names a task and the last seq committed for it, never the records: the listener
//! reads them from the journal, so a notice is small and a lost one costs only a read.
//!
//! SQLite has none: one process writes and reads its store, and publishes its own commits.

use async_trait::async_trait;

use amas_types::TaskId;

/// What a [`CommitListener`] hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitNotice {
    /// A transaction committed appends of `task`, the last of them at `last_seq`.
    Appended { task: TaskId, last_seq: u64 },
    /// Notices may have been lost: the listener has just connected or reconnected (what
    /// committed while it was not listening was not noticed), or heard one it could not read.
    /// What committed before this notice must be read from the journal; anything committed
    /// after it is noticed.
    Resync,
}

/// The commits of every process sharing the store, as they happen.
#[async_trait]
pub trait CommitListener: Send {
    /// The next notice, in the order the commits were made. The first is always
    /// [`CommitNotice::Resync`] (once listening). A lost connection is reconnected here, with
    /// a growing pause between failed attempts (each logged), and announced by another
    /// [`CommitNotice::Resync`]; so this waits until there is something to say, and never
    /// fails.
    ///
    /// Not cancel-safe in the middle of a read: drop the listener rather than abandon a call
    /// and call again.
    async fn next(&mut self) -> CommitNotice;
}
