//! A contractor that runs a program: any executable becomes an agent.
//!
//! Each execution runs `sh -c COMMAND` with the task's input as JSON on stdin (closed after
//! it), and reads stdout to its end as the JSON result. A non-zero exit, a signal, output
//! that is not JSON or too large, and a timeout are failure reports whose reason names the
//! exit status and ends with the tail of stderr.
//!
//! The program learns which contract it works under from its environment:
//! `XCHANGE_TASK_ID`, `XCHANGE_EPOCH` (a task placed again runs under a higher epoch),
//! `XCHANGE_AGENT_ID` (this contractor) and `XCHANGE_MANAGER_ID`; so a program that keeps
//! its own log of executions can tell a retry from a first run.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use xchange_core::ExecOutcome;
use xchange_protocol::{Code, TaskSpec};

use crate::contractor::{Contractor, ExecContext, Execution};

/// Runs a shell command per execution (see the module docs).
#[derive(Debug, Clone)]
pub struct ExecContractor {
    command: Arc<str>,
    timeout: Duration,
    max_output: usize,
    stderr_tail: usize,
}

impl ExecContractor {
    /// Runs `command` with `sh -c`; 5 minutes at most, 16 MiB of output at most.
    pub fn new(command: impl Into<Arc<str>>) -> Self {
        Self {
            command: command.into(),
            timeout: Duration::from_secs(300),
            max_output: 16 << 20,
            stderr_tail: 2048,
        }
    }

    /// How long one execution may take before it is killed and reported failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most bytes of stdout read; more is a failure (the result must fit in a message).
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// The command run.
    pub fn command(&self) -> &str {
        &self.command
    }

    async fn run(self, contract: Vec<(&'static str, String)>, input: Value) -> ExecOutcome {
        let timeout = self.timeout;
        // Dropping the future (a timeout here, or an abort by the shard when the contract
        // is cancelled or moves) drops the child, which `kill_on_drop` kills.
        match tokio::time::timeout(timeout, self.run_to_end(contract, input)).await {
            Ok(outcome) => outcome,
            Err(_) => failed(
                format!("the command timed out after {} s and was killed", timeout.as_secs_f64()),
                true,
            ),
        }
    }

    async fn run_to_end(&self, contract: Vec<(&'static str, String)>, input: Value) -> ExecOutcome {
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(&*self.command)
            .envs(contract)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return failed(format!("cannot start sh: {e}"), false),
        };
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return failed("the child's pipes were not set up".into(), false);
        };
        let bytes = serde_json::to_vec(&input).expect("a json value always serializes");
        // Input is written while output is read: a program that answers before it has read
        // everything must not block on a full pipe.
        let write = async move {
            // A program that does not read its input closes the pipe early: not an error.
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let (status, (), out, err) = tokio::join!(
            child.wait(),
            write,
            read_capped(stdout, self.max_output),
            read_tail(stderr, self.stderr_tail)
        );
        let tail = String::from_utf8_lossy(&err);
        let tail = tail.trim();
        let with_stderr = |reason: String| {
            if tail.is_empty() { reason } else { format!("{reason}; stderr: {tail}") }
        };
        let status = match status {
            Ok(status) => status,
            Err(e) => return failed(with_stderr(format!("waiting for the command failed: {e}")), true),
        };
        // Checked first: a program whose output was cut off may die of the closed pipe.
        let Some(out) = out else {
            return failed(with_stderr(format!("the output exceeds {} bytes", self.max_output)), false);
        };
        if !status.success() {
            return failed(with_stderr(format!("the command ended with {}", describe(status))), true);
        }
        match serde_json::from_slice::<Value>(&out) {
            Ok(result) => ExecOutcome::Done(Arc::new(result)),
            Err(e) => {
                let head: String = String::from_utf8_lossy(&out).chars().take(80).collect();
                failed(with_stderr(format!("the output is not json ({e}): {head:?}")), false)
            }
        }
    }
}

impl Contractor for ExecContractor {
    fn execute(&self, ctx: ExecContext, spec: Arc<TaskSpec>) -> Execution {
        let contract = vec![
            ("XCHANGE_TASK_ID", ctx.task.to_string()),
            ("XCHANGE_EPOCH", ctx.epoch.to_string()),
            ("XCHANGE_AGENT_ID", ctx.agent.to_string()),
            ("XCHANGE_MANAGER_ID", ctx.manager.to_string()),
        ];
        Execution::pending(self.clone().run(contract, spec.input.clone()))
    }
}

fn failed(reason: String, retryable: bool) -> ExecOutcome {
    ExecOutcome::Failed { code: Code::ExecutionFailed, reason, retryable }
}

/// "exit status 3" or "signal 9": the words of `ExitStatus`'s display, lower case.
fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    status.code().map_or_else(|| "an unknown status".into(), |c| format!("exit status {c}"))
}

/// All of `r`, or `None` if it holds more than `max` bytes.
async fn read_capped(r: impl AsyncRead + Unpin, max: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut limited = r.take(max as u64 + 1);
    // A read error ends the output where it is; the exit status tells what went wrong.
    let _ = limited.read_to_end(&mut buf).await;
    (buf.len() <= max).then_some(buf)
}

/// The last `keep` bytes of `r` (stderr can be long; its end says why a program failed).
async fn read_tail(mut r: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = r.read(&mut chunk).await {
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * keep {
            tail.drain(..tail.len() - keep);
        }
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    tail
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    async fn run(command: &str, input: Value) -> ExecOutcome {
        ExecContractor::new(command).timeout(Duration::from_secs(20)).run(Vec::new(), input).await
    }

    #[track_caller]
    fn reason(outcome: ExecOutcome) -> String {
        match outcome {
            ExecOutcome::Failed { code, reason, .. } => {
                assert_eq!(code, Code::ExecutionFailed);
                reason
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[track_caller]
    fn result(outcome: ExecOutcome) -> Value {
        match outcome {
            ExecOutcome::Done(v) => (*v).clone(),
            other => panic!("expected a result, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn cat_returns_its_input() {
        let input = json!({ "text": "héllo", "n": [1, 2.5, null] });
        assert_eq!(result(run("cat", input.clone()).await), input);
    }

    #[tokio::test]
    async fn a_transforming_program_returns_its_output() {
        assert_eq!(result(run("tr a-z A-Z", json!({ "text": "hello" })).await), json!({ "TEXT": "HELLO" }));
    }

    #[tokio::test]
    async fn the_program_sees_its_contract_in_its_environment() {
        let contract = vec![("XCHANGE_TASK_ID", "t-1".to_owned()), ("XCHANGE_EPOCH", "3".to_owned())];
        let command = r#"printf '{"task": "%s", "epoch": %s}' "$XCHANGE_TASK_ID" "$XCHANGE_EPOCH""#;
        let outcome = ExecContractor::new(command).run(contract, json!(1)).await;
        assert_eq!(result(outcome), json!({"task": "t-1", "epoch": 3}));
    }

    #[tokio::test]
    async fn large_input_and_output_do_not_deadlock() {
        // Far more than a pipe buffer both ways.
        let input = json!("x".repeat(1 << 20));
        assert_eq!(result(run("cat", input.clone()).await), input);
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_status_and_stderr() {
        let r = reason(run("echo 'no such file' >&2; exit 3", json!(1)).await);
        assert!(r.contains("exit status 3") && r.ends_with("stderr: no such file"), "{r}");
        let r = reason(run("false", json!(1)).await);
        assert!(r.contains("exit status 1") && !r.contains("stderr"), "{r}");
    }

    #[tokio::test]
    async fn a_signal_fails_with_its_number() {
        let r = reason(run("kill -9 $$", json!(1)).await);
        assert!(r.contains("signal 9"), "{r}");
    }

    #[tokio::test]
    async fn output_that_is_not_json_fails() {
        let r = reason(run("echo notjson", json!(1)).await);
        assert!(r.contains("not json") && r.contains("notjson"), "{r}");
        let r = reason(run("true", json!(1)).await);
        assert!(r.contains("not json"), "empty output: {r}");
    }

    #[tokio::test]
    async fn output_over_the_cap_fails() {
        let outcome = ExecContractor::new("cat").max_output(10).run(Vec::new(), json!("a long string")).await;
        assert!(reason(outcome).contains("exceeds 10 bytes"));
        // Endless output: the program dies of the closed pipe, and the cap is the reason.
        let outcome = ExecContractor::new("yes").max_output(10).run(Vec::new(), json!(1)).await;
        let r = reason(outcome);
        assert!(r.contains("exceeds 10 bytes"), "{r}");
    }

    #[tokio::test]
    async fn a_slow_program_is_killed_at_the_timeout() {
        let started = std::time::Instant::now();
        let outcome = ExecContractor::new("sleep 30")
            .timeout(Duration::from_millis(200))
            .run(Vec::new(), json!(1))
            .await;
        assert!(reason(outcome).contains("timed out"));
        assert!(started.elapsed() < Duration::from_secs(20), "the child was waited for");
    }

    #[tokio::test]
    async fn only_the_tail_of_stderr_is_kept() {
        let r = reason(
            run("i=0; while [ $i -lt 3000 ]; do echo line$i >&2; i=$((i+1)); done; exit 1", json!(1)).await,
        );
        assert!(r.ends_with("line2999") && !r.contains("line0\n"), "{}", &r[r.len() - 40..]);
        assert!(r.len() < 2200, "{}", r.len());
    }

    #[tokio::test]
    async fn an_aborted_execution_kills_its_child() {
        let dir = std::env::temp_dir().join(format!("xchange-exec-{}", std::process::id()));
        let marker = dir.with_extension("done");
        let _ = std::fs::remove_file(&marker);
        let command = format!("sleep 1; touch {}", marker.display());
        let task = tokio::spawn(ExecContractor::new(command).run(Vec::new(), json!(1)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        task.abort();
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the killed command still ran to its end");
    }
}
