//! The SQLite engine's own guard for `sql_query`: an authorizer (`sqlite3_set_authorizer`)
//! that allows only reads of permitted tables and an allowlist of functions, per-connection
//! limits (`sqlite3_limit`), and a progress handler that stops the statement when its time or
//! heap budget runs out, or when the caller goes away. The workspace's only `unsafe` code, all
//! of it in `ffi.rs`.

mod ffi;
mod policy;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use libsqlite3_sys as sys;
use sqlx::SqliteConnection;

pub use policy::{Denial, FUNCTIONS, ReadPolicy, Rules, TABLE_FUNCTIONS};

/// The largest string or blob a statement may make or read (`SQLITE_LIMIT_LENGTH`): a
/// `replace`, `group_concat`, `zeroblob` or `||` past it fails with `SQLITE_TOOBIG`, and a
/// `printf`/`format` past it yields NULL, each before the memory is allocated.
pub const MAX_VALUE_BYTES: c_int = 4 << 20;

/// Per-connection limits, each far below SQLite's default and above what a hand-written
/// analysis query needs.
pub const LIMITS: &[(c_int, c_int)] = &[
    (sys::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES),
    (sys::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (sys::SQLITE_LIMIT_COLUMN, 500),
    (sys::SQLITE_LIMIT_EXPR_DEPTH, 250),
    (sys::SQLITE_LIMIT_COMPOUND_SELECT, 50),
    (sys::SQLITE_LIMIT_VDBE_OP, 100_000),
    (sys::SQLITE_LIMIT_FUNCTION_ARG, 64),
    (sys::SQLITE_LIMIT_ATTACHED, 0),
    (sys::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1_000),
    (sys::SQLITE_LIMIT_VARIABLE_NUMBER, 0),
    (sys::SQLITE_LIMIT_TRIGGER_DEPTH, 1),
    (sys::SQLITE_LIMIT_WORKER_THREADS, 0),
];

/// Run before the authorizer (which refuses every PRAGMA): no writes even through a writable
/// handle; temporary tables, indexes and sorts in memory, where the heap budget sees them,
/// instead of in temporary files, where nothing bounds them but the time; and functions and
/// virtual tables in the file's schema (views, triggers) limited to those SQLite marks
/// innocuous.
const PRAGMAS: &[&str] = &[
    "PRAGMA query_only = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA trusted_schema = OFF",
];

/// How many virtual-machine instructions run between two budget checks: frequent enough that
/// the statement stops within a fraction of a millisecond of its deadline, rare enough to cost
/// a few percent.
const PROGRESS_OPS: i32 = 250;

/// What one statement may spend.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Wall-clock time from [`install`] (the tool's `statement_timeout`).
    pub time: Duration,
    /// Growth of SQLite's heap in this process while the statement runs. SQLite has no
    /// per-connection heap limit and its hard heap limit is process-wide (it would fail the
    /// store's own allocations under a hostile query), so the progress handler watches the
    /// process counter instead; other connections' growth counts too, which can only stop a
    /// statement early, never let one run longer.
    pub heap_bytes: u64,
}

/// Why the progress handler stopped a statement (SQLite then reports `SQLITE_INTERRUPT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The time budget ran out.
    Time,
    /// The heap budget ran out.
    Heap,
    /// The [`Sandbox`] was dropped (the tool call timed out or was cancelled) while the
    /// statement still ran on sqlx's worker thread.
    Cancelled,
}

struct Meter {
    deadline: Instant,
    heap_base: i64,
    heap_budget: i64,
    cancelled: AtomicBool,
    stop: OnceLock<Stop>,
}

impl Meter {
    /// The progress handler: `false` interrupts the statement.
    fn keep_going(&self) -> bool {
        let stop = if self.cancelled.load(Ordering::Relaxed) {
            Stop::Cancelled
        } else if Instant::now() >= self.deadline {
            Stop::Time
        } else if ffi::heap_used().saturating_sub(self.heap_base) > self.heap_budget {
            Stop::Heap
        } else {
            return true;
        };
        let _ = self.stop.set(stop);
        false
    }
}

/// The guard on one connection. Keep it until the statement's result is read; dropping it
/// interrupts a statement still running and retires the authorizer (a later callback denies).
pub struct Sandbox {
    id: usize,
    auth: Arc<ffi::Authorizer>,
    meter: Arc<Meter>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// The first action the authorizer refused, if any (a statement failing with
    /// `SQLITE_AUTH` was refused for this).
    #[must_use]
    pub fn denial(&self) -> Option<Denial> {
        self.auth
            .first_denial
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the progress handler interrupted the statement, if it did.
    #[must_use]
    pub fn stop(&self) -> Option<Stop> {
        self.meter.stop.get().copied()
    }

    /// What the sandbox had to do with `e`, an error from the statement run on its connection:
    /// `None` for an ordinary failure (a syntax error, an unknown column). Any denial recorded
    /// is the cause: a denied action always fails the statement, though SQLite reports a
    /// denied function as a plain `SQLITE_ERROR` ("not authorized to use function").
    #[must_use]
    pub fn explain(&self, e: &sqlx::Error) -> Option<Verdict> {
        let sqlx::Error::Database(d) = e else {
            return None;
        };
        if let Some(denial) = self.denial() {
            return Some(Verdict::Denied(denial));
        }
        let code = d.code()?.parse::<c_int>().ok()?;
        match code & 0xff {
            sys::SQLITE_AUTH => Some(Verdict::Denied(Denial::Unknown)),
            sys::SQLITE_INTERRUPT => Some(Verdict::Stopped(self.stop().unwrap_or(Stop::Cancelled))),
            sys::SQLITE_TOOBIG => Some(Verdict::TooBig),
            sys::SQLITE_NOMEM => Some(Verdict::OutOfMemory),
            _ => None,
        }
    }
}

/// Why a statement failed, when the sandbox is the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The authorizer refused it (`SQLITE_AUTH`) for this.
    Denied(Denial),
    /// The progress handler interrupted it (`SQLITE_INTERRUPT`) for this.
    Stopped(Stop),
    /// A value passed [`MAX_VALUE_BYTES`] (`SQLITE_TOOBIG`).
    TooBig,
    /// An allocation failed (`SQLITE_NOMEM`).
    OutOfMemory,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.meter.cancelled.store(true, Ordering::Relaxed);
        ffi::unregister(self.id);
    }
}

/// Failure to put the sandbox on a connection; the connection must not be used.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("preparing the connection: {0}")]
    Schema(#[source] sqlx::Error),
    #[error("locking the connection: {0}")]
    Lock(#[source] sqlx::Error),
    #[error("sqlite3_set_authorizer failed with code {0}")]
    Authorizer(c_int),
    #[error("sqlite3_limit did not take: limit {0} is {1}")]
    Limit(c_int, c_int),
}

/// Puts the sandbox on `conn`, a freshly opened connection: sets the `PRAGMAS` and reads the
/// table and view names (the last statements run without the authorizer), then sets
/// [`LIMITS`], the authorizer for `rules` and the progress handler for `budget`, whose clock
/// starts now.
///
/// # Errors
/// [`InstallError`]; the connection must then be closed unused.
pub async fn install(
    conn: &mut SqliteConnection,
    rules: &Rules,
    budget: Budget,
) -> Result<Sandbox, InstallError> {
    for &pragma in PRAGMAS {
        sqlx::query(pragma)
            .execute(&mut *conn)
            .await
            .map_err(InstallError::Schema)?;
    }
    let objects: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")
            .fetch_all(&mut *conn)
            .await
            .map_err(InstallError::Schema)?;
    let auth = Arc::new(ffi::Authorizer {
        policy: ReadPolicy::new(rules, &objects),
        first_denial: Mutex::new(None),
    });
    let meter = Arc::new(Meter {
        deadline: Instant::now() + budget.time,
        heap_base: ffi::heap_used(),
        heap_budget: i64::try_from(budget.heap_bytes).unwrap_or(i64::MAX),
        cancelled: AtomicBool::new(false),
        stop: OnceLock::new(),
    });
    let mut handle = conn.lock_handle().await.map_err(InstallError::Lock)?;
    let sandbox = Sandbox {
        id: ffi::register(Arc::clone(&auth)),
        auth,
        meter: Arc::clone(&meter),
    };
    let db = handle.as_raw_handle();
    ffi::set_limits(db, LIMITS);
    for &(id, want) in LIMITS {
        let got = ffi::limit(db, id);
        if got > want {
            return Err(InstallError::Limit(id, got));
        }
    }
    let rc = ffi::set_authorizer(db, sandbox.id);
    if rc != sys::SQLITE_OK {
        return Err(InstallError::Authorizer(rc));
    }
    handle.set_progress_handler(PROGRESS_OPS, move || meter.keep_going());
    Ok(sandbox)
}

#[cfg(test)]
mod tests;
