//! Hot reload: a [`PolicyEngine`] over a directory whose bundle is swapped atomically when the
//! files change. A bundle that does not compile is rejected and the previous one stays in force.
//!
//! Change detection polls the directory's content hash instead of using inotify (`notify`):
//! a bundle is a handful of small files, hashing them once a second costs microseconds, and
//! polling sees every kind of replacement (editors' rename-over, ConfigMap symlink swaps,
//! network filesystems) where event watchers miss some.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bundle::PolicyBundle;
use crate::decision::{Decision, DecisionPoint};
use crate::engine::{EngineOptions, PolicyEngine, RegoPolicyEngine};
use crate::error::PolicyError;

/// What a reload did, for whoever must record it (the audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    /// A new bundle is in force.
    Applied { from_hash: String, to_hash: String },
    /// A changed bundle was rejected; `in_force` stays.
    Rejected {
        in_force: String,
        /// The rejected bundle's hash, or `<unreadable>`.
        rejected: String,
        code: &'static str,
        error: String,
    },
}

type Observer = Box<dyn Fn(&PolicyChange) + Send + Sync>;

/// A policy engine that follows a directory.
pub struct ReloadingPolicyEngine {
    dir: PathBuf,
    options: EngineOptions,
    current: RwLock<Arc<RegoPolicyEngine>>,
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<(String, String)>>,
    observers: RwLock<Vec<Observer>>,
}

impl std::fmt::Debug for ReloadingPolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingPolicyEngine")
            .field("dir", &self.dir)
            .field("bundle_hash", &self.bundle_hash())
            .field("reloads", &self.reload_count())
            .field("failures", &self.failure_count())
            .finish_non_exhaustive()
    }
}

impl ReloadingPolicyEngine {
    /// Loads `dir`; fails if the initial bundle does not compile (there is nothing to fall back to).
    pub fn new(dir: &Path, options: EngineOptions) -> Result<Self, PolicyError> {
        let engine = RegoPolicyEngine::new(PolicyBundle::from_dir(dir)?, options)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            current: RwLock::new(Arc::new(engine)),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            observers: RwLock::new(Vec::new()),
        })
    }

    /// Calls `observer` after every swap and every rejection (on the thread that reloaded), so
    /// policy changes reach the audit log. It must not block.
    pub fn on_change(&self, observer: impl Fn(&PolicyChange) + Send + Sync + 'static) {
        self.observers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(observer));
    }

    fn notify(&self, change: &PolicyChange) {
        for observer in self
            .observers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            observer(change);
        }
    }

    /// The bundle in force.
    #[must_use]
    pub fn current(&self) -> Arc<RegoPolicyEngine> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    #[must_use]
    pub fn bundle_hash(&self) -> String {
        self.current().bundle_hash().to_owned()
    }

    /// Successful swaps since start.
    #[must_use]
    pub fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Rejected bundles since start.
    #[must_use]
    pub fn failure_count(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The error of the last rejected bundle, cleared by the next successful reload.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.error_slot()
            .as_ref()
            .map(|(_, message)| message.clone())
    }

    fn error_slot(&self) -> std::sync::MutexGuard<'_, Option<(String, String)>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the directory. Returns `Ok(true)` when a new bundle was swapped in, `Ok(false)`
    /// when nothing changed (or the same broken bundle was already rejected), `Err` when the new
    /// bundle was rejected; the old bundle stays in force in both non-swap cases.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let bundle = match PolicyBundle::from_dir(&self.dir) {
            Ok(b) => b,
            Err(e) => return Err(self.reject("<unreadable>", e)),
        };
        if bundle.hash() == self.current().bundle_hash() {
            return Ok(false);
        }
        if self
            .error_slot()
            .as_ref()
            .is_some_and(|(hash, _)| hash == bundle.hash())
        {
            return Ok(false);
        }
        let hash = bundle.hash().to_owned();
        match RegoPolicyEngine::new(bundle, self.options) {
            Ok(engine) => {
                let from_hash = std::mem::replace(
                    &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
                    Arc::new(engine),
                )
                .bundle_hash()
                .to_owned();
                *self.error_slot() = None;
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(policy.bundle = %hash, "Policy bundle reloaded.");
                self.notify(&PolicyChange::Applied {
                    from_hash,
                    to_hash: hash,
                });
                Ok(true)
            }
            Err(e) => Err(self.reject(&hash, e)),
        }
    }

    fn reject(&self, hash: &str, error: PolicyError) -> PolicyError {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            policy.dir = %self.dir.display(),
            error.code = error.code(),
            error = %error,
            "Policy bundle rejected; the previous bundle stays in force."
        );
        let entry = Some((hash.to_owned(), error.to_string()));
        let repeated = *self.error_slot() == entry;
        *self.error_slot() = entry;
        if repeated {
            // An unreadable directory fails every poll the same way: one report is enough.
            return error;
        }
        self.notify(&PolicyChange::Rejected {
            in_force: self.bundle_hash(),
            rejected: hash.to_owned(),
            code: error.code(),
            error: error.to_string(),
        });
        error
    }

    /// Polls the directory every `interval` on a background thread until the handle is dropped
    /// or the engine is gone.
    #[must_use]
    pub fn watch(self: &Arc<Self>, interval: Duration) -> WatchHandle {
        let weak: Weak<Self> = Arc::downgrade(self);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("amas-policy-watch".to_owned())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                    let Some(engine) = weak.upgrade() else { break };
                    // Errors are logged and recorded by reload itself.
                    let _ = engine.reload();
                }
            });
        match thread {
            Ok(handle) => WatchHandle {
                stop,
                thread: Some(handle),
            },
            Err(e) => {
                tracing::error!(error = %e, "Cannot start the policy watcher; hot reload is off.");
                WatchHandle { stop, thread: None }
            }
        }
    }
}

impl PolicyEngine for ReloadingPolicyEngine {
    fn decide(&self, point: DecisionPoint, input: &serde_json::Value) -> Decision {
        self.current().decide(point, input)
    }
}

/// Stops the watcher thread when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
