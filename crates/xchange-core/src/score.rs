//! Award scoring: a weighted score over the bids of one round, lower is better, with a
//! deterministic tie-break, and the manager's own record of each contractor.

use xchange_protocol::{AgentId, MsgId};

use crate::config::ScoreWeights;

/// One bid as the manager keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bid {
    pub(crate) agent: AgentId,
    pub(crate) price: u64,
    pub(crate) eta_ms: u64,
    pub(crate) load: f64,
    pub(crate) msg: MsgId,
    /// The manager's record of the bidder (0 to 1), filled in when the round closes.
    pub(crate) reputation: f64,
}

/// What a manager has seen of a contractor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reputation {
    pub(crate) good: u32,
    pub(crate) bad: u32,
}

impl Reputation {
    /// Laplace-smoothed success rate: 0.5 for a stranger, towards 1 with good results.
    pub(crate) fn value(&self) -> f64 {
        (f64::from(self.good) + 1.0) / (f64::from(self.good) + f64::from(self.bad) + 2.0)
    }
}

/// Sorts `bids` best first.
///
/// Price and time are divided by the round's maximum so that the weights compare like with
/// like; `priority` (the task's `job_priority_value`) makes time count more than price.
pub(crate) fn rank(bids: &mut [Bid], weights: &ScoreWeights, priority: i64) {
    let max_price = bids.iter().map(|b| b.price).max().unwrap_or(1).max(1) as f64;
    let max_eta = bids.iter().map(|b| b.eta_ms).max().unwrap_or(1).max(1) as f64;
    let urgency = 1.0 + weights.priority * (priority.max(0) as f64 / 100.0).min(10.0);
    let score = |b: &Bid| {
        weights.price * (b.price as f64 / max_price)
            + weights.eta * urgency * (b.eta_ms as f64 / max_eta)
            + weights.reputation * (1.0 - b.reputation)
            + weights.load * (b.load.clamp(0.0, 4.0) / 4.0)
    };
    let mut scored: Vec<(f64, Bid)> = bids.iter().map(|b| (score(b), *b)).collect();
    scored.sort_by(|(sa, a), (sb, b)| {
        sa.total_cmp(sb).then(a.eta_ms.cmp(&b.eta_ms)).then(a.price.cmp(&b.price)).then(a.agent.cmp(&b.agent))
    });
    for (slot, (_, bid)) in bids.iter_mut().zip(scored) {
        *slot = bid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(i: u64, price: u64, eta_ms: u64, load: f64) -> Bid {
        Bid { agent: AgentId::from_index(0, i), price, eta_ms, load, msg: MsgId::NIL, reputation: 0.5 }
    }

    #[test]
    fn cheaper_and_faster_wins_and_ties_break_by_agent() {
        let mut bids = vec![bid(1, 100, 100, 0.0), bid(2, 50, 50, 0.0), bid(3, 100, 100, 0.0)];
        rank(&mut bids, &ScoreWeights::default(), 0);
        assert_eq!(bids[0].agent, AgentId::from_index(0, 2));
        let (a, b) = (AgentId::from_index(0, 1), AgentId::from_index(0, 3));
        assert_eq!(bids[1].agent, a.min(b));
    }

    #[test]
    fn priority_shifts_weight_from_price_to_time() {
        let cheap_slow = bid(1, 10, 400, 0.0);
        let dear_fast = bid(2, 100, 100, 0.0);
        let mut bids = vec![cheap_slow, dear_fast];
        rank(&mut bids, &ScoreWeights::default(), 0);
        assert_eq!(bids[0].agent, cheap_slow.agent, "price wins for ordinary work");
        let mut bids = vec![cheap_slow, dear_fast];
        rank(&mut bids, &ScoreWeights::default(), 300);
        assert_eq!(bids[0].agent, dear_fast.agent, "time wins for urgent work");
    }

    #[test]
    fn bad_reputation_and_load_lose() {
        let mut bids = vec![bid(1, 100, 100, 0.0), bid(2, 100, 100, 0.0)];
        let bad = AgentId::from_index(0, 1);
        for b in &mut bids {
            b.reputation = if b.agent == bad { 0.1 } else { 0.9 };
        }
        rank(&mut bids, &ScoreWeights::default(), 0);
        assert_ne!(bids[0].agent, bad);
        let mut bids = vec![bid(1, 100, 100, 3.0), bid(2, 100, 100, 0.0)];
        rank(&mut bids, &ScoreWeights::default(), 0);
        assert_eq!(bids[0].agent, AgentId::from_index(0, 2));
    }
}
