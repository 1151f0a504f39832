//! The local queue's rules: fairness ratios by weight, priority within a tenant, caps that
//! skip a tenant without blocking the others, no starvation and no banked credit, the
//! admission limits; and, as properties over random workloads, a bound on how long any
//! tenant's next task waits and that every queued task runs exactly once.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

fn config(tenants: &[(&str, u32, Option<u32>, Option<u32>)]) -> SchedulingConfig {
    SchedulingConfig {
        tenants: tenants
            .iter()
            .map(|(name, weight, max_running, max_queued)| {
                (
                    (*name).to_owned(),
                    TenantSchedule {
                        weight: *weight,
                        max_running: *max_running,
                        max_queued: *max_queued,
                    },
                )
            })
            .collect(),
        ..SchedulingConfig::default()
    }
}

fn queue(tenants: &[(&str, u32, Option<u32>, Option<u32>)]) -> FairQueue {
    FairQueue::new(config(tenants), 1_000_000)
}

fn push(q: &mut FairQueue, tenant: &str, priority: u8, n: usize) -> Vec<TaskId> {
    (0..n)
        .map(|_| {
            let task = TaskId::new();
            q.push(tenant, task, priority, false);
            task
        })
        .collect()
}

/// Pops and finishes at once (one slot), `n` times: the tenants served, in order.
fn serve(q: &mut FairQueue, n: usize) -> Vec<String> {
    (0..n)
        .filter_map(|_| {
            let next = q.pop()?;
            q.finish(&next.tenant);
            Some(next.tenant.to_string())
        })
        .collect()
}

fn count(order: &[String], tenant: &str) -> usize {
    order.iter().filter(|t| *t == tenant).count()
}

#[test]
fn a_tenant_s_tasks_run_by_priority_then_age() {
    let mut q = queue(&[]);
    let low = push(&mut q, "a", 2, 2);
    let high = push(&mut q, "a", 9, 2);
    let mid = push(&mut q, "a", 5, 1);
    let order: Vec<TaskId> = std::iter::from_fn(|| q.pop().map(|n| n.task)).collect();
    assert_eq!(order, [high, mid, low].concat());
}

/// Both backlogged: weight 3 against weight 1 is served 3:1 over any 8 consecutive starts.
#[test]
fn weights_divide_the_slots() {
    let mut q = queue(&[("c", 3, None, None)]);
    push(&mut q, "a", 5, 500);
    push(&mut q, "c", 5, 500);
    let order = serve(&mut q, 400);
    assert_eq!(count(&order, "c"), 300, "{order:?}");
    for window in order.windows(8) {
        assert!((5..=7).contains(&count(window, "c")), "{window:?}");
    }
}

/// Tenant a has 10,000 tasks queued, all at the highest priority, and has been served for a
/// while; b's single task at the lowest priority is among the next two starts.
#[test]
fn one_tenant_s_ten_thousand_tasks_do_not_starve_another_s_one() {
    let mut q = queue(&[]);
    push(&mut q, "a", 10, 10_000);
    assert!(serve(&mut q, 100).iter().all(|t| t == "a"));
    let b = push(&mut q, "b", 1, 1)[0];
    let next: Vec<TaskId> = (0..2).filter_map(|_| q.pop().map(|n| n.task)).collect();
    assert!(next.contains(&b), "b waits behind a");
}

/// A tenant at its cap is skipped, not waited for: the others keep the free slots; when one of
/// its tasks ends it runs the next.
#[test]
fn a_tenant_at_its_cap_is_skipped_without_blocking_others() {
    let mut q = queue(&[("a", 1, Some(2), None)]);
    push(&mut q, "a", 10, 10);
    push(&mut q, "b", 1, 10);
    let first: Vec<String> = (0..6)
        .filter_map(|_| q.pop().map(|n| n.tenant.to_string()))
        .collect();
    assert_eq!(count(&first, "a"), 2, "{first:?}");
    assert_eq!(count(&first, "b"), 4, "{first:?}");
    q.finish("a");
    let next = q.pop().expect("a task");
    assert_eq!(&*next.tenant, "a", "a is below its cap again");
    assert_eq!(&*q.pop().expect("a task").tenant, "b");
}

/// Only capped tenants have tasks: nothing runs until one of theirs ends.
#[test]
fn nothing_runs_when_every_waiting_tenant_is_at_its_cap() {
    let mut q = queue(&[("a", 1, Some(1), None)]);
    push(&mut q, "a", 5, 3);
    assert!(q.pop().is_some());
    assert!(q.pop().is_none());
    assert_eq!(q.queued(), 2);
    q.finish("a");
    assert!(q.pop().is_some());
}

/// c is idle while a is served a hundred times; when c then queues a hundred tasks it
/// restarts from the clock: the two alternate, c does not take a hundred starts in a row.
#[test]
fn an_idle_tenant_banks_no_credit() {
    let mut q = queue(&[]);
    push(&mut q, "a", 5, 200);
    serve(&mut q, 100);
    push(&mut q, "c", 5, 100);
    let order = serve(&mut q, 20);
    assert!((9..=11).contains(&count(&order, "a")), "{order:?}");
}

/// The global capacity and a tenant's `max_queued` refuse; a refused tenant does not stop
/// another; places given back or started free room again.
#[test]
fn admission_limits_count_queued_and_reserved_places() {
    let mut q = FairQueue::new(config(&[("a", 1, None, Some(2))]), 4);
    assert_eq!(q.reserve("a"), Ok(()));
    q.push("a", TaskId::new(), 5, true);
    assert_eq!(q.reserve("a"), Ok(()));
    assert_eq!(q.reserve("a"), Err(Refusal::TenantFull { limit: 2 }));
    assert_eq!(q.reserve("b"), Ok(()));
    assert_eq!(q.reserve("b"), Ok(()));
    assert_eq!(q.reserve("b"), Err(Refusal::Full { capacity: 4 }));
    assert_eq!(q.len(), 4);
    q.unreserve("b");
    assert_eq!(q.reserve("b"), Ok(()));
    q.unreserve("a");
    assert_eq!(q.len(), 3);
    assert!(q.pop().is_some());
    assert_eq!(q.len(), 2, "a's task started");
    assert_eq!(q.reserve("a"), Ok(()));
    assert_eq!(q.reserve("a"), Ok(()), "a has room for two again");
    assert_eq!(
        q.reserve("a"),
        Err(Refusal::Full { capacity: 4 }),
        "the global limit is checked first"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Push { tenant: usize, priority: u8 },
    Pop,
    Finish,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4_usize, 1..=10_u8).prop_map(|(tenant, priority)| Op::Push { tenant, priority }),
        3 => Just(Op::Pop),
        2 => Just(Op::Finish),
    ]
}

const NAMES: [&str; 4] = ["t0", "t1", "t2", "t3"];

proptest! {
    /// Any workload, any weights and caps: a task runs once, never past its tenant's cap,
    /// and the counts stay consistent; draining runs every task queued.
    #[test]
    fn every_task_runs_once_within_its_tenant_s_cap(
        weights in proptest::collection::vec(1..=5_u32, 4),
        caps in proptest::collection::vec(proptest::option::of(1..=3_u32), 4),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let tenants: Vec<(&str, u32, Option<u32>, Option<u32>)> =
            (0..4).map(|i| (NAMES[i], weights[i], caps[i], None)).collect();
        let mut q = queue(&tenants);
        let mut queued: HashMap<TaskId, usize> = HashMap::new();
        let mut running: Vec<usize> = Vec::new();
        let mut ran = 0;
        for op in ops {
            match op {
                Op::Push { tenant, priority } => {
                    let task = TaskId::new();
                    q.push(NAMES[tenant], task, priority, false);
                    queued.insert(task, tenant);
                }
                Op::Pop => {
                    if let Some(next) = q.pop() {
                        let tenant = queued.remove(&next.task);
                        prop_assert!(tenant.is_some(), "a task ran twice or was never queued");
                        let tenant = tenant.unwrap_or_default();
                        prop_assert_eq!(NAMES[tenant], &*next.tenant);
                        running.push(tenant);
                        ran += 1;
                    }
                }
                Op::Finish => {
                    if let Some(tenant) = running.pop() {
                        q.finish(NAMES[tenant]);
                    }
                }
            }
            for (i, cap) in caps.iter().enumerate() {
                let now = running.iter().filter(|t| **t == i).count();
                prop_assert!(cap.is_none_or(|c| now <= c as usize), "{} runs {now} > {cap:?}", NAMES[i]);
            }
            prop_assert_eq!(q.queued(), queued.len());
        }
        // Drain: every queued task runs once all running ones end.
        loop {
            while let Some(tenant) = running.pop() {
                q.finish(NAMES[tenant]);
            }
            let Some(next) = q.pop() else { break };
            prop_assert!(queued.remove(&next.task).is_some());
            running.push(NAMES.iter().position(|n| **n == *next.tenant).unwrap_or_default());
            ran += 1;
        }
        prop_assert!(queued.is_empty(), "{} tasks never ran ({ran} did)", queued.len());
    }

    /// No starvation, quantified: from the moment a tenant has a task waiting until it next
    /// starts one, every other tenant starts at most ceil(its weight / the waiting tenant's
    /// weight) + 1 tasks, however many it has queued (one slot, no caps).
    #[test]
    fn a_waiting_tenant_s_next_task_waits_a_bounded_number_of_starts(
        weights in proptest::collection::vec(1..=5_u32, 4),
        ops in proptest::collection::vec((0..4_usize, 1..=10_u8, 0..4_usize), 1..400),
    ) {
        let tenants: Vec<(&str, u32, Option<u32>, Option<u32>)> =
            (0..4).map(|i| (NAMES[i], weights[i], None, None)).collect();
        let mut q = queue(&tenants);
        // Per waiting tenant: the starts of each other tenant since it began waiting.
        let mut waited: BTreeMap<usize, [u32; 4]> = BTreeMap::new();
        let mut backlog = [0_usize; 4];
        for (tenant, priority, pops) in ops {
            q.push(NAMES[tenant], TaskId::new(), priority, false);
            backlog[tenant] += 1;
            waited.entry(tenant).or_insert([0; 4]);
            for _ in 0..pops {
                let Some(next) = q.pop() else { break };
                q.finish(&next.tenant);
                let served = NAMES.iter().position(|n| **n == *next.tenant).unwrap_or_default();
                backlog[served] -= 1;
                for (&w, starts) in &mut waited {
                    if w != served {
                        starts[served] += 1;
                        let bound = weights[served].div_ceil(weights[w]) + 1;
                        prop_assert!(
                            starts[served] <= bound,
                            "{} waited through {} starts of {} (weights {:?})",
                            NAMES[w], starts[served], NAMES[served], weights
                        );
                    }
                }
                waited.remove(&served);
                if backlog[served] > 0 {
                    waited.insert(served, [0; 4]);
                }
            }
        }
    }
}
