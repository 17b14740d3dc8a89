//! Workload files: an online preset with any of its settings changed, read from TOML, and
//! the same changes from the command line.
//!
//! ```toml
//! preset = "online"            # the starting point: any online preset
//! agents = 2000
//! tasks = 50000
//! load = 0.9                   # of the agents' total speed
//! sizes = { kind = "pareto", shape = 2.5, mean = 1.0 }
//! arrivals = "bursty"          # or "poisson"
//! loss = 0.01                  # probability that a message is lost
//! heterogeneous = true
//! churn = { fraction = 0.2, recover_after_s = [2.0, 10.0] }
//! ```
//!
//! Unknown keys are refused, and every value is checked before anything runs.

use serde::Deserialize;

use crate::error::SimError;
use crate::online::{Churn, OnlinePreset, online_preset};
use crate::queueing::{Arrivals, Sizes};

/// Changes to an online preset. Every field is optional except the preset.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadChanges {
    /// The online preset to start from.
    pub preset: String,
    /// Agents.
    pub agents: Option<usize>,
    /// Tasks.
    pub tasks: Option<usize>,
    /// Offered load.
    pub load: Option<f64>,
    /// Task sizes.
    pub sizes: Option<SizesSpec>,
    /// Arrival process.
    pub arrivals: Option<ArrivalsSpec>,
    /// Probability that a message is lost.
    pub loss: Option<f64>,
    /// Agents of several speeds and skills.
    pub heterogeneous: Option<bool>,
    /// Crashes.
    pub churn: Option<ChurnSpec>,
}

/// Task sizes in a workload file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SizesSpec {
    /// Exponential with this mean (seconds of work).
    Exponential {
        /// Mean size.
        mean: f64,
    },
    /// Pareto with this shape (> 1) and mean.
    Pareto {
        /// Shape.
        shape: f64,
        /// Mean size.
        mean: f64,
    },
}

/// The arrival process in a workload file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalsSpec {
    /// Poisson.
    Poisson,
    /// Bursts (see [`Arrivals::Bursty`]).
    Bursty,
}

/// Crashes in a workload file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Fraction of agents that crash once.
    pub fraction: f64,
    /// Recovery after a time drawn uniformly from this range, seconds.
    #[serde(default = "default_recovery")]
    pub recover_after_s: [f64; 2],
}

fn default_recovery() -> [f64; 2] {
    [2.0, 10.0]
}

fn invalid(what: String) -> SimError {
    SimError::InvalidWorkload(what)
}

impl WorkloadChanges {
    /// Reads a workload file.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        toml::from_str(text).map_err(|e| invalid(e.to_string()))
    }

    /// The preset with these changes, checked.
    pub fn apply(&self) -> Result<OnlinePreset, SimError> {
        let mut preset = online_preset(&self.preset, self.agents, self.tasks)
            .ok_or_else(|| invalid(format!("{:?} is not an online preset", self.preset)))?;
        let w = &mut preset.workload;
        if w.agents == 0 || w.tasks == 0 {
            return Err(invalid("agents and tasks must be at least 1".into()));
        }
        if let Some(load) = self.load {
            if !(load > 0.0 && load <= 2.0) {
                return Err(invalid(format!("load must be in (0, 2], got {load}")));
            }
            w.load = load;
        }
        if let Some(sizes) = self.sizes {
            w.sizes = match sizes {
                // Zero-length tasks are allowed: they isolate the cost of the protocol itself.
                SizesSpec::Exponential { mean } if mean >= 0.0 => Sizes::Exponential { mean },
                SizesSpec::Pareto { shape, mean } if shape > 1.0 && mean > 0.0 => {
                    Sizes::Pareto { shape, mean }
                }
                other => {
                    return Err(invalid(format!(
                        "sizes need mean >= 0 (> 0 for Pareto) and shape > 1, got {other:?}"
                    )));
                }
            };
        }
        if let Some(arrivals) = self.arrivals {
            w.arrivals = match arrivals {
                ArrivalsSpec::Poisson => Arrivals::Poisson,
                ArrivalsSpec::Bursty => Arrivals::Bursty,
            };
        }
        if let Some(loss) = self.loss {
            if !(0.0..0.5).contains(&loss) {
                return Err(invalid(format!("loss must be in [0, 0.5), got {loss}")));
            }
            preset.loss = loss;
        }
        if let Some(h) = self.heterogeneous {
            preset.heterogeneous = h;
        }
        if let Some(c) = self.churn {
            let [low, high] = c.recover_after_s;
            if !((0.0..=1.0).contains(&c.fraction) && low >= 0.0 && low <= high && high.is_finite()) {
                return Err(invalid(format!(
                    "churn needs 0 <= fraction <= 1 and 0 <= recover_after_s[0] <= [1], got {c:?}"
                )));
            }
            preset.churn =
                (c.fraction > 0.0).then_some(Churn { fraction: c.fraction, recover_after_s: (low, high) });
        }
        Ok(preset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changes_its_preset() {
        let file = r#"
            preset = "online"
            agents = 2000
            load = 0.9
            sizes = { kind = "pareto", shape = 2.5, mean = 2.0 }
            arrivals = "bursty"
            loss = 0.01
            heterogeneous = true
            churn = { fraction = 0.2 }
        "#;
        let preset = WorkloadChanges::from_toml(file).unwrap().apply().unwrap();
        assert_eq!(preset.workload.agents, 2000);
        assert_eq!(preset.workload.tasks, 100_000, "unchanged");
        assert_eq!(preset.workload.load, 0.9);
        assert_eq!(preset.workload.sizes, Sizes::Pareto { shape: 2.5, mean: 2.0 });
        assert_eq!(preset.workload.arrivals, Arrivals::Bursty);
        assert_eq!((preset.loss, preset.heterogeneous), (0.01, true));
        assert_eq!(preset.churn, Some(Churn { fraction: 0.2, recover_after_s: (2.0, 10.0) }));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            ("preset = \"online\"\nlaod = 0.9", "unknown field"),
            ("preset = \"batch\"", "not an online preset"),
            ("preset = \"online\"\nload = 0", "load must be"),
            ("preset = \"online\"\nloss = 0.7", "loss must be"),
            ("preset = \"online\"\nsizes = { kind = \"pareto\", shape = 1.0, mean = 1.0 }", "shape > 1"),
            ("preset = \"online\"\nsizes = { kind = \"uniform\", mean = 1.0 }", "unknown variant"),
            ("preset = \"online\"\nchurn = { fraction = 1.5 }", "churn needs"),
            ("preset = \"online\"\nagents = 0", "at least 1"),
            ("agents = 10", "missing field `preset`"),
        ];
        for (file, expected) in cases {
            let err = WorkloadChanges::from_toml(file).and_then(|w| w.apply()).unwrap_err().to_string();
            assert!(err.starts_with("invalid workload") && err.contains(expected), "{file:?}: {err}");
        }
    }
}
