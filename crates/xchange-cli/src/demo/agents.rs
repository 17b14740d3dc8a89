//! The demo's agents: coordinators that split a document into per-paragraph subtasks, and
//! workers that count words, compute word frequencies and score sentiment. Workers differ in
//! speed, price and reliability; flaky ones crash at a stated rate and stop answering.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use xchange_core::{DetRng, ExecOutcome};
use xchange_protocol::{Code, TaskSpec};
use xchange_runtime::{AgentHandle, Contractor, ExecContext, Execution};

use super::text;

/// The capability of whole-document analysis (done by coordinators).
pub(crate) const ANALYZE: &str = "analyze-document";
/// The three per-paragraph capabilities.
pub(crate) const WORK: [&str; 3] = ["word-count", "word-frequencies", "sentiment"];

/// The JSON Schema each worker's result must match (checked by the manager's runtime).
pub(crate) fn output_schema(capability: &str) -> Value {
    match capability {
        "word-count" => json!({
            "type": "object", "required": ["words"],
            "properties": {"words": {"type": "integer", "minimum": 0}}
        }),
        "word-frequencies" => json!({
            "type": "object", "required": ["frequencies"],
            "properties": {"frequencies": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}}
        }),
        _ => json!({
            "type": "object", "required": ["score", "positive", "negative"],
            "properties": {
                "score": {"type": "number", "minimum": -1, "maximum": 1},
                "positive": {"type": "integer"}, "negative": {"type": "integer"}
            }
        }),
    }
}

/// Splits a document into paragraphs, subcontracts the three analyses of each, and merges.
pub(crate) struct Coordinator;

impl Contractor for Coordinator {
    fn execute(&self, ctx: ExecContext, spec: Arc<TaskSpec>) -> Execution {
        Execution::pending(async move {
            let text = spec.input.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
            let paragraphs = text::paragraphs(&text);
            let mut specs = Vec::new();
            for p in &paragraphs {
                for capability in WORK {
                    let mut sub = TaskSpec::new(capability, json!({ "text": p }));
                    sub.size = (text::word_count(p) as f64 / 40.0).max(0.1);
                    sub.output_schema = Some(output_schema(capability));
                    sub.priority = spec.priority;
                    sub.retry_limit = 5;
                    specs.push(sub);
                }
            }
            let results = ctx.subcontract_all(specs).await;
            let mut words = 0;
            let mut freq: BTreeMap<String, u64> = BTreeMap::new();
            let (mut weighted, mut weight) = (0.0, 0.0);
            for (i, r) in results.into_iter().enumerate() {
                let r = match r {
                    Ok(v) => v,
                    Err(e) => {
                        return ExecOutcome::Failed {
                            code: Code::ExecutionFailed,
                            reason: format!("a subtask failed: {e}"),
                            retryable: true,
                        };
                    }
                };
                let paragraph_words = text::word_count(paragraphs[i / 3]) as f64;
                match i % 3 {
                    0 => words += r["words"].as_u64().unwrap_or(0),
                    1 => {
                        for (w, n) in r["frequencies"].as_object().into_iter().flatten() {
                            *freq.entry(w.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
                        }
                    }
                    _ => {
                        weighted += r["score"].as_f64().unwrap_or(0.0) * paragraph_words;
                        weight += paragraph_words;
                    }
                }
            }
            let most_common = text::most_common(&freq);
            ExecOutcome::Done(Arc::new(json!({
                "title": spec.input.get("title").cloned().unwrap_or(Value::Null),
                "paragraphs": paragraphs.len(),
                "words": words,
                "most_common_word": most_common.as_ref().map(|(w, _)| w.clone()),
                "most_common_count": most_common.map(|(_, n)| n),
                "sentiment": if weight > 0.0 { weighted / weight } else { 0.0 },
            })))
        })
    }
}

/// How a flaky worker crashes: with probability `rate` per execution, it stops answering
/// for `downtime`, forgetting every contract, then comes back with a new incarnation.
pub(crate) struct Crashes {
    pub(crate) rate: f64,
    pub(crate) downtime: Duration,
    pub(crate) rng: Mutex<DetRng>,
    pub(crate) handle: OnceLock<AgentHandle>,
    pub(crate) count: std::sync::atomic::AtomicU64,
}

/// A worker for one of [`WORK`].
pub(crate) struct Worker {
    pub(crate) capability: &'static str,
    /// Units of work per second (a unit is about 40 words).
    pub(crate) speed: f64,
    pub(crate) crashes: Option<Crashes>,
    pub(crate) executions: std::sync::atomic::AtomicU64,
}

impl Worker {
    fn crash_now(&self) -> bool {
        let Some(c) = &self.crashes else { return false };
        let draw = c.rng.lock().expect("crash rng lock").next_u64() as f64 / u64::MAX as f64;
        if draw >= c.rate {
            return false;
        }
        let Some(handle) = c.handle.get().cloned() else { return false };
        c.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let downtime = c.downtime;
        tokio::spawn(async move {
            let _ = handle.kill().await;
            tokio::time::sleep(downtime).await;
            let _ = handle.restart().await;
        });
        true
    }

    fn analyse(&self, text: &str) -> Value {
        match self.capability {
            "word-count" => json!({ "words": text::word_count(text) }),
            "word-frequencies" => json!({ "frequencies": text::frequencies(text) }),
            _ => {
                let (score, positive, negative) = text::sentiment(text);
                json!({ "score": score, "positive": positive, "negative": negative })
            }
        }
    }
}

impl Contractor for Worker {
    fn execute(&self, _ctx: ExecContext, spec: Arc<TaskSpec>) -> Execution {
        self.executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.crash_now() {
            // The agent is being killed: this execution never finishes.
            return Execution::pending(std::future::pending());
        }
        let text = spec.input.get("text").and_then(Value::as_str).unwrap_or_default();
        let result = self.analyse(text);
        let busy = Duration::from_secs_f64(0.001 + spec.size / self.speed / 100.0);
        Execution::pending(async move {
            tokio::time::sleep(busy).await;
            ExecOutcome::Done(Arc::new(result))
        })
    }
}

/// Recomputes a document report from the job's own input: the root job's verifier.
pub(crate) fn verify_report(spec: &TaskSpec, result: &Value) -> Result<(), String> {
    let text = spec.input.get("text").and_then(Value::as_str).unwrap_or_default();
    let paragraphs = text::paragraphs(text).len() as u64;
    let words = text::word_count(text);
    if result["paragraphs"].as_u64() != Some(paragraphs) {
        return Err(format!(
            "the report counts {} paragraphs, the document has {paragraphs}",
            result["paragraphs"]
        ));
    }
    if result["words"].as_u64() != Some(words) {
        return Err(format!("the report counts {} words, the document has {words}", result["words"]));
    }
    Ok(())
}
