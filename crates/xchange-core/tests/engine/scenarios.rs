//! Scripted scenarios: one behaviour each, with exact expectations.

use std::sync::Arc;

use serde_json::json;
use xchange_core::{Announce, Effect, EngineConfig, EventKind, Input, Submit};
use xchange_protocol::{
    AgentId, Body, Budget, Code, ContractRef, Envelope, HeartbeatBody, InformBody, Recipient, TaskState,
    Version,
};

use crate::world::{Behaviour, World, fast_config, profile};

const QUICK: Behaviour = Behaviour { exec_time: 1_000, fail_rate: 0.0 };
const SECOND: u64 = 1_000_000;

fn world_with(cfg: EngineConfig, contractors: u64, behaviour: Behaviour) -> (World, AgentId) {
    let mut w = World::new(cfg, 42);
    for i in 0..contractors {
        w.add_contractor(i, profile("echo", 2), behaviour);
    }
    let m = w.add_manager(0);
    (w, m)
}

fn outcome(w: &World, task: xchange_protocol::TaskId) -> (TaskState, Code) {
    let f = w.finished();
    let list = f.get(&task).expect("task finished");
    assert_eq!(list.len(), 1, "exactly one terminal state: {list:?}");
    list[0]
}

#[test]
fn sampled_round_completes_with_eight_messages() {
    let (mut w, m) = world_with(fast_config(), 5, QUICK);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t), (TaskState::Completed, Code::Processed));
    // cfp x2, propose x2, accept, reject, inform, ack
    assert_eq!(w.delivered, 8);
    assert_eq!(w.counter(|c| c.contracts), 1);
    w.check().unwrap();
}

#[test]
fn broadcast_round_costs_three_n_plus_two_deliveries() {
    let cfg = EngineConfig { announce: Announce::Broadcast, ..fast_config() };
    let (mut w, m) = world_with(cfg, 4, QUICK);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t).0, TaskState::Completed);
    assert_eq!(w.delivered, 3 * 4 + 2);
    w.check().unwrap();
}

#[test]
fn directed_award_skips_the_call_for_proposals() {
    let (mut w, m) = world_with(fast_config(), 3, QUICK);
    let target = World::agent_id(2, 1);
    let t = w.submit(m, Submit { contractor: Some(target), ..Submit::new(World::spec("echo")) }).unwrap();
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t).0, TaskState::Completed);
    assert_eq!(w.executions.len(), 1);
    assert_eq!(w.executions[0].0, target);
    assert_eq!(w.delivered, 3, "accept, inform, ack");
}

#[test]
fn a_crashed_contractor_loses_its_lease_and_the_task_moves_without_using_a_retry() {
    let slow = Behaviour { exec_time: 200_000, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 3, slow);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 20_000);
    let holder = w.executions.first().expect("started").0;
    w.kill(holder);
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t).0, TaskState::Completed);
    assert!(w.counter(|c| c.lease_expiries) >= 1);
    assert!(w.counter(|c| c.reassignments) >= 1);
    assert_eq!(w.counter(|c| c.retries), 0, "a fault is not a retry");
    let done = w.engines[&m].finished_task(&t).unwrap();
    assert_eq!(done.retries, 0);
    assert_ne!(done.contractor, Some(holder));
    w.check().unwrap();
}

#[test]
fn failing_executions_stop_at_the_retry_limit() {
    let failing = Behaviour { exec_time: 1_000, fail_rate: 1.0 };
    let (mut w, m) = world_with(fast_config(), 4, failing);
    let mut spec = World::spec("echo");
    spec.retry_limit = 2;
    let t = w.submit(m, Submit::new(spec)).unwrap();
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t), (TaskState::Failed, Code::RetryLimit));
    assert_eq!(w.executions.len(), 3, "one execution and two retries");
    w.check().unwrap();
}

#[test]
fn a_rejected_result_is_retried_elsewhere_and_counts_as_a_retry() {
    let (mut w, m) = world_with(fast_config(), 3, QUICK);
    w.reject_rate = 1.0;
    let mut spec = World::spec("echo");
    spec.output_schema = Some(json!({"type": "object"}));
    spec.retry_limit = 1;
    let t = w.submit(m, Submit::new(spec)).unwrap();
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t), (TaskState::Failed, Code::RetryLimit));
    assert_eq!(w.counter(|c| c.rejected_results), 2);
    assert_ne!(w.executions[0].0, w.executions[1].0, "a rejected result moves to another contractor");
}

#[test]
fn an_exhausted_budget_ends_the_task_with_its_own_code() {
    let slow = Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 3, slow);
    let budget = Budget { retries: 1, ..fast_config().default_budget };
    let t = w.submit(m, Submit { budget: Some(budget), ..Submit::new(World::spec("echo")) }).unwrap();
    // Kill whoever holds the contract until the budget gives out.
    for _ in 0..50 {
        w.run_until(w.now + 20_000);
        if let Some(holder) = w.engines[&m].task(&t).and_then(|r| r.contractor) {
            w.kill(holder);
        }
    }
    assert_eq!(outcome(&w, t), (TaskState::Failed, Code::BudgetExhausted));
    w.check().unwrap();
}

#[test]
fn a_contractor_subcontracts_and_the_subtask_result_comes_back() {
    let mut w = World::new(fast_config(), 7);
    let coordinator = w.add_contractor(0, profile("doc", 1), Behaviour { exec_time: 50_000, fail_rate: 0.0 });
    w.add_contractor(1, profile("para", 2), QUICK);
    w.add_contractor(2, profile("para", 2), QUICK);
    w.make_manager(coordinator);
    let m = w.add_manager(0);
    let root = w.submit(m, Submit::new(World::spec("doc"))).unwrap();
    w.run_until(w.now + 10_000);
    assert_eq!(w.executions.len(), 1, "the coordinator is executing");
    let sub = w.submit(coordinator, Submit::new(World::spec("para")).under(root)).unwrap();
    let rec = w.engines[&coordinator].task(&sub).unwrap().clone();
    assert_eq!(rec.hops, 2);
    assert_eq!(rec.lineage.len(), 2);
    assert_eq!(rec.lineage[1], coordinator);
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, sub).0, TaskState::Completed);
    assert_eq!(outcome(&w, root).0, TaskState::Completed);
    assert_eq!(w.counter(|c| c.subcontracts), 1);
    w.check().unwrap();
}

#[test]
fn subtasks_past_the_hop_limit_or_the_budget_are_refused() {
    let cfg = EngineConfig { max_hops: 1, ..fast_config() };
    let mut w = World::new(cfg, 7);
    let coordinator = w.add_contractor(0, profile("doc", 1), Behaviour { exec_time: 50_000, fail_rate: 0.0 });
    let m = w.add_manager(0);
    let root = w.submit(m, Submit::new(World::spec("doc"))).unwrap();
    w.run_until(w.now + 10_000);
    assert!(w.submit(coordinator, Submit::new(World::spec("para")).under(root)).is_none());
    assert_eq!(w.refused.last().unwrap().1, Code::HopLimit);
    // A parent the coordinator does not hold.
    assert!(
        w.submit(coordinator, Submit::new(World::spec("para")).under(xchange_protocol::TaskId::NIL))
            .is_none()
    );
    assert_eq!(w.refused.last().unwrap().1, Code::NotFound);
}

#[test]
fn cancelling_a_root_cancels_its_subcontracts() {
    let mut w = World::new(fast_config(), 9);
    let coordinator =
        w.add_contractor(0, profile("doc", 1), Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 });
    let worker =
        w.add_contractor(1, profile("para", 1), Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 });
    w.make_manager(coordinator);
    let m = w.add_manager(0);
    let root = w.submit(m, Submit::new(World::spec("doc"))).unwrap();
    w.run_until(w.now + 10_000);
    let sub = w.submit(coordinator, Submit::new(World::spec("para")).under(root)).unwrap();
    w.run_until(w.now + 20_000);
    assert_eq!(w.engines[&worker].held_contracts(), 1);
    w.input(m, Input::Cancel { task: root, reason: "user asked".into() });
    w.run_until(w.now + SECOND);
    assert_eq!(outcome(&w, root).0, TaskState::Cancelled);
    assert_eq!(outcome(&w, sub).0, TaskState::Cancelled);
    assert_eq!(w.engines[&worker].held_contracts(), 0);
    assert_eq!(w.engines[&coordinator].held_contracts(), 0);
}

#[test]
fn urgent_work_is_announced_first_when_agents_are_scarce() {
    let mut w = World::new(fast_config(), 3);
    let m = w.add_manager(0);
    let mut low = World::spec("echo");
    low.priority = 1;
    let mut high = World::spec("echo");
    high.priority = 90;
    let lo = w.submit(m, Submit::new(low)).unwrap();
    let hi = w.submit(m, Submit::new(high)).unwrap();
    w.run_until(w.now + 5_000);
    w.add_contractor(0, profile("echo", 1), Behaviour { exec_time: 100_000, fail_rate: 0.0 });
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(w.executions[0].1, hi);
    assert_eq!(w.executions[1].1, lo);
}

#[test]
fn a_manager_restored_from_its_records_finishes_its_tasks() {
    let slow = Behaviour { exec_time: 100_000, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 3, slow);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 20_000);
    assert!(matches!(w.engines[&m].task(&t).unwrap().state, TaskState::Awarded | TaskState::Running));
    w.kill(m);
    w.run_until(w.now + 30_000);
    w.revive(m);
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t).0, TaskState::Completed);
    w.check().unwrap();
}

#[test]
fn a_hand_back_moves_the_task_at_no_retry_cost() {
    let slow = Behaviour { exec_time: 100_000, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 3, slow);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 20_000);
    let holder = w.executions[0].0;
    w.input(holder, Input::Decommit { task: t, reason: "changed my mind".into() });
    w.run_until(w.now + 10 * SECOND);
    assert_eq!(outcome(&w, t).0, TaskState::Completed);
    assert_eq!(w.engines[&m].finished_task(&t).unwrap().retries, 0);
    assert_ne!(w.executions.last().unwrap().0, holder);
}

fn forged(
    from: AgentId,
    to: AgentId,
    body: Body,
    w: &World,
    task: xchange_protocol::TaskId,
    epoch: u32,
) -> Arc<Envelope> {
    Arc::new(Envelope {
        aixp: Version::V1_0,
        id: xchange_protocol::MsgId::new_v7(w.now / 1000, [7; 10]),
        body,
        from,
        to: Recipient::Agent(to),
        conversation: Some(task),
        epoch,
        in_reply_to: None,
        reply_by: None,
        expires_at: w.now / 1000 + 60_000,
        hops: 1,
        max_hops: 8,
        lineage: Arc::from(vec![to]),
        nonce: None,
        sig: None,
    })
}

#[test]
fn stale_expired_and_looping_messages_are_refused_and_change_nothing() {
    let slow = Behaviour { exec_time: 100_000, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 3, slow);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    w.run_until(w.now + 20_000);
    let rec = w.engines[&m].task(&t).unwrap().clone();
    let holder = rec.contractor.unwrap();
    let before = format!("{:?}", w.engines[&m].task(&t));

    // A report from an older epoch.
    let inform = Body::Inform(InformBody { result: Arc::new(json!(1)), spent: Budget::ZERO });
    let stale = forged(holder, m, inform.clone(), &w, t, rec.epoch - 1);
    let stale_before = w.engines[&m].counters().stale_epoch;
    let effects: Vec<Effect> = w.engines.get_mut(&m).unwrap().handle(w.now, Input::Message(stale)).collect();
    assert!(effects.iter().any(|e| matches!(e, Effect::Refused { code: Code::StaleEpoch, .. })));
    assert_eq!(w.engines[&m].counters().stale_epoch, stale_before + 1);

    // A report from someone who holds no contract: forbidden, not merely late.
    let stranger = AgentId::from_index(9, 9);
    let forged_report = forged(stranger, m, inform.clone(), &w, t, rec.epoch);
    let effects: Vec<Effect> =
        w.engines.get_mut(&m).unwrap().handle(w.now, Input::Message(forged_report)).collect();
    assert!(effects.iter().any(|e| matches!(e, Effect::Refused { code: Code::Forbidden, .. })));

    // An expired one.
    let mut expired = (*forged(holder, m, inform, &w, t, rec.epoch)).clone();
    expired.expires_at = w.now / 1000 - 1;
    let effects: Vec<Effect> =
        w.engines.get_mut(&m).unwrap().handle(w.now, Input::Message(Arc::new(expired))).collect();
    assert!(effects.iter().any(|e| matches!(e, Effect::Refused { code: Code::Expired, .. })));
    assert_eq!(before, format!("{:?}", w.engines[&m].task(&t)), "refused messages change nothing");

    // A heartbeat from an older incarnation.
    let hb = Body::Heartbeat(HeartbeatBody {
        incarnation: 0,
        contracts: vec![ContractRef { task: t, epoch: rec.epoch, started: true }],
    });
    let hb_msg = forged(holder, m, hb, &w, t, 0);
    let effects: Vec<Effect> = w.engines.get_mut(&m).unwrap().handle(w.now, Input::Message(hb_msg)).collect();
    assert!(effects.iter().any(|e| matches!(e, Effect::Refused { code: Code::StaleEpoch, .. })));

    // A call for proposals whose lineage already contains the contractor: a loop.
    let contractor = World::agent_id(2, 0);
    let held_before = w.engines[&contractor].held_contracts();
    let cfp = Body::Cfp(xchange_protocol::CfpBody {
        task: Arc::new(World::spec("echo")),
        budget: Budget::ZERO,
        late: false,
    });
    let mut looping = (*forged(m, contractor, cfp, &w, t, 0)).clone();
    looping.lineage = Arc::from(vec![m, contractor]);
    looping.hops = 2;
    let effects: Vec<Effect> =
        w.engines.get_mut(&contractor).unwrap().handle(w.now, Input::Message(Arc::new(looping))).collect();
    let refusal = effects.iter().find_map(|e| match e {
        Effect::Send { msg, .. } => match &msg.body {
            Body::Refuse(r) => Some(r.code),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(refusal, Some(Code::LoopDetected));
    assert_eq!(w.engines[&contractor].held_contracts(), held_before);
    w.check().unwrap();
}

#[test]
fn invalid_submissions_are_refused_with_their_code() {
    let (mut w, m) = world_with(fast_config(), 1, QUICK);
    let mut bad = World::spec("echo");
    bad.capability = "has space".into();
    assert!(w.submit(m, Submit::new(bad)).is_none());
    assert_eq!(w.refused.last().unwrap().1, Code::SchemaInvalid);
    let mut late = World::spec("echo");
    late.deadline = Some(w.now / 1000 - 5);
    assert!(w.submit(m, Submit::new(late)).is_none());
    assert_eq!(w.refused.last().unwrap().1, Code::DeadlineExceeded);
    let t = w.submit(m, Submit::new(World::spec("echo"))).unwrap();
    assert!(w.submit(m, Submit { task: Some(t), ..Submit::new(World::spec("echo")) }).is_none());
    assert_eq!(w.refused.last().unwrap().1, Code::Conflict);
    w.input(m, Input::Cancel { task: xchange_protocol::TaskId::NIL, reason: String::new() });
    assert_eq!(w.refused.last().unwrap().1, Code::NotFound);
}

#[test]
fn a_deadline_expires_the_task() {
    let slow = Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 };
    let (mut w, m) = world_with(fast_config(), 2, slow);
    let mut spec = World::spec("echo");
    spec.deadline = Some(w.now / 1000 + 100);
    let t = w.submit(m, Submit::new(spec)).unwrap();
    w.run_until(w.now + SECOND);
    assert_eq!(outcome(&w, t), (TaskState::Expired, Code::DeadlineExceeded));
}

#[test]
fn no_eligible_contractor_fails_after_the_timeout() {
    let mut w = World::new(fast_config(), 1);
    let m = w.add_manager(0);
    let t = w.submit(m, Submit::new(World::spec("nobody-does-this"))).unwrap();
    w.run_until(w.now + 12 * SECOND);
    assert_eq!(outcome(&w, t), (TaskState::Failed, Code::NoEligibleContractor));
    let _ = EventKind::Started { epoch: 0 };
}

#[test]
fn siblings_submitted_with_shares_split_the_budget_evenly_and_all_run() {
    let mut w = World::new(fast_config(), 11);
    let coordinator =
        w.add_contractor(0, profile("doc", 1), Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 });
    w.add_contractor(1, profile("para", 8), QUICK);
    w.make_manager(coordinator);
    let m = w.add_manager(0);
    let root = w.submit(m, Submit::new(World::spec("doc"))).unwrap();
    w.run_until(w.now + 10_000);
    let n = 15u32;
    let subs: Vec<_> = (0..n)
        .map(|i| {
            let submit = Submit { share: n - i, ..Submit::new(World::spec("para")).under(root) };
            w.submit(coordinator, submit).expect("a share of the budget is enough")
        })
        .collect();
    let budgets: Vec<u32> =
        subs.iter().map(|t| w.engines[&coordinator].task(t).unwrap().budget.messages).collect();
    let (lo, hi) = (budgets.iter().min().unwrap(), budgets.iter().max().unwrap());
    assert!(hi - lo <= hi / 10 + 2, "even split: {budgets:?}");
    w.run_until(w.now + SECOND);
    for t in &subs {
        assert_eq!(outcome(&w, *t).0, TaskState::Completed);
    }
}

#[test]
fn a_lost_partition_or_a_fenced_write_lets_tasks_go_without_a_word() {
    let slow = Behaviour { exec_time: 10 * SECOND, fail_rate: 0.0 };
    let cfg = EngineConfig { partitions: 4, ..fast_config() };
    let (mut w, m) = world_with(cfg, 3, slow);
    let tasks: Vec<_> = (0..12).map(|_| w.submit(m, Submit::new(World::spec("echo"))).unwrap()).collect();
    w.run_until(w.now + 20_000);
    let record = |w: &World, t| w.store[&m][t].clone();
    let partition = record(&w, &tasks[0]).partition;
    let in_partition: Vec<_> =
        tasks.iter().filter(|t| record(&w, t).partition == partition).copied().collect();
    let now = w.now;
    let effects: Vec<Effect> =
        w.engines.get_mut(&m).unwrap().handle(now, Input::PartitionLost { partition }).collect();
    assert!(effects.is_empty(), "letting go sends and persists nothing: {effects:?}");
    for t in &in_partition {
        assert!(w.engines[&m].task(t).is_none());
    }
    assert_eq!(w.engines[&m].counters().fenced, in_partition.len() as u64);

    // Another node fenced a write about a task: the engine drops it the same way.
    let other = tasks.iter().find(|t| !in_partition.contains(t)).copied().unwrap();
    let token = xchange_core::PersistToken { task: other, seq: 1 };
    let effects: Vec<Effect> =
        w.engines.get_mut(&m).unwrap().handle(now, Input::PersistRefused(token)).collect();
    assert!(effects.is_empty());
    assert!(w.engines[&m].task(&other).is_none());

    // Granted back, the partition's records are adopted and their contracts continue.
    let records: Vec<_> = in_partition.iter().map(|t| record(&w, t)).collect();
    let effects: Vec<Effect> =
        w.engines.get_mut(&m).unwrap().handle(now, Input::PartitionGranted { partition, records }).collect();
    drop(effects);
    for t in &in_partition {
        let rec = w.engines[&m].task(t).expect("adopted");
        assert!(matches!(
            rec.state,
            TaskState::Awarded | TaskState::Running | TaskState::Announced | TaskState::Pending
        ));
    }
    w.engines[&m].check_invariants().unwrap();
}

#[test]
fn with_late_binding_the_first_free_agent_takes_the_task_and_nobody_queues() {
    let busy = Behaviour { exec_time: 100_000, fail_rate: 0.0 };
    let cfg = EngineConfig { late_binding: true, ..fast_config() };
    let (mut w, m) = world_with(cfg, 3, busy);
    let tasks: Vec<_> = (0..9).map(|_| w.submit(m, Submit::new(World::spec("echo"))).unwrap()).collect();
    let mut most_held = 0;
    for _ in 0..400 {
        w.run_until(w.now + 5_000);
        for e in w.engines.values() {
            most_held = most_held.max(e.held_contracts());
        }
    }
    for t in &tasks {
        assert_eq!(outcome(&w, *t).0, TaskState::Completed);
    }
    // Contractors of capacity 2 bid only when free, so none ever waits with work queued.
    assert!(most_held <= 2, "a contractor held {most_held} contracts");
    assert_eq!(w.executions.len(), tasks.len(), "each task executed once");
    w.check().unwrap();
}

#[test]
fn a_provisional_award_moves_to_a_higher_premium_and_starts_once_settled() {
    use xchange_core::{ContractorProfile, Engine};
    use xchange_protocol::{AcceptBody, Provisional, TaskId, TaskSpec};
    let w = World::new(fast_config(), 1);
    let me = World::agent_id(2, 0);
    let profile = ContractorProfile { capacity: 1, queue_limit: 0, ..ContractorProfile::new(["echo"]) };
    let mut c = Engine::new(me, w.cfg.clone(), Some(profile), 3);
    let (m1, m2) = (AgentId::from_index(1, 1), AgentId::from_index(1, 2));
    let award = |from, task, premium: f64| {
        let body = Body::Accept(AcceptBody {
            task: Arc::new(TaskSpec::new("echo", json!(null))),
            budget: Budget { subtasks: 0, messages: 100, retries: 1, price: 10 },
            price: 5,
            lease_ms: 60_000,
            provisional: Some(Provisional { premium, settle_ms: 50 }),
        });
        let mut msg = (*forged(from, me, body, &w, task, 1)).clone();
        msg.lineage = Arc::from(vec![from]);
        Input::Message(Arc::new(msg))
    };
    let failures = |effects: &[Effect]| -> Vec<(AgentId, Code)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { msg, .. } => match (&msg.body, &msg.to) {
                    (Body::Failure(f), Recipient::Agent(to)) => Some((*to, f.code)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let started = |effects: &[Effect]| effects.iter().any(|e| matches!(e, Effect::StartExecution { .. }));
    let (t1, t2, t3) = (TaskId::new_v7(1, [1; 10]), TaskId::new_v7(1, [2; 10]), TaskId::new_v7(1, [3; 10]));
    let now = w.now;

    let first: Vec<Effect> = c.handle(now, award(m1, t1, 1.0)).collect();
    assert!(failures(&first).is_empty() && !started(&first), "held, not started: {first:?}");
    // A higher premium from another manager displaces it: the first goes back as outbid.
    let second: Vec<Effect> = c.handle(now + 10_000, award(m2, t2, 2.5)).collect();
    assert_eq!(failures(&second), vec![(m1, Code::Outbid)]);
    assert!(!started(&second));
    // A lower one is turned down, and the held award stays.
    let third: Vec<Effect> = c.handle(now + 20_000, award(m1, t3, 2.0)).collect();
    assert_eq!(failures(&third), vec![(m1, Code::Outbid)]);
    // Quiet for the settle time: the held award starts, and only it.
    let early: Vec<Effect> = c.handle_timeout(now + 59_000).collect();
    assert!(!started(&early), "not before the settle time");
    let settled: Vec<Effect> = c.handle_timeout(now + 60_000).collect();
    let starts: Vec<_> = settled
        .iter()
        .filter_map(|e| match e {
            Effect::StartExecution { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![t2]);
    assert_eq!(c.counters().executions, 1);
}
