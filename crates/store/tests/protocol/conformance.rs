//! The link between the model and the code: random walks through the model, each replayed
//! step by step against the real [`PostgresStore`] (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`, in a schema of its own). Every database operation
//! a model step makes (claim, renew, release, fenced append) is made on the store, and its
//! answer must be the model's; after every step the store's observable state (the journal, the
//! lease row's epoch, holder and liveness, the task's status, the approval's status and votes,
//! whether anything is claimable) must equal the model's. The clock is the only thing the test
//! moves by hand: a lease's expiry is its `expires_at` set into the past.
//!
//! Votes and cancels reach the holder as commands in the model; the store has no command table
//! yet, so they are kept in the model's state here, and what the holder (or the API process,
//! under its own claim) then journals is replayed as the fenced append it is.

use std::time::Duration;

use chrono::Utc;
use stateright::Model;

use amas_store::{Fence, Lease, PostgresStore, StoreError, TaskJournal, TaskLeases};
use amas_types::{ApprovalId, ApprovalStatus, JournalEvent, Principal, TaskId, TaskSpec, Verdict};

use super::model::{
    Action, Bug, ClaimRule, Ev, Op, Protocol, Refusal, Resolution, State, fold, status,
};

/// Long enough that no lease runs out on the wall clock during a test: expiry is a model step.
const TTL: Duration = Duration::from_secs(120);
const WALKS: u64 = 200;
const MAX_STEPS: usize = 48;

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A small deterministic generator (splitmix64), so a failing walk is replayed by its seed.
struct Walk(u64);

impl Walk {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        usize::try_from(z % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
}

/// One random walk of `model` from its initial state: the actions taken and, per action, the
/// state after it and the operations it made. Renewals that keep their lease are steps too.
fn walk(model: &Protocol, seed: u64) -> Vec<(Action, State, Vec<Op>)> {
    let mut rng = Walk(seed);
    let mut state = model
        .init_states()
        .pop()
        .expect("the model has an initial state");
    let mut all = Vec::new();
    model.actions(&state, &mut all);
    let mut steps: Vec<(Action, State, Vec<Op>)> = Vec::new();
    while steps.len() < MAX_STEPS {
        let mut enabled: Vec<(Action, State, Vec<Op>)> = all
            .iter()
            .filter_map(|&a| model.transition(&state, a).map(|(n, ops)| (a, n, ops)))
            .collect();
        if enabled.is_empty() {
            break;
        }
        // Cancels and crashes less often than the rest, so that walks get far.
        let weight = |a: &Action| match a {
            Action::Cancel(_) | Action::Crash(_) => 1,
            _ => 4,
        };
        let mut pick = rng.below(enabled.iter().map(|(a, _, _)| weight(a)).sum());
        let i = enabled
            .iter()
            .position(|(a, _, _)| {
                let w = weight(a);
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        let step = enabled.swap_remove(i);
        state = step.1.clone();
        steps.push(step);
    }
    steps
}

fn submission() -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: "research".into(),
            title: "model trace".into(),
            description: "d".into(),
            parameters: serde_json::Map::new(),
            priority: Default::default(),
        },
        principal: Principal::local_operator(),
        trace_id: None,
        parent_span_id: None,
    }
}

/// The journal event a model event stands for.
fn event(ev: Ev, approval: &ApprovalId, required: u8) -> JournalEvent {
    let step = "act".into();
    let call_id = "call-1".into();
    let tool = "http_post".to_owned();
    match ev {
        Ev::Submitted => submission(),
        Ev::Started => JournalEvent::TaskStarted,
        Ev::ApprovalRequested => JournalEvent::ApprovalRequested {
            approval_id: approval.clone(),
            step,
            call_id,
            agent: "agent".into(),
            tool,
            risk: "high".into(),
            arguments: serde_json::json!({}),
            reasons: vec!["needs a human".into()],
            required_approvals: u32::from(required),
            requested_by: "submitter".into(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
            requested_by_issuer: "cli".into(),
        },
        Ev::ApprovalVoted { approver, approve } => JournalEvent::ApprovalVoted {
            approval_id: approval.clone(),
            step,
            approver: format!("approver-{approver}"),
            roles: vec!["approver".into()],
            decision: if approve {
                Verdict::Approve
            } else {
                Verdict::Deny
            },
            reason: String::new(),
            approver_issuer: "local".into(),
        },
        Ev::ApprovalResolved(r) => JournalEvent::ApprovalResolved {
            approval_id: approval.clone(),
            step,
            status: match r {
                Resolution::Approved => ApprovalStatus::Approved,
                Resolution::Denied => ApprovalStatus::Denied,
                Resolution::Expired => ApprovalStatus::Expired,
            },
            reason: String::new(),
        },
        Ev::ToolStarted => JournalEvent::ToolStarted {
            step,
            call_id,
            tool,
            idempotent: false,
        },
        Ev::ToolCompleted => JournalEvent::ToolCompleted {
            step,
            call_id,
            tool,
            output: serde_json::json!({"ok": true}),
            duration_ms: 1,
        },
        Ev::Succeeded => JournalEvent::TaskSucceeded {
            result: serde_json::json!({}),
        },
        Ev::Failed => JournalEvent::TaskFailed {
            error: amas_types::ErrorInfo {
                code: "AMAS-TEST".into(),
                message: "model".into(),
            },
        },
        Ev::Cancelled => JournalEvent::TaskCancelled {
            reason: "model".into(),
        },
    }
}

/// What the comparison looks at in an event: its kind, and who voted what or how it resolved.
fn signature(e: &JournalEvent) -> String {
    match e {
        JournalEvent::ApprovalVoted {
            approver, decision, ..
        } => format!("approval_voted:{approver}:{}", decision.as_str()),
        JournalEvent::ApprovalResolved { status, .. } => {
            format!("approval_resolved:{}", status.as_str())
        }
        other => other.kind().to_owned(),
    }
}

/// One walk's task in the store, and the names its actors claim under.
struct Replay<'a> {
    store: &'a PostgresStore,
    model: &'a Protocol,
    task: TaskId,
    approval: ApprovalId,
    seed: u64,
}

impl Replay<'_> {
    fn name(&self, actor: u8) -> String {
        if actor == self.model.api() {
            "api".to_owned()
        } else {
            format!("w{actor}")
        }
    }

    fn lease(&self, epoch: u8) -> Lease {
        Lease {
            task: self.task,
            epoch: u64::from(epoch),
            expires_at: Utc::now(),
        }
    }

    async fn apply(&self, op: &Op, at: usize) -> Result<(), String> {
        let why = format!("seed {} step {at}: {op:?}", self.seed);
        match op {
            Op::Claim { actor, epoch, .. } => {
                let got = self
                    .store
                    .claim(&self.name(*actor), 1, TTL)
                    .await
                    .expect("claim");
                let got: Vec<(TaskId, u64)> = got.iter().map(|l| (l.task, l.epoch)).collect();
                same(got, vec![(self.task, u64::from(*epoch))], &why)
            }
            Op::Renew {
                actor, epoch, kept, ..
            } => {
                let got = self
                    .store
                    .renew(&self.name(*actor), &[self.lease(*epoch)], TTL)
                    .await
                    .expect("renew");
                same(!got.is_empty(), *kept, &why)
            }
            Op::Release { actor, epoch, .. } => {
                self.store
                    .release(&self.name(*actor), &[self.lease(*epoch)])
                    .await
                    .expect("release");
                Ok(())
            }
            Op::Append {
                epoch,
                after,
                events,
                outcome,
                ..
            } => {
                let events: Vec<JournalEvent> = events
                    .iter()
                    .map(|&e| event(e, &self.approval, self.model.required))
                    .collect();
                let got = self
                    .store
                    .append_fenced(
                        self.task,
                        u64::from(*after),
                        &events,
                        Some(Fence {
                            epoch: u64::from(*epoch),
                        }),
                    )
                    .await;
                let got = match got {
                    Ok(records) => {
                        same(records.len(), events.len(), &why)?;
                        Ok(())
                    }
                    Err(StoreError::TaskEnded { .. }) => Err(Refusal::Ended),
                    Err(StoreError::LeaseLost { .. }) => Err(Refusal::LeaseLost),
                    Err(StoreError::Conflict { .. }) => Err(Refusal::Conflict),
                    Err(e) => return Err(format!("{why}: the store failed with {e}")),
                };
                same(got, *outcome, &why)
            }
            Op::Expire { .. } => {
                sqlx::query(
                    "UPDATE task_leases SET expires_at = clock_timestamp() - interval '1 second' \
                     WHERE task_id = $1",
                )
                .bind(self.task.0)
                .execute(self.store.pool())
                .await
                .expect("expire");
                Ok(())
            }
        }
    }

    /// The store's observable state against the model's.
    async fn observe(&self, state: &State, at: usize) -> Result<(), String> {
        let why = format!("seed {} after step {at}", self.seed);
        let row = &state.tasks[0];
        let journal: Vec<String> = self
            .store
            .read(self.task, 0)
            .await
            .expect("read")
            .iter()
            .map(|r| signature(&r.event))
            .collect();
        let expected: Vec<String> = row
            .journal
            .iter()
            .map(|e| signature(&event(e.ev, &self.approval, self.model.required)))
            .collect();
        same(journal, expected, &format!("{why}: journal"))?;

        let lease: Option<(i64, String, bool)> = sqlx::query_as(
            "SELECT epoch, worker, expires_at > clock_timestamp() FROM task_leases \
             WHERE task_id = $1",
        )
        .bind(self.task.0)
        .fetch_optional(self.store.pool())
        .await
        .expect("lease row");
        let expected = row
            .lease
            .map(|l| (i64::from(l.epoch), self.name(l.holder), l.live));
        same(lease, expected, &format!("{why}: lease"))?;

        let summary = self
            .store
            .summary(self.task)
            .await
            .expect("summary")
            .expect("the task exists");
        same(
            summary.status.as_str(),
            status(&row.journal),
            &format!("{why}: status"),
        )?;

        let approval = self
            .store
            .approval(&self.approval)
            .await
            .expect("approval")
            .map(|a| (a.status.as_str(), a.votes.len()));
        let f = fold(&row.journal);
        let expected = f.requested.then(|| {
            let status = match f.resolution {
                None => "pending",
                Some(Resolution::Approved) => "approved",
                Some(Resolution::Denied) => "denied",
                Some(Resolution::Expired) => "expired",
            };
            let votes = row
                .journal
                .iter()
                .filter(|e| matches!(e.ev, Ev::ApprovalVoted { .. }))
                .count();
            (status, votes)
        });
        same(approval, expected, &format!("{why}: approval"))
    }

    /// When the model has nothing to claim, neither has the store (a claim that finds
    /// something fails the walk anyway).
    async fn probe_claims(&self, state: &State, at: usize) -> Result<(), String> {
        if self.model.claimable_task(state).is_some() {
            return Ok(());
        }
        let got = self.store.claim("probe", 1, TTL).await.expect("claim");
        same(
            got.len(),
            0,
            &format!("seed {} after step {at}: tasks to claim", self.seed),
        )
    }

    /// Ends the walk's task unless it ended, so later walks never claim it.
    async fn close(&self) {
        let last = self.store.summary(self.task).await.expect("summary");
        if let Some(s) = last.filter(|s| !s.status.is_terminal()) {
            self.store
                .append(
                    self.task,
                    s.last_seq,
                    &[JournalEvent::TaskCancelled {
                        reason: "walk over".into(),
                    }],
                )
                .await
                .expect("end the walk's task");
        }
    }
}

/// A difference between the store and the model, or nothing.
fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T, why: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{why}: the store says {got:?}, the model {want:?}"))
    }
}

async fn fresh_store() -> PostgresStore {
    let schema = format!("amas_model_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::connect_in_schema(&database_url(), 4, &schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

/// How much a replay exercised.
struct Replayed {
    steps: usize,
    refused: usize,
}

/// Replays `WALKS` walks of the model (with `bug`, if any) on `store`, one task per walk,
/// until the first difference.
async fn replay(store: &PostgresStore, bug: Option<Bug>) -> Result<Replayed, String> {
    let mut done = Replayed {
        steps: 0,
        refused: 0,
    };
    for seed in 0..WALKS {
        let model = Protocol {
            workers: 2 + u8::from(seed % 2 == 1),
            tasks: 1,
            approvals: u8::from(seed % 5 != 4),
            required: 1 + u8::from(seed % 3 == 2),
            faults: 3,
            rule: ClaimRule::Unfinished,
            bug,
        };
        let task = TaskId::new();
        store
            .append(task, 0, &[submission()])
            .await
            .expect("submit");
        let replay = Replay {
            store,
            model: &model,
            task,
            approval: format!("apr-{seed}-{}", task.0.simple()).into(),
            seed,
        };
        for (at, (action, state, ops)) in walk(&model, seed).iter().enumerate() {
            for op in ops {
                done.refused += usize::from(matches!(
                    op,
                    Op::Append {
                        outcome: Err(_),
                        ..
                    }
                ));
                replay
                    .apply(op, at)
                    .await
                    .map_err(|e| format!("{e} ({action:?})"))?;
            }
            replay.observe(state, at).await?;
            replay.probe_claims(state, at).await?;
            done.steps += 1;
        }
        replay.close().await;
    }
    Ok(done)
}

/// Random walks of the model with two or three workers, one or two votes needed (or no
/// approval) and up to three faults, under today's claim rule (every unfinished task without a
/// live lease), replayed on PostgreSQL: every operation answers as the model says and every
/// observable state matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_traces_replay_on_postgres_with_the_same_answers() {
    let store = fresh_store().await;
    let done = replay(&store, None)
        .await
        .unwrap_or_else(|difference| panic!("{difference}"));
    eprintln!(
        "replayed {WALKS} walks, {} steps, {} refused appends",
        done.steps, done.refused
    );
    assert!(
        done.refused >= 50,
        "the walks tried too few refused appends: {}",
        done.refused
    );
    store.drop_schema().await.expect("drop");
}

/// The replay tells a model from the store it does not describe: a model whose claims keep
/// the epoch, or whose appends skip the fence, differs from PostgreSQL within the walks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_not_the_store_is_told_apart() {
    for bug in [Bug::ClaimKeepsEpoch, Bug::NoFence] {
        let store = fresh_store().await;
        let difference = replay(&store, Some(bug)).await.err();
        eprintln!("{bug:?}: {difference:?}");
        assert!(
            difference.is_some(),
            "{bug:?} replayed without a difference"
        );
        store.drop_schema().await.expect("drop");
    }
}
