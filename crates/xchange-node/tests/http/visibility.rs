//! A private task database's jobs, results and events are visible to its member
//! organisations only: an outsider, a valid key of another organisation that reads its own
//! private database, cannot submit to it, or read, list, query or stream its jobs over HTTP
//! and SSE.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::agents::{remote, wait_status};
use crate::common::{TestNode, answer, job, refused};

async fn key(t: &TestNode, org: &str) -> String {
    let (status, created) = t.post("/v1/keys", &json!({"org_id": org, "scopes": ["read"]})).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

/// A private database `db` of organisation `org`, whose member agent runs one job `job_id`.
async fn private_job(t: &TestNode, org: &str, member: &str, db: &str, job_id: &str) {
    let entry = json!({"task_listing_db_id": db, "accessibility_data": {"visibility": "private"}});
    assert_eq!(t.post("/v1/taskdbs", &entry).await.0, 201);
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": org, "members": [member]})).await.0, 201);
    let r = t.http.put(t.url(&format!("/v1/taskdbs/{db}/subscribers/{org}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let mut body = job(job_id, "secret", json!({"for": org}));
    body["task_db_id"] = json!(db);
    assert_eq!(t.post("/v1/jobs", &body).await.0, 201);
    assert_eq!(t.wait_terminal(job_id).await["state"], "completed");
}

async fn as_key(
    t: &TestNode,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, t.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
}

/// The event stream's text for about a second.
async fn events(t: &TestNode, key: &str) -> String {
    let r = reqwest::Client::new().get(t.url("/v1/events?after=0")).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn an_outsider_cannot_read_list_query_or_stream_a_private_databases_jobs() {
    let t = TestNode::start().await;
    let acme_agent = remote(&t.base, 41, "secret").await;
    let other_agent = remote(&t.base, 42, "secret").await;
    let (acme_id, other_id) = (acme_agent.id().to_string(), other_agent.id().to_string());
    wait_status(&t, &acme_id, 5001).await;
    wait_status(&t, &other_id, 5001).await;
    private_job(&t, "acme", &acme_id, "acme-private", "acme-1").await;
    private_job(&t, "other", &other_id, "other-private", "other-1").await;
    assert_eq!(t.post("/v1/jobs", &job("public-1", "secret", json!(1))).await.0, 201);
    t.wait_terminal("public-1").await;
    let (acme, outsider) = (key(&t, "acme").await, key(&t, "other").await);
    // Nor may it submit to the database: refused, nothing stored.
    let (status, created) = t.post("/v1/keys", &json!({"org_id": "other", "scopes": ["submit"]})).await;
    assert_eq!(status, 201, "{created}");
    let submitter = created["key"].as_str().unwrap().to_owned();
    let mut intrusion = job("intrusion", "secret", json!(1));
    intrusion["task_db_id"] = json!("acme-private");
    let answer = as_key(&t, &submitter, reqwest::Method::POST, "/v1/jobs", Some(intrusion)).await;
    assert_eq!(refused(&answer, 403, 5007).as_deref(), Some("task_db_id"));
    refused(&t.get("/v1/jobs/intrusion").await, 404, 5020);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // One job: the outsider is told it does not exist, the member reads it.
    refused(&as_key(&t, &outsider, get.clone(), "/v1/jobs/acme-1", None).await, 404, 5020);
    assert_eq!(as_key(&t, &acme, get.clone(), "/v1/jobs/acme-1", None).await.0, 200);
    assert_eq!(as_key(&t, &outsider, get.clone(), "/v1/jobs/other-1", None).await.0, 200, "its own");
    // Lists and queries leave the private jobs out.
    let (_, listed) = as_key(&t, &outsider, get.clone(), "/v1/jobs", None).await;
    assert_eq!(ids(&listed), ["other-1", "public-1"], "{listed}");
    let (_, found) = as_key(&t, &outsider, post.clone(), "/v1/jobs/query", Some(json!({}))).await;
    assert_eq!(ids(&found), ["other-1", "public-1"], "{found}");
    let (_, all) = as_key(&t, &acme, get.clone(), "/v1/jobs", None).await;
    assert_eq!(ids(&all), ["acme-1", "public-1"], "{all}");
    let (_, everything) = t.get("/v1/jobs").await;
    assert_eq!(ids(&everything).len(), 3, "the admin sees all: {everything}");
    // The database's own job query: refused with a reason.
    let path = "/v1/taskdbs/acme-private/jobs/query";
    refused(&as_key(&t, &outsider, post.clone(), path, Some(json!({}))).await, 403, 5007);
    assert_eq!(as_key(&t, &acme, post.clone(), path, Some(json!({}))).await.0, 200);
    // Events: neither the job's stream nor the live stream shows them.
    refused(&as_key(&t, &outsider, get.clone(), "/v1/jobs/acme-1/events", None).await, 404, 5020);
    let seen = events(&t, &outsider).await;
    assert!(seen.contains("other-1") && seen.contains("public-1"), "{seen}");
    assert!(!seen.contains("acme-1") && !seen.contains("acme-private"), "the outsider saw: {seen}");
    let member_sees = events(&t, &acme).await;
    assert!(member_sees.contains("acme-1"), "{member_sees}");
    acme_agent.shutdown().await.unwrap();
    other_agent.shutdown().await.unwrap();
    t.stop().await;
}

/// Reads `stream` until `seen` holds `marker` (true) or the stream ends or `within` passes
/// (false).
async fn stream_until<B: AsRef<[u8]>>(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<B>> + Unpin),
    seen: &mut String,
    marker: &str,
    within: Duration,
) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + within;
    while !seen.contains(marker) {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            Ok(_) => return None,
            Err(_) => return Some(false),
        }
    }
    Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_follows_lost_memberships_and_ends_with_its_key() {
    let t = TestNode::start().await;
    let agent = remote(&t.base, 43, "secret").await;
    let member = agent.id().to_string();
    wait_status(&t, &member, 5001).await;
    private_job(&t, "acme", &member, "acme-private", "before").await;
    // The agent is also a member of `beta`, which stays subscribed: jobs still run.
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": "beta", "members": [member]})).await.0, 201);
    let r = t.http.put(t.url("/v1/taskdbs/acme-private/subscribers/beta")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let (status, created) = t.post("/v1/keys", &json!({"org_id": "acme", "scopes": ["read"]})).await;
    assert_eq!(status, 201, "{created}");
    let (acme_key, key_id) = (created["key"].as_str().unwrap(), created["key_id"].as_str().unwrap());
    let r = reqwest::Client::new().get(t.url("/v1/events")).bearer_auth(acme_key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let submit = |id: &str| {
        let mut job = job(id, "secret", json!({"for": "acme"}));
        job["task_db_id"] = json!("acme-private");
        job
    };

    assert_eq!(t.post("/v1/jobs", &submit("while-member")).await.0, 201);
    let arrived = stream_until(&mut body, &mut seen, "while-member", Duration::from_secs(10)).await;
    assert_eq!(arrived, Some(true), "the member's stream missed its job: {seen}");

    let r = t.http.delete(t.url("/v1/taskdbs/acme-private/subscribers/acme")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // Within the stream's recheck, the database's events stop reaching it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(t.post("/v1/jobs", &submit("after-leaving")).await.0, 201);
    t.wait_terminal("after-leaving").await;
    assert_eq!(t.post("/v1/jobs", &job("public-marker", "secret", json!(1))).await.0, 201);
    let arrived = stream_until(&mut body, &mut seen, "public-marker", Duration::from_secs(10)).await;
    assert_eq!(arrived, Some(true), "the stream stopped altogether: {seen}");
    assert!(!seen.contains("after-leaving"), "a former member still sees the database: {seen}");

    // A revoked key's stream ends.
    let r = t.http.delete(t.url(&format!("/v1/keys/{key_id}"))).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let ended = stream_until(&mut body, &mut seen, "never-sent", Duration::from_secs(10)).await;
    assert_eq!(ended, None, "the stream of a revoked key goes on");
    agent.shutdown().await.unwrap();
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_job_in_a_public_database_is_for_its_members_only() {
    let t = TestNode::start().await;
    let agent = remote(&t.base, 44, "secret").await;
    let member = agent.id().to_string();
    wait_status(&t, &member, 5001).await;
    // A public database that `acme` subscribes to; `other` has a key but no subscription.
    assert_eq!(t.post("/v1/taskdbs", &json!({"task_listing_db_id": "shared"})).await.0, 201);
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": "acme", "members": [member]})).await.0, 201);
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": "other", "members": []})).await.0, 201);
    let r = t.http.put(t.url("/v1/taskdbs/shared/subscribers/acme")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let mut private = job("quiet-1", "secret", json!({"for": "acme only"}));
    private["task_db_id"] = json!("shared");
    private["visibility"] = json!("private");
    assert_eq!(t.post("/v1/jobs", &private).await.0, 201);
    assert_eq!(t.wait_terminal("quiet-1").await["state"], "completed");
    let mut open = job("open-1", "secret", json!(1));
    open["task_db_id"] = json!("shared");
    assert_eq!(t.post("/v1/jobs", &open).await.0, 201);
    t.wait_terminal("open-1").await;
    let (acme, outsider) = (key(&t, "acme").await, key(&t, "other").await);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    refused(&as_key(&t, &outsider, get.clone(), "/v1/jobs/quiet-1", None).await, 404, 5020);
    refused(&as_key(&t, &outsider, get.clone(), "/v1/jobs/quiet-1/events", None).await, 404, 5020);
    assert_eq!(as_key(&t, &acme, get.clone(), "/v1/jobs/quiet-1", None).await.0, 200);
    let (_, listed) = as_key(&t, &outsider, get.clone(), "/v1/jobs?taskdb=shared", None).await;
    assert_eq!(ids(&listed), ["open-1"], "{listed}");
    let path = "/v1/taskdbs/shared/jobs/query";
    let (_, found) = as_key(&t, &outsider, post.clone(), path, Some(json!({}))).await;
    assert_eq!(ids(&found), ["open-1"], "{found}");
    let (_, found) = as_key(&t, &acme, post.clone(), path, Some(json!({}))).await;
    assert_eq!(ids(&found), ["open-1", "quiet-1"], "{found}");
    let seen = events(&t, &outsider).await;
    assert!(seen.contains("open-1") && !seen.contains("quiet-1"), "the outsider saw: {seen}");
    assert!(events(&t, &acme).await.contains("quiet-1"));
    // Nor may the outsider put a private job there.
    let (status, created) = t.post("/v1/keys", &json!({"org_id": "other", "scopes": ["submit"]})).await;
    assert_eq!(status, 201, "{created}");
    let submitter = created["key"].as_str().unwrap();
    let mut intrusion = private.clone();
    intrusion["job_id"] = json!("quiet-2");
    let answer = as_key(&t, submitter, post.clone(), "/v1/jobs", Some(intrusion)).await;
    assert_eq!(refused(&answer, 403, 5007).as_deref(), Some("visibility"));
    agent.shutdown().await.unwrap();
    t.stop().await;
}
