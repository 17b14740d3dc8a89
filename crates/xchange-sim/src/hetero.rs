//! Heterogeneous agents for the `online-hetero` preset: agents differ in speed and in the
//! skills they offer, each task needs one skill, and the dispatch baselines place tasks on
//! eligible agents only.
//!
//! The omniscient reference is shortest expected delay with perfect, instant knowledge:
//! each task goes to the eligible agent that would finish it first. Agents come in a few
//! speed classes, and within a class the agent free soonest also finishes first, so keeping
//! the agents of each (skill, class) ordered by the time they are free finds the exact
//! choice by looking at one agent per class.

use std::collections::BTreeSet;

use xchange_core::DetRng;

use crate::queueing::{Dispatch, Dispatched, unit};

/// Skills a task may need.
pub const SKILLS: usize = 4;
/// Agent speeds (work done per second) and how often each occurs.
const SPEEDS: [(f64, f64); 3] = [(0.5, 0.3), (1.0, 0.5), (2.0, 0.2)];

/// Who the agents are.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Work per second, per agent.
    pub speed: Vec<f64>,
    /// Skills offered, per agent, as a bit mask (bit `k` is skill `k`).
    pub skills: Vec<u8>,
}

impl Pool {
    /// `agents` agents with speeds from three classes (0.5, 1 and 2, in proportions 3:5:2)
    /// and each skill offered with probability one half (at least one per agent).
    pub fn heterogeneous(agents: usize, seed: u64) -> Self {
        let mut rng = DetRng::new(seed ^ 0x4e7e_0000_0000_0001);
        let mut speed = Vec::with_capacity(agents);
        let mut skills = Vec::with_capacity(agents);
        for _ in 0..agents {
            let mut u = unit(&mut rng);
            let class = SPEEDS.iter().find(|(_, p)| {
                u -= p;
                u <= 0.0
            });
            speed.push(class.map_or(SPEEDS[SPEEDS.len() - 1].0, |c| c.0));
            let mask = (rng.next_u64() & ((1 << SKILLS) - 1)) as u8;
            skills.push(if mask == 0 { 1 << rng.below(SKILLS) } else { mask });
        }
        Self { speed, skills }
    }

    /// Total work per second of all agents.
    pub fn capacity(&self) -> f64 {
        self.speed.iter().sum()
    }

    /// The skill each task needs, uniformly.
    pub fn task_skills(tasks: usize, seed: u64) -> Vec<u8> {
        let mut rng = DetRng::new(seed ^ 0x5c11_0000_0000_0002);
        (0..tasks).map(|_| rng.below(SKILLS) as u8).collect()
    }

    fn offers(&self, agent: usize, skill: u8) -> bool {
        self.skills[agent] & (1 << skill) != 0
    }
}

/// Places `arrivals` (time, size) needing `skills` on the FIFO agents of `pool`.
pub fn dispatch_hetero(
    pool: &Pool,
    arrivals: &[(f64, f64)],
    skills: &[u8],
    policy: Dispatch,
    seed: u64,
) -> Dispatched {
    let agents = pool.speed.len();
    let mut rng = DetRng::new(seed ^ 0xd15_9a7c);
    let mut classes: Vec<f64> = Vec::new();
    for &s in &pool.speed {
        if !classes.contains(&s) {
            classes.push(s);
        }
    }
    let class_of: Vec<usize> =
        pool.speed.iter().map(|s| classes.iter().position(|c| c == s).expect("listed")).collect();
    let eligible: Vec<Vec<usize>> =
        (0..SKILLS as u8).map(|k| (0..agents).filter(|&a| pool.offers(a, k)).collect()).collect();
    // Free times are non-negative, so their bit patterns order like the numbers.
    let mut free: Vec<Vec<BTreeSet<(u64, usize)>>> = vec![vec![BTreeSet::new(); classes.len()]; SKILLS];
    for a in 0..agents {
        for (k, sets) in free.iter_mut().enumerate() {
            if pool.offers(a, k as u8) {
                sets[class_of[a]].insert((0, a));
            }
        }
    }
    let mut free_at = vec![0.0f64; agents];
    let mut work = vec![0.0f64; agents];
    let mut turn = [0usize; SKILLS];
    let mut completion = Vec::with_capacity(arrivals.len());
    for (&(at, size), &skill) in arrivals.iter().zip(skills) {
        let k = usize::from(skill);
        let finish_on = |a: usize| free_at[a].max(at) + size / pool.speed[a];
        let candidates = &eligible[k];
        assert!(!candidates.is_empty(), "some agent offers every skill");
        let agent = match policy {
            Dispatch::Random => candidates[rng.below(candidates.len())],
            Dispatch::RoundRobin => {
                turn[k] = (turn[k] + 1) % candidates.len();
                candidates[turn[k]]
            }
            Dispatch::PowerOfD(d) => (0..d.max(1))
                .map(|_| candidates[rng.below(candidates.len())])
                .min_by(|a, b| finish_on(*a).total_cmp(&finish_on(*b)).then(a.cmp(b)))
                .expect("d >= 1"),
            Dispatch::ShortestQueue => free[k]
                .iter()
                .filter_map(|class| class.first().map(|&(_, a)| a))
                .min_by(|a, b| finish_on(*a).total_cmp(&finish_on(*b)).then(a.cmp(b)))
                .expect("an eligible agent"),
        };
        let finish = finish_on(agent);
        for (j, sets) in free.iter_mut().enumerate() {
            if pool.offers(agent, j as u8) {
                let set = &mut sets[class_of[agent]];
                set.remove(&(free_at[agent].to_bits(), agent));
                set.insert((finish.to_bits(), agent));
            }
        }
        free_at[agent] = finish;
        work[agent] += size / pool.speed[agent];
        completion.push(finish - at);
    }
    Dispatched { completion, work }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_finishes_each_task_first_and_every_agent_is_eligible_somewhere() {
        let pool = Pool::heterogeneous(50, 3);
        assert!(pool.skills.iter().all(|&m| m != 0 && m < 1 << SKILLS));
        assert!(pool.speed.contains(&0.5) && pool.speed.contains(&2.0));
        let arrivals: Vec<(f64, f64)> = (0..2_000).map(|i| (f64::from(i) * 0.02, 1.0)).collect();
        let skills = Pool::task_skills(arrivals.len(), 3);
        let best = dispatch_hetero(&pool, &arrivals, &skills, Dispatch::ShortestQueue, 3);
        let random = dispatch_hetero(&pool, &arrivals, &skills, Dispatch::Random, 3);
        let mean = |d: &Dispatched| d.completion.iter().sum::<f64>() / d.completion.len() as f64;
        assert!(mean(&best) < mean(&random), "{} vs {}", mean(&best), mean(&random));
        // Nothing finishes faster than its size at the fastest speed.
        assert!(best.completion.iter().all(|&c| c >= 0.5 - 1e-9));
        assert_eq!(dispatch_hetero(&pool, &arrivals, &skills, Dispatch::PowerOfD(2), 3), {
            dispatch_hetero(&pool, &arrivals, &skills, Dispatch::PowerOfD(2), 3)
        });
    }
}
