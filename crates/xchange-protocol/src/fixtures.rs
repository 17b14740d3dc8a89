//! Test fixtures shared by the unit tests: two keys and one message of every kind.

use std::sync::Arc;

use serde_json::json;

use crate::code::{Code, Refusal};
use crate::edge::error_body;
use crate::envelope::{
    AcceptBody, AckBody, Body, CfpBody, CodeBody, Envelope, FailureBody, HeartbeatBody, InformBody, Kind,
    ProgressBody, ProposeBody, Recipient, Version,
};
use crate::ids::{MsgId, Nonce, TaskId, UnixMs};
use crate::sign::AgentKey;
use crate::task::{Budget, ContractRef, TaskSpec};

/// 2026-01-01T00:00:00Z, the `now` of every test.
pub(crate) const NOW: UnixMs = 1_767_225_600_000;

pub(crate) fn manager() -> AgentKey {
    AgentKey::from_seed([1; 32])
}

pub(crate) fn contractor() -> AgentKey {
    AgentKey::from_seed([2; 32])
}

pub(crate) fn task_id() -> TaskId {
    TaskId::new_v7(NOW - 5_000, [4; 10])
}

pub(crate) fn body(kind: Kind) -> Body {
    let task = Arc::new(TaskSpec::new("word-count", json!({ "text": "to be or not to be" })));
    let budget = Budget { subtasks: 4, messages: 100, retries: 2, price: 50 };
    match kind {
        Kind::Cfp => Body::Cfp(CfpBody { task, budget, late: false }),
        Kind::Propose => Body::Propose(ProposeBody { price: 12, eta_ms: 1_500, load: 0.5 }),
        Kind::Refuse => Body::Refuse(CodeBody { code: Code::Declined, reason: "price too low".into() }),
        Kind::Accept => {
            Body::Accept(AcceptBody { task, budget, price: 12, lease_ms: 30_000, provisional: None })
        }
        Kind::Reject => Body::Reject(CodeBody { code: Code::Outbid, reason: String::new() }),
        Kind::Progress => {
            Body::Progress(ProgressBody { fraction: 0.25, started: true, note: Some("parsing".into()) })
        }
        Kind::Heartbeat => Body::Heartbeat(HeartbeatBody {
            incarnation: 3,
            contracts: vec![ContractRef { task: task_id(), epoch: 1, started: true }],
        }),
        Kind::Inform => {
            Body::Inform(InformBody { result: Arc::new(json!({ "words": 6 })), spent: Budget::ZERO })
        }
        Kind::Failure => Body::Failure(FailureBody {
            code: Code::ExecutionFailed,
            reason: "tool crashed".into(),
            retryable: true,
            started: true,
            spent: Budget::ZERO,
        }),
        Kind::Cancel => Body::Cancel(CodeBody { code: Code::Cancelled, reason: "job withdrawn".into() }),
        Kind::Ack => Body::Ack(AckBody { code: Code::Processed }),
        Kind::Error => Body::Error(error_body(&Refusal::new(Code::StaleEpoch, "epoch 0 is older than 1"))),
    }
}

/// A message of `kind` in a direction that makes sense (manager to contractor or back),
/// valid at [`NOW`], signed when the kind must be.
pub(crate) fn sample(kind: Kind) -> Envelope {
    let (m, c) = (manager(), contractor());
    let from_manager = matches!(kind, Kind::Cfp | Kind::Accept | Kind::Reject | Kind::Cancel | Kind::Ack);
    let (sender, peer) = if from_manager { (&m, &c) } else { (&c, &m) };
    let to = if kind == Kind::Cfp {
        Recipient::Pool { pool: "global".into(), capability: "word-count".into() }
    } else {
        Recipient::Agent(peer.id())
    };
    let task_kind = kind.is_task_kind();
    let mut env = Envelope {
        aixp: Version::V1_0,
        id: MsgId::new_v7(NOW, [kind.index() as u8; 10]),
        body: body(kind),
        from: sender.id(),
        to,
        conversation: (kind != Kind::Heartbeat).then(task_id),
        epoch: 1,
        in_reply_to: (kind != Kind::Cfp).then(|| MsgId::new_v7(NOW - 1_000, [9; 10])),
        reply_by: (kind == Kind::Cfp).then_some(NOW + 2_000),
        expires_at: NOW + 60_000,
        hops: u8::from(task_kind),
        max_hops: 8,
        lineage: if task_kind { Arc::from(vec![m.id()]) } else { Arc::from(vec![]) },
        nonce: None,
        sig: None,
    };
    if kind.must_be_signed() {
        sender.sign(&mut env, Nonce([kind.index() as u8 + 1; 16]));
    }
    env
}

/// Like [`sample`] but without a signature, so that fields can be changed freely.
pub(crate) fn plain(kind: Kind) -> Envelope {
    let mut env = sample(kind);
    env.sig = None;
    env
}
