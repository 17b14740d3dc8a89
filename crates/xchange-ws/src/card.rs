//! The card a remote agent presents in its hello: its id and what it offers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xchange_core::ContractorProfile;
use xchange_protocol::{AgentId, Code, Refusal, is_valid_name};

/// Most capabilities, pools and endpoints a card may list, and the longest endpoint.
const MAX_NAMES: usize = 64;
const MAX_ENDPOINTS: usize = 16;
const MAX_ENDPOINT_LEN: usize = 2048;

/// What a remote agent offers. Members a card may leave out take the defaults of
/// [`ContractorProfile::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteCard {
    /// The agent id (its Ed25519 public key).
    pub id: AgentId,
    /// Capabilities offered (at least one).
    pub capabilities: Vec<String>,
    /// Pools served; empty means every pool.
    #[serde(default)]
    pub pools: Vec<String>,
    /// Tasks executed at once (at least 1).
    #[serde(default = "defaults::capacity")]
    pub capacity: u32,
    /// Awarded tasks that may wait beyond `capacity`.
    #[serde(default = "defaults::queue_limit")]
    pub queue_limit: u32,
    /// Price per unit of task size.
    #[serde(default = "defaults::price_per_unit")]
    pub price_per_unit: u64,
    /// Units of task size done per second.
    #[serde(default = "defaults::speed")]
    pub speed: f64,
    /// Where else the agent can be reached (informational: stored with the card).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

mod defaults {
    use xchange_core::ContractorProfile;

    fn profile() -> ContractorProfile {
        ContractorProfile::new(["x"])
    }
    pub(super) fn capacity() -> u32 {
        profile().capacity
    }
    pub(super) fn queue_limit() -> u32 {
        profile().queue_limit
    }
    pub(super) fn price_per_unit() -> u64 {
        profile().price_per_unit
    }
    pub(super) fn speed() -> f64 {
        profile().speed
    }
}

impl RemoteCard {
    /// The card of agent `id` with `profile`.
    pub fn new(id: AgentId, profile: &ContractorProfile) -> Self {
        let names = |n: &[Arc<str>]| n.iter().map(|s| s.to_string()).collect();
        Self {
            id,
            capabilities: names(&profile.capabilities),
            pools: names(&profile.pools),
            capacity: profile.capacity,
            queue_limit: profile.queue_limit,
            price_per_unit: profile.price_per_unit,
            speed: profile.speed,
            endpoints: Vec::new(),
        }
    }

    /// The profile the card describes, if it is valid (else 5014 with what is wrong).
    pub fn profile(&self) -> Result<ContractorProfile, Refusal> {
        let bad = |reason: String| Err(Refusal::new(Code::SchemaInvalid, format!("invalid card: {reason}")));
        if self.capabilities.is_empty() {
            return bad("no capability".into());
        }
        for (what, names) in [("capabilities", &self.capabilities), ("pools", &self.pools)] {
            if names.len() > MAX_NAMES {
                return bad(format!("more than {MAX_NAMES} {what}"));
            }
            if let Some(name) = names.iter().find(|n| !is_valid_name(n)) {
                let name: String = name.chars().take(80).collect();
                return bad(format!("{name:?} is not 1-64 of [A-Za-z0-9_-]"));
            }
        }
        if self.capacity == 0 {
            return bad("capacity must be at least 1".into());
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return bad(format!("speed must be a positive number, not {}", self.speed));
        }
        if self.endpoints.len() > MAX_ENDPOINTS || self.endpoints.iter().any(|e| e.len() > MAX_ENDPOINT_LEN) {
            return bad(format!("at most {MAX_ENDPOINTS} endpoints of at most {MAX_ENDPOINT_LEN} bytes"));
        }
        Ok(ContractorProfile {
            capabilities: self.capabilities.iter().map(|s| Arc::from(s.as_str())).collect::<Vec<_>>().into(),
            pools: self.pools.iter().map(|s| Arc::from(s.as_str())).collect::<Vec<_>>().into(),
            capacity: self.capacity,
            queue_limit: self.queue_limit,
            price_per_unit: self.price_per_unit,
            speed: self.speed,
            external_bidding: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use xchange_protocol::AgentKey;

    use super::*;

    fn id() -> AgentId {
        AgentKey::from_seed([5; 32]).id()
    }

    #[test]
    fn a_card_round_trips_to_its_profile() {
        let profile = ContractorProfile {
            pools: vec![Arc::from("docs")].into(),
            capacity: 3,
            price_per_unit: 7,
            speed: 2.5,
            ..ContractorProfile::new(["echo", "upper"])
        };
        assert_eq!(RemoteCard::new(id(), &profile).profile().unwrap(), profile);
    }

    #[test]
    fn left_out_members_take_the_defaults() {
        let card: RemoteCard =
            serde_json::from_value(json!({ "id": id().to_string(), "capabilities": ["echo"], "x_new": 1 }))
                .unwrap();
        assert_eq!(card.profile().unwrap(), ContractorProfile::new(["echo"]));
    }

    #[test]
    fn invalid_cards_are_refused_with_5014() {
        let ok = RemoteCard::new(id(), &ContractorProfile::new(["echo"]));
        type Change = fn(&mut RemoteCard);
        let cases: [(&str, Change); 7] = [
            ("no capability", |c| c.capabilities.clear()),
            ("bad capability", |c| c.capabilities.push("two words".into())),
            ("bad pool", |c| c.pools.push(String::new())),
            ("too many", |c| c.capabilities = (0..65).map(|i| format!("c{i}")).collect()),
            ("capacity", |c| c.capacity = 0),
            ("speed", |c| c.speed = f64::NAN),
            ("endpoints", |c| c.endpoints = vec!["x".repeat(3000)]),
        ];
        for (what, change) in cases {
            let mut card = ok.clone();
            change(&mut card);
            let err = card.profile().expect_err(what);
            assert_eq!(err.code, Code::SchemaInvalid, "{what}: {err}");
        }
    }
}
