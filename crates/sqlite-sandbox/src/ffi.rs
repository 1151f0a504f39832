//! The FFI: the authorizer callback and its registry, `sqlite3_limit`, and the heap counter.
//! Every call here is on a handle sqlx has lent us (`LockedSqliteHandle`: its worker thread is
//! parked, so no other call is made on the handle meanwhile) or takes no handle at all.
#![expect(
    unsafe_code,
    reason = "SQLite's authorizer, limits and heap counter have no safe API in sqlx 0.9"
)]

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use libsqlite3_sys as sys;

use crate::policy::{Denial, ReadPolicy};

/// One connection's authorizer: its policy and the first thing it refused.
#[derive(Debug)]
pub(crate) struct Authorizer {
    pub(crate) policy: ReadPolicy,
    pub(crate) first_denial: Mutex<Option<Denial>>,
}

impl Authorizer {
    fn deny(&self, denial: Denial) -> c_int {
        let mut first = self
            .first_denial
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(denial);
        sys::SQLITE_DENY
    }
}

/// Live authorizers by id. The callback's user data is the id (an integer in a pointer's
/// clothing, never dereferenced), so a callback that outlives its `Sandbox` (a statement
/// re-prepared by a worker thread after the tool call was dropped) finds no entry and denies,
/// instead of reading freed memory.
static LIVE: Mutex<Option<HashMap<usize, Arc<Authorizer>>>> = Mutex::new(None);
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) fn register(auth: Arc<Authorizer>) -> usize {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(id, auth);
    id
}

pub(crate) fn unregister(id: usize) {
    if let Some(map) = LIVE.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        map.remove(&id);
    }
}

fn lookup(id: usize) -> Option<Arc<Authorizer>> {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&id).cloned())
}

/// `Ok(None)` for a null pointer, `Err` for a name that is not UTF-8.
///
/// # Safety
/// `p` is null or a NUL-terminated string valid for `'a` (SQLite's authorizer arguments are,
/// for the duration of the callback).
unsafe fn text<'a>(p: *const c_char) -> Result<Option<&'a str>, ()> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and NUL-terminated for the callback's duration, per the contract above.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map(Some).map_err(|_| ())
}

/// The `xAuth` callback. Never unwinds into C: a panic, a missing entry or an unreadable
/// argument all deny.
unsafe extern "C" fn authorize(
    user: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    db: *const c_char,
    _inner: *const c_char,
) -> c_int {
    let id = user.addr();
    let verdict = std::panic::catch_unwind(|| {
        let Some(auth) = lookup(id) else {
            return sys::SQLITE_DENY;
        };
        // SAFETY: SQLite passes NULL or NUL-terminated strings that live for this call.
        let args = unsafe { (text(arg1), text(arg2), text(db)) };
        let (Ok(a1), Ok(a2), Ok(db)) = args else {
            return auth.deny(Denial::Unknown);
        };
        match auth.policy.decide(action, a1, a2, db) {
            Ok(()) => sys::SQLITE_OK,
            Err(denial) => auth.deny(denial),
        }
    });
    verdict.unwrap_or(sys::SQLITE_DENY)
}

/// Installs the authorizer registered as `id` on `db`.
pub(crate) fn set_authorizer(db: NonNull<sys::sqlite3>, id: usize) -> c_int {
    let user = std::ptr::without_provenance_mut::<c_void>(id);
    // SAFETY: `db` is a live handle lent by sqlx with its worker parked; `authorize` matches
    // `xAuth` and never dereferences `user`.
    unsafe { sys::sqlite3_set_authorizer(db.as_ptr(), Some(authorize), user) }
}

/// Sets each `(limit id, value)` on `db` (`sqlite3_limit` only lowers below the compile-time
/// maximum, and cannot fail).
pub(crate) fn set_limits(db: NonNull<sys::sqlite3>, limits: &[(c_int, c_int)]) {
    for &(id, value) in limits {
        // SAFETY: a live handle lent by sqlx with its worker parked; `id` is a limit category.
        unsafe { sys::sqlite3_limit(db.as_ptr(), id, value) };
    }
}

/// Reads limit `id` of `db` without changing it.
pub(crate) fn limit(db: NonNull<sys::sqlite3>, id: c_int) -> c_int {
    // SAFETY: as in `set_limits`; a negative value only reads.
    unsafe { sys::sqlite3_limit(db.as_ptr(), id, -1) }
}

/// Bytes SQLite has allocated in this process, across every connection.
pub(crate) fn heap_used() -> i64 {
    // SAFETY: no arguments; reads a counter under SQLite's own mutex; callable from any thread.
    unsafe { sys::sqlite3_memory_used() }
}
