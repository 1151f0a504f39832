//! Step dependency graphs, with steps as indices in declaration order: a stable topological
//! order, the cycles that prevent one, and a step's transitive upstream.

use std::collections::BTreeSet;

/// The steps ordered dependencies first, ties broken by declaration order; or every cycle
/// found (each listed from its smallest index, following `depends_on` edges).
pub(super) fn topo_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = deps.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(i) = (0..n).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d])) {
        placed[i] = true;
        order.push(i);
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every step left over depends on another one left over, so following such edges
    // from any of them must come back to a step already walked: that loop is a cycle.
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    for start in (0..n).filter(|&i| !placed[i]) {
        let mut walk = vec![start];
        let mut current = start;
        while let Some(&next) = deps[current].iter().find(|&&d| !placed[d]) {
            if let Some(pos) = walk.iter().position(|&w| w == next) {
                let mut cycle = walk.split_off(pos);
                let smallest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                cycle.rotate_left(smallest);
                if !cycles.contains(&cycle) {
                    cycles.push(cycle);
                }
                break;
            }
            walk.push(next);
            current = next;
        }
    }
    Err(cycles)
}

/// Every step `step` depends on, directly or through others (cycles tolerated).
pub(super) fn upstream(deps: &[Vec<usize>], step: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = deps[step].clone();
    while let Some(s) = stack.pop() {
        if seen.insert(s) {
            stack.extend(&deps[s]);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first_and_keeps_declaration_order_for_ties() {
        // 0 <- 2, 1 <- 2, 3 independent: declared order wins among ready steps.
        let deps = vec![vec![], vec![], vec![0, 1], vec![]];
        assert_eq!(topo_order(&deps), Ok(vec![0, 1, 2, 3]));
        let deps = vec![vec![1], vec![]];
        assert_eq!(topo_order(&deps), Ok(vec![1, 0]));
    }

    #[test]
    fn reports_each_cycle_once_and_not_the_steps_merely_downstream_of_it() {
        // 0 -> 1 -> 2 -> 0 is a cycle; 3 depends on it; 4 depends on itself.
        let deps = vec![vec![1], vec![2], vec![0], vec![2], vec![4]];
        assert_eq!(topo_order(&deps), Err(vec![vec![0, 1, 2], vec![4]]));
    }

    #[test]
    fn upstream_is_transitive() {
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        assert_eq!(upstream(&deps, 2), BTreeSet::from([0, 1]));
        assert!(upstream(&deps, 3).is_empty());
    }
}
