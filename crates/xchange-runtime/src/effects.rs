//! Applying an engine's effects: the only place where engines touch the world.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use xchange_core::{Effect, EventKind, ExecOutcome, Input, Refused};
use xchange_protocol::{AgentId, Body, Code, Envelope, Nonce, TaskId, TaskSpec, TaskState};

use crate::contractor::{AgentPort, ExecContext, ExecFuture, Execution};
use crate::error::TaskFailure;
use crate::shard::{Command, Shard, Work};

impl Shard {
    /// Applies one effect of agent `token`. `submitting` is the task the input being
    /// handled submitted, if it was a submission.
    pub(crate) fn apply(&mut self, token: u32, effect: Effect, submitting: Option<TaskId>) {
        match effect {
            // Barriers: no store holds writes back yet, so every write is committed by the
            // time the effects after it are applied.
            Effect::Send { msg, barrier: _ } => self.send(token, msg),
            Effect::Persist { token: write, record } => {
                if let Some(p) = &self.shared.persister {
                    p.persist(self.slots[token as usize].id, write, *record);
                }
            }
            Effect::Emit(event) => {
                let slot = &mut self.slots[token as usize];
                if let EventKind::Finished { state, code, reason, result } = &event.kind
                    && let Some(waiter) = slot.waiters.remove(&event.task())
                {
                    let outcome = match (state, result) {
                        (TaskState::Completed, Some(result)) => Ok(result.clone()),
                        _ => Err(TaskFailure::new(*state, *code, reason.clone())),
                    };
                    let _ = waiter.send(outcome);
                }
                // Costs nothing unless someone listens.
                if self.shared.listeners.load(Relaxed) > 0 {
                    self.events_out.push((slot.id, event));
                }
            }
            Effect::StartExecution { task, epoch, spec, manager } => {
                self.execute(token, task, epoch, spec, manager);
            }
            Effect::AbortExecution { task, epoch } => {
                if let Some(handle) = self.slots[token as usize].running.remove(&(task, epoch)) {
                    handle.abort();
                    self.stats().aborted.fetch_add(1, Relaxed);
                }
            }
            Effect::Evaluate { cfp } => {
                let decision = match &cfp.body {
                    Body::Cfp(body) => {
                        let behavior = &self.slots[token as usize].behavior;
                        catch_unwind(AssertUnwindSafe(|| behavior.bid(&body.task)))
                            .unwrap_or_else(|_| Err((Code::Internal, "bidding panicked".into())))
                    }
                    _ => Err((Code::Internal, "asked to evaluate a message that is not a cfp".into())),
                };
                self.queue.push_back(Work::Input(token, Input::BidDecided { cfp, decision }, None));
            }
            Effect::Verify { task, epoch, spec, result } => {
                let verdict = self.schemas.assess(&self.shared.verifiers, &spec, &result);
                let (accepted, reason) = match verdict {
                    Ok(()) => (true, String::new()),
                    Err(reason) => (false, reason),
                };
                self.queue.push_back(Work::Input(
                    token,
                    Input::Verdict { task, epoch, accepted, reason },
                    None,
                ));
            }
            Effect::Refused { about, code, reason } => {
                self.stats().refused.fetch_add(1, Relaxed);
                let slot = &mut self.slots[token as usize];
                tracing::debug!(agent = %slot.id, ?about, code = code.number(), %reason, "engine refused an input");
                if let Refused::Command { task: Some(task) } = about
                    && submitting == Some(task)
                    && let Some(waiter) = slot.waiters.remove(&task)
                {
                    let _ = waiter.send(Err(TaskFailure::new(TaskState::Failed, code, reason)));
                }
            }
        }
    }

    fn send(&mut self, token: u32, msg: Arc<Envelope>) {
        // The key is looked at only when signing is on: it lies outside the slot's hot lines.
        let key = if self.shared.sign && msg.kind().must_be_signed() {
            self.slots[token as usize].key.as_deref()
        } else {
            None
        };
        let msg = match key {
            Some(key) => {
                let mut signed = (*msg).clone();
                let nonce = (self.rng.next_u64(), self.rng.next_u64());
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&nonce.0.to_le_bytes());
                bytes[8..].copy_from_slice(&nonce.1.to_le_bytes());
                key.sign(&mut signed, Nonce(bytes));
                Arc::new(signed)
            }
            _ => msg,
        };
        if let Err(e) = self.shared.bus.publish(msg) {
            self.stats().publish_errors.fetch_add(1, Relaxed);
            tracing::debug!(error = %e, "publish failed");
        }
    }

    fn execute(&mut self, token: u32, task: TaskId, epoch: u32, spec: Arc<TaskSpec>, manager: AgentId) {
        let slot = &self.slots[token as usize];
        let ctx = ExecContext {
            task,
            epoch,
            manager,
            agent: slot.id,
            incarnation: slot.incarnation,
            port: AgentPort { tx: self.tx.clone(), token },
        };
        let incarnation = slot.incarnation;
        let behavior = slot.behavior.clone();
        // A panicking behaviour must not take the shard's other agents down with it.
        let execution = catch_unwind(AssertUnwindSafe(|| behavior.execute(ctx, spec)))
            .unwrap_or_else(|panic| Execution::Ready(panicked(&*panic)));
        match execution {
            Execution::Ready(outcome) => {
                self.stats().executions_inline.fetch_add(1, Relaxed);
                let input = Input::ExecutionFinished { task, epoch, outcome };
                self.queue.push_back(Work::Input(token, input, None));
            }
            Execution::Pending(fut) => {
                self.stats().executions_spawned.fetch_add(1, Relaxed);
                let (tx, guard) = (self.tx.clone(), self.guard.clone());
                let handle = tokio::spawn(async move {
                    let _guard = guard;
                    let outcome = CatchUnwind(fut).await;
                    let _ = tx.send(Command::ExecDone { token, incarnation, task, epoch, outcome }.into());
                });
                self.slots[token as usize].running.insert((task, epoch), handle.abort_handle());
                // An execution that takes time tells its manager it has started (a progress
                // of 0): the job shows `running` at once, and the manager knows which of its
                // contracts were executing when a contractor is lost. Inline executions
                // report their result instead, in the same turn.
                let started = Input::ExecutionProgress { task, epoch, fraction: 0.0 };
                self.queue.push_back(Work::Input(token, started, None));
            }
        }
    }
}

/// Turns a panicking execution into a failed one, so that its contract ends instead of
/// being renewed by heartbeats forever.
struct CatchUnwind(ExecFuture);

impl Future for CatchUnwind {
    type Output = ExecOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExecOutcome> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(panicked(&*panic)),
        }
    }
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> ExecOutcome {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ExecOutcome::Failed {
        code: Code::ExecutionFailed,
        reason: format!("the execution panicked: {what}"),
        retryable: false,
    }
}
