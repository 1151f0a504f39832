//! Decision memoization: a bundle's decision depends only on the input's values at the paths
//! the bundle reads ([`crate::reads`]), so decisions are kept under a key made of exactly those
//! values and reused for the next input that agrees on all of them.
//!
//! Agents repeat themselves: the same principal, agent and tool meet the same rules many times
//! in a task, while the parts of the input that change on every call (the task id, the
//! arguments, the usage counters) are not read by the default bundle at all. A repeat costs a
//! lookup of a few hundred bytes instead of a Rego evaluation.
//!
//! Soundness rests on three things: the key holds every value the bundle can read (the analysis
//! over-approximates, and equal keys mean equal values at every path); a bundle that calls a
//! builtin whose answer depends on more than its arguments (the clock, randomness, the network)
//! is never memoized; and only clean decisions are kept (a policy error, such as a timeout,
//! is evaluated again next time). The memo belongs to one compiled bundle, so a reload starts
//! empty. Memory is bounded: at most `capacity` entries, keys of at most [`MAX_KEY_BYTES`],
//! oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::decision::{DecisionDoc, DecisionPoint};
use crate::reads::InputPath;

/// Inputs whose read values take more than this are evaluated every time: a policy that reads
/// large parts of the input (the arguments, say) gains little from a memo and would fill it.
pub(crate) const MAX_KEY_BYTES: usize = 2048;

/// Separates the values in a key; never part of JSON text (which is UTF-8).
const SEPARATOR: u8 = 0xFF;

/// Hits and misses since the bundle was compiled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub hits: u64,
    pub misses: u64,
    /// Decisions that could not be memoized (key too large, or not cacheable).
    pub uncacheable: u64,
}

pub(crate) struct DecisionMemo {
    paths: Vec<InputPath>,
    capacity: usize,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    uncacheable: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Arc<[u8]>, Arc<DecisionDoc>>,
    /// Insertion order, for eviction.
    order: VecDeque<Arc<[u8]>>,
}

impl DecisionMemo {
    pub(crate) fn new(paths: Vec<InputPath>, capacity: usize) -> Self {
        Self {
            paths,
            capacity,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            uncacheable: AtomicU64::new(0),
        }
    }

    /// The key of `input` at `point`: the point, then for each read path its JSON value or
    /// "absent". `None` when the values are too large to keep.
    pub(crate) fn key(&self, point: DecisionPoint, input: &serde_json::Value) -> Option<Vec<u8>> {
        let mut key = Vec::with_capacity(256);
        key.push(point as u8);
        for path in &self.paths {
            key.push(SEPARATOR);
            match lookup(input, path) {
                None => key.push(b'0'),
                Some(value) => {
                    key.push(b'1');
                    // Writing a JSON value to a Vec does not fail; if it ever did, no memo.
                    if serde_json::to_writer(&mut key, value).is_err() {
                        return self.too_large();
                    }
                }
            }
            if key.len() > MAX_KEY_BYTES {
                return self.too_large();
            }
        }
        Some(key)
    }

    fn too_large(&self) -> Option<Vec<u8>> {
        self.uncacheable.fetch_add(1, Ordering::Relaxed);
        None
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<DecisionDoc>> {
        let found = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(key)
            .cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, key: Vec<u8>, doc: Arc<DecisionDoc>) {
        let key: Arc<[u8]> = key.into();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.map.contains_key(&key) {
            return;
        }
        while entries.map.len() >= self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.map.remove(&oldest);
        }
        entries.order.push_back(Arc::clone(&key));
        entries.map.insert(key, doc);
    }

    pub(crate) fn stats(&self) -> MemoStats {
        MemoStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            uncacheable: self.uncacheable.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn paths(&self) -> &[InputPath] {
        &self.paths
    }
}

/// The value at `path`, following object fields only (as Rego's `input.a.b` does: a field of
/// anything but an object is undefined).
fn lookup<'a>(input: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    path.iter()
        .try_fold(input, |value, field| value.as_object()?.get(field.as_str()))
}
