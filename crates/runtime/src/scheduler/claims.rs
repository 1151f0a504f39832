//! Claims: on PostgreSQL a worker process takes its tasks from the database, not from a queue
//! of its own. It claims runnable tasks as slots free up (`FOR UPDATE SKIP LOCKED`: workers
//! never get the same task), renews the leases of the tasks it runs every third of their
//! lifetime, and releases them when a run ends or the process stops. Every append of a run
//! carries its lease's fencing epoch, so a run whose lease was lost (the process was paused
//! past it, cut off, or its renewals failed) is stopped and can write nothing more; the worker
//! that claims the task next resumes it from its journal, the way a restart does. Claims are
//! fair across tenants (weights and caps from `scheduling`, applied in the claim itself:
//! `amas_store::Fairness`), and their latency and the leases lost are metrics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{debug, info, warn};

use amas_config::LeaseConfig;
use amas_store::{Fairness, Lease, TaskLeases};
use amas_types::{TaskId, codes};

use super::{Mode, Scheduler};
use crate::executor::RunEnd;

/// How this worker holds its tasks.
pub struct LeaseSettings {
    /// A lease lasts this long without a renewal.
    pub ttl: Duration,
    /// An idle worker looks for runnable tasks this often.
    pub claim_interval: Duration,
}

impl From<&LeaseConfig> for LeaseSettings {
    fn from(config: &LeaseConfig) -> Self {
        Self {
            ttl: config.ttl,
            claim_interval: config.claim_interval,
        }
    }
}

pub(super) struct Claims {
    leases: Arc<dyn TaskLeases>,
    /// This process among the workers (in `task_leases.worker`): host, pid and a random part,
    /// so a restarted process never passes for its predecessor.
    worker: String,
    settings: LeaseSettings,
    fairness: Fairness,
}

impl Claims {
    async fn release(&self, leases: &[Lease]) {
        if let Err(e) = self.leases.release(&self.worker, leases).await {
            // Not fatal: the leases expire on their own.
            warn!(error.code = e.code(), error.message = %e, leases = leases.len(), "Releasing task leases failed; they expire instead.");
        }
    }

    /// Releases `lease` of a task parked until `until` (`parking.rs`).
    async fn park(&self, lease: &Lease, until: chrono::DateTime<chrono::Utc>) {
        if let Err(e) = self
            .leases
            .park(&self.worker, lease, super::parking::parked_until(until))
            .await
        {
            // Not fatal: the lease expires, and the next claim parks the task again.
            warn!(task.id = %lease.task, error.code = e.code(), error.message = %e, "Parking the task's lease failed; it expires instead.");
        }
    }
}

/// This process's name among the workers.
pub(super) fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "amas".to_owned());
    // A v7 id ends in random bits.
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}/{}/{}",
        std::process::id(),
        nonce.get(nonce.len().saturating_sub(8)..).unwrap_or(&nonce)
    )
}

impl Scheduler {
    /// Runs tasks claimed from the database under leases from `leases` (PostgreSQL, any
    /// number of worker processes). Call before [`Scheduler::start`]; a mode already chosen
    /// stays. Returns this worker's name.
    pub fn claim_from(&self, leases: Arc<dyn TaskLeases>, settings: LeaseSettings) -> String {
        let worker = worker_name();
        let _ = self.mode.set(Mode::Claims(Arc::new(Claims {
            leases,
            worker: worker.clone(),
            settings,
            fairness: Fairness::from(&self.scheduling),
        })));
        worker
    }

    /// Starts the claimer and the renewer in place of the local dispatcher; `nudges` carries
    /// this process's admissions (look now, not at the next poll).
    pub(super) fn start_claiming(
        self: &Arc<Self>,
        claims: Arc<Claims>,
        nudges: mpsc::UnboundedReceiver<TaskId>,
    ) {
        info!(worker = %claims.worker, lease.ttl_ms = u64::try_from(claims.settings.ttl.as_millis()).unwrap_or(u64::MAX), "Claiming tasks from the database.");
        let scheduler = Arc::clone(self);
        let claimer = Arc::clone(&claims);
        amas_telemetry::tasks::spawn("runtime.claimer", async move {
            scheduler.claim_loop(claimer, nudges).await;
        });
        let scheduler = Arc::clone(self);
        amas_telemetry::tasks::spawn("runtime.lease_renewer", async move {
            scheduler.renew_loop(claims).await;
        });
    }

    async fn claim_loop(
        self: Arc<Self>,
        claims: Arc<Claims>,
        mut nudges: mpsc::UnboundedReceiver<TaskId>,
    ) {
        let mut stopping = amas_telemetry::tasks::global().stopping();
        while self.admitting() {
            self.claim_free_slots(&claims).await;
            tokio::select! {
                nudge = nudges.recv() => {
                    if nudge.is_none() {
                        break;
                    }
                    while nudges.try_recv().is_ok() {}
                }
                () = self.freed.notified() => {}
                () = tokio::time::sleep(claims.settings.claim_interval) => {}
                () = stopping.wait() => break,
            }
        }
    }

    /// Claims as many tasks as there are free slots and starts each.
    async fn claim_free_slots(self: &Arc<Self>, claims: &Arc<Claims>) {
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        // Stopping: a lease claimed now would only be released again (its epoch spent).
        if free == 0 || !self.admitting() {
            return;
        }
        // Before asking: the lease surely lasts `ttl` from here (the database starts it later).
        let asked = Instant::now();
        let claimed = claims
            .leases
            .claim_fair(&claims.worker, free, claims.settings.ttl, &claims.fairness)
            .await;
        self.metrics
            .queue
            .claim_duration
            .observe(asked.elapsed().as_secs_f64());
        let leases = match claimed {
            Ok(leases) => leases,
            Err(e) => {
                warn!(error.code = e.code(), error.message = %e, "Claiming tasks failed; retrying at the next poll.");
                return;
            }
        };
        for lease in leases {
            // Only this loop takes slots, so one is free for every lease claimed.
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                claims.release(&[lease]).await;
                continue;
            };
            debug!(task.id = %lease.task, lease.epoch = lease.epoch, "Task claimed.");
            let scheduler = Arc::clone(self);
            let claims = Arc::clone(claims);
            let until = asked + claims.settings.ttl;
            amas_telemetry::tasks::spawn("runtime.task", async move {
                scheduler.run_claimed(&claims, lease, until, permit).await;
            });
        }
    }

    /// One claimed task's run; its lease is released when the run ends, whichever way.
    async fn run_claimed(
        &self,
        claims: &Claims,
        lease: Lease,
        until: Instant,
        permit: OwnedSemaphorePermit,
    ) {
        let end = self.run_one(lease.task, Some((lease, until))).await;
        match end {
            RunEnd::Parked { until, .. } => claims.park(&lease, until).await,
            RunEnd::Ended | RunEnd::Stopped => claims.release(&[lease]).await,
        }
        drop(permit);
        self.freed.notify_one();
    }

    /// Renews the leases of the running tasks every third of their lifetime; a run whose
    /// lease could not be renewed is told to stop (its appends are refused anyway).
    async fn renew_loop(self: Arc<Self>, claims: Arc<Claims>) {
        let every = claims.settings.ttl / 3;
        let mut stopping = amas_telemetry::tasks::global().stopping();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stopping.wait() => break,
            }
            let held: Vec<Lease> = self
                .running
                .lock()
                .await
                .values()
                .filter_map(|r| r.lease)
                .collect();
            if held.is_empty() {
                continue;
            }
            let asked = Instant::now();
            let kept = match claims
                .leases
                .renew(&claims.worker, &held, claims.settings.ttl)
                .await
            {
                Ok(kept) => kept,
                Err(e) => {
                    warn!(error.code = e.code(), error.message = %e, leases = held.len(), "Renewing task leases failed; retrying.");
                    continue;
                }
            };
            let kept: HashSet<(TaskId, u64)> = kept.iter().map(|l| (l.task, l.epoch)).collect();
            let running = self.running.lock().await;
            for run in running.values() {
                if run.lease.is_some_and(|l| kept.contains(&(l.task, l.epoch))) {
                    run.writer.extend_lease(asked + claims.settings.ttl);
                }
            }
            for lease in held.iter().filter(|l| !kept.contains(&(l.task, l.epoch))) {
                warn!(task.id = %lease.task, lease.epoch = lease.epoch, error.code = codes::STORE_LEASE_LOST, "Task lease lost; stopping the task here.");
                self.metrics.queue.lease_lost("renewal");
                if let Some(run) = running.get(&lease.task) {
                    let _ = run.cancel.send(true);
                }
            }
        }
    }

    /// Releases the leases of every task still running (shutdown, after the drain's patience).
    pub(super) async fn release_running(&self) {
        let Mode::Claims(claims) = self.mode() else {
            return;
        };
        let held: Vec<Lease> = self
            .running
            .lock()
            .await
            .values()
            .filter_map(|r| r.lease)
            .collect();
        claims.release(&held).await;
    }
}
