//! Allocations computed without messages: the optimum (Hungarian algorithm) and two
//! baselines (global greedy, random matching). Each returns `assignment[task] = agent`.

use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;
use xchange_core::DetRng;

use crate::instance::Batch;

/// The minimum-cost assignment (`pathfinding::kuhn_munkres_min` on the integer costs).
pub fn hungarian(batch: &Batch) -> Vec<usize> {
    let rows = batch.cost.iter().map(|row| row.iter().map(|&c| i64::from(c)));
    let weights = Matrix::from_rows(rows).expect("rows of equal length");
    let (_, assignment) = kuhn_munkres_min(&weights);
    assignment
}

/// Global greedy: repeatedly takes the cheapest (task, agent) pair whose task and agent
/// are both still free (ties: lower task, then lower agent).
pub fn greedy(batch: &Batch) -> Vec<usize> {
    let mut pairs: Vec<(u32, usize, usize)> = (0..batch.tasks)
        .flat_map(|t| (0..batch.agents).map(move |a| (t, a)))
        .map(|(t, a)| (batch.cost[t][a], t, a))
        .collect();
    pairs.sort_unstable();
    let mut assignment = vec![usize::MAX; batch.tasks];
    let mut taken = vec![false; batch.agents];
    let mut left = batch.tasks;
    for (_, t, a) in pairs {
        if left == 0 {
            break;
        }
        if assignment[t] == usize::MAX && !taken[a] {
            assignment[t] = a;
            taken[a] = true;
            left -= 1;
        }
    }
    assignment
}

/// A seeded random matching: a uniform random permutation of the agents, task `t` getting
/// the `t`-th.
pub fn random(batch: &Batch, seed: u64) -> Vec<usize> {
    let mut rng = DetRng::new(seed);
    let mut agents: Vec<usize> = (0..batch.agents).collect();
    for i in (1..agents.len()).rev() {
        agents.swap(i, rng.below(i + 1));
    }
    agents.truncate(batch.tasks);
    agents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_beats_greedy_and_random_on_a_small_instance() {
        let batch = Batch::generate(12, 10, 5).expect("feasible");
        let (h, g, r) = (hungarian(&batch), greedy(&batch), random(&batch, 9));
        for a in [&h, &g, &r] {
            let mut seen = a.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), batch.tasks, "one task per agent");
        }
        assert!(batch.cost_of(&h) <= batch.cost_of(&g));
        assert!(batch.cost_of(&h) <= batch.cost_of(&r));
    }
}
