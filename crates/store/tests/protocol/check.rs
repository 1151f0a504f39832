//! The model checked exhaustively (breadth first, every reachable state) in a few
//! configurations, the liveness check's premise (a finite, acyclic state graph) verified, and
//! each deliberately broken variant shown to violate the property that guards against it.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model};

use super::model::{Bug, ClaimRule, Protocol, State, representative};

/// The first task's tool needs `required` votes; a second task's needs none.
fn protocol(workers: u8, tasks: u8, required: u8, faults: u8) -> Protocol {
    Protocol {
        workers,
        tasks,
        approvals: 1,
        required,
        faults,
        rule: ClaimRule::Woken,
        bug: None,
    }
}

/// Checks every property on every reachable state (depth first, one state per class of
/// states that differ only in the workers' names) and says how large the space was.
fn check_all(name: &str, model: Protocol) -> usize {
    let started = Instant::now();
    let checker = model
        .checker()
        .symmetry_fn(representative)
        .spawn_dfs()
        .join();
    checker.assert_properties();
    let states = checker.unique_state_count();
    eprintln!(
        "{name}: {states} states, depth {}, checked in {:.2?}",
        checker.max_depth(),
        started.elapsed()
    );
    states
}

/// Two workers and the API process, one task whose tool needs two approvers' votes, two
/// faults (crashes, pauses, a lease lost under a running holder) anywhere; approvers may
/// approve or deny concurrently while the task is cancelled and the deadline passes.
#[test]
fn two_workers_two_votes_and_two_faults_keep_every_property() {
    let states = check_all("2 workers, 2 votes, 2 faults", protocol(2, 1, 2, 2));
    assert!(states > 10_000, "the model explores too little: {states}");
}

/// Three workers race for one task needing one vote, with two faults.
#[test]
fn three_workers_one_vote_and_two_faults_keep_every_property() {
    check_all("3 workers, 1 vote, 2 faults", protocol(3, 1, 1, 2));
}

/// Two tasks shared by two workers (claims in the claim SQL's order), neither needing a vote,
/// two faults.
#[test]
fn two_tasks_on_two_workers_keep_every_property() {
    let model = Protocol {
        approvals: 0,
        ..protocol(2, 2, 1, 2)
    };
    check_all("2 workers, 2 tasks, 2 faults", model);
}

/// `eventually` in stateright is judged only on paths that end in a state without successors
/// (a path closing a cycle is not judged), so it proves termination only if there are no
/// cycles: this walks the whole graph depth first and fails on a back edge. Acyclic and finite,
/// every execution of the model ends, and "no deadlock" says each one ends with every task
/// ended. The walk is over the classes of states that differ only in the workers' names: a
/// cycle of states would be a cycle of their classes too.
#[test]
fn the_state_graph_is_acyclic_so_every_execution_ends() {
    let model = protocol(2, 1, 2, 2);
    let (states, edges) = assert_acyclic(&model);
    assert!(states > 10_000, "the walk saw too little: {states}");
    eprintln!("acyclic: {states} states, {edges} transitions");
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Depth-first search with the usual colours (on the stack / finished); returns the number of
/// states and transitions.
fn assert_acyclic(model: &Protocol) -> (usize, usize) {
    #[derive(PartialEq)]
    enum Colour {
        OnStack,
        Done,
    }
    let mut colour: HashMap<u64, Colour> = HashMap::new();
    let mut edges = 0;
    for init in model.init_states() {
        let init = representative(&init);
        let mut stack: Vec<(State, Vec<State>)> = Vec::new();
        colour.insert(fingerprint(&init), Colour::OnStack);
        let next = model.next_states(&init);
        stack.push((init, next));
        while let Some((state, successors)) = stack.last_mut() {
            let Some(next) = successors.pop() else {
                colour.insert(fingerprint(state), Colour::Done);
                stack.pop();
                continue;
            };
            edges += 1;
            let next = representative(&next);
            let fp = fingerprint(&next);
            match colour.get(&fp) {
                Some(Colour::OnStack) => panic!(
                    "a cycle: {next:?} is reachable from itself, after {:?}",
                    stack.iter().map(|(s, _)| s).collect::<Vec<_>>()
                ),
                Some(Colour::Done) => {}
                None => {
                    colour.insert(fp, Colour::OnStack);
                    let successors = model.next_states(&next);
                    stack.push((next, successors));
                }
            }
        }
    }
    (colour.len(), edges)
}

/// Runs `model` until `property` has a counterexample and returns the path, printed.
fn counterexample(model: Protocol, property: &'static str) -> String {
    let checker = model
        .checker()
        .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
        .spawn_bfs()
        .join();
    let path = checker
        .discovery(property)
        .unwrap_or_else(|| panic!("no counterexample of {property:?} found"));
    let actions = path.into_actions();
    let trace = format!("{actions:?}");
    eprintln!("{property}: {trace}");
    trace
}

fn broken(bug: Bug) -> Protocol {
    Protocol {
        bug: Some(bug),
        ..protocol(2, 1, 1, 1)
    }
}

/// Without the lease's fence, a worker whose lease ran out appends anyway.
#[test]
fn appends_without_the_fence_are_caught() {
    counterexample(broken(Bug::NoFence), "stale appends are refused");
}

/// A claim that keeps the epoch lets two holders write under the same epoch.
#[test]
fn a_claim_that_keeps_the_epoch_is_caught() {
    counterexample(broken(Bug::ClaimKeepsEpoch), "one writer per epoch");
}

/// A tool run before its `tool_started` commits runs even when the append is refused (the
/// lease lost, or the task cancelled meanwhile).
#[test]
fn a_tool_run_before_its_start_commits_is_caught() {
    counterexample(
        broken(Bug::ToolBeforeStartCommits),
        "a tool runs only after its start commits",
    );
}

/// A parked task its deadline does not wake waits for ever once nobody votes.
#[test]
fn a_deadline_that_wakes_nobody_is_caught() {
    counterexample(broken(Bug::DeadlineWakesNobody), "no deadlock");
}
