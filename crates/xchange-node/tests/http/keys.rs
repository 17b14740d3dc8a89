//! API keys: a node creates an admin key at first start, every `/v1/` call needs a key
//! with its scope, keys are created, listed without their secret, and revoked.

use serde_json::{Value, json};
use xchange_node::NodeConfig;

use crate::common::{TestNode, answer, job, refused};

async fn call(
    t: &TestNode,
    key: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    // A client without the admin key the test node's own client sends.
    let mut request = reqwest::Client::new().request(method, t.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

async fn new_key(t: &TestNode, org: &str, scopes: &[&str]) -> String {
    let (status, created) =
        t.post("/v1/keys", &json!({"org_id": org, "scopes": scopes, "label": "test"})).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_call_needs_a_key_with_its_scope() {
    let t = TestNode::start().await;
    t.host(1, "echo", |input| input.clone());
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let body = || Some(job("k-1", "echo", json!(1)));

    // No key, not a key, an unknown key: 401 unauthenticated, on the Authorization header.
    for key in [None, Some("secret"), Some("xck_aaaa_bbbb")] {
        let answer = call(&t, key, post.clone(), "/v1/jobs", body()).await;
        assert_eq!(refused(&answer, 401, 5004).as_deref(), Some("Authorization"), "{key:?}");
    }
    assert_eq!(call(&t, None, get.clone(), "/v1/jobs/k-1", None).await.0, 401);

    // A reader reads but may not submit or manage keys: 403 forbidden.
    let reader = new_key(&t, "acme", &["read"]).await;
    refused(&call(&t, Some(&reader), post.clone(), "/v1/jobs", body()).await, 403, 5007);
    assert_eq!(call(&t, Some(&reader), get.clone(), "/v1/jobs", None).await.0, 200);
    // A submitter submits and reads, and may not create keys or task databases.
    let submitter = new_key(&t, "acme", &["submit", "read"]).await;
    let (status, created) = call(&t, Some(&submitter), post.clone(), "/v1/jobs", body()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(t.wait_terminal("k-1").await["state"], "completed");
    let key_request = Some(json!({"org_id": "acme", "scopes": ["admin"]}));
    refused(&call(&t, Some(&submitter), post.clone(), "/v1/keys", key_request).await, 403, 5007);
    let taskdb = Some(json!({"task_listing_db_id": "db1", "task_listing_db_name": "db1"}));
    refused(&call(&t, Some(&submitter), post.clone(), "/v1/taskdbs", taskdb).await, 403, 5007);

    // What stays open.
    for path in ["/healthz", "/metrics", "/openapi.json"] {
        assert_eq!(call(&t, None, get.clone(), path, None).await.0, 200, "{path}");
    }
    t.stop().await;
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked() {
    let t = TestNode::start().await;
    let admin_file = t.node.created_admin_key_file().expect("the first start creates an admin key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&admin_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the admin key is readable by its owner only");
    }
    let (status, created) = t.post("/v1/keys", &json!({"org_id": "acme", "scopes": ["read", "read"]})).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["scopes"], json!(["read"]));
    let id = created["key_id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("xck_{id}_")));

    let (status, page) = t.get("/v1/keys").await;
    assert_eq!(status, 200);
    let listed = page["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "the admin key and the new one: {page}");
    let text = page.to_string();
    assert!(!text.contains(&key["xck_".len() + id.len() + 1..]) && !text.contains("secret_hash"), "{text}");

    assert_eq!(call(&t, Some(&key), reqwest::Method::GET, "/v1/jobs", None).await.0, 200);
    let (status, revoked) = call(&t, None, reqwest::Method::DELETE, &format!("/v1/keys/{id}"), None).await;
    assert_eq!(status, 401, "revoking needs a key too: {revoked}");
    let (status, revoked) =
        answer(t.http.delete(t.url(&format!("/v1/keys/{id}"))).send().await.unwrap()).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_ms"].is_i64());
    let answer = call(&t, Some(&key), reqwest::Method::GET, "/v1/jobs", None).await;
    assert!(refused(&answer, 401, 5004).is_some());
    assert!(answer.1["error"]["message"].as_str().unwrap().contains("revoked"), "{}", answer.1);
    assert_eq!(t.get("/v1/keys/nope").await.0, 400, "no GET of one key: a method the endpoint does not take");
    refused(&answer_of(&t, reqwest::Method::DELETE, "/v1/keys/nope").await, 404, 5020);

    // Bad requests for keys.
    for bad in [
        json!({"org_id": "", "scopes": ["read"]}),
        json!({"org_id": "acme", "scopes": []}),
        json!({"org_id": "acme", "scopes": ["write"]}),
        json!({"org_id": "acme", "scopes": ["read"], "owner": "x"}),
    ] {
        let (status, body) = t.post("/v1/keys", &bad).await;
        assert!((400..500).contains(&status) && body["error"]["code"].is_u64(), "{bad}: {status} {body}");
    }
    t.stop().await;
}

async fn answer_of(t: &TestNode, method: reqwest::Method, path: &str) -> (u16, Value) {
    answer(t.http.request(method, t.url(path)).send().await.unwrap()).await
}

#[tokio::test]
async fn a_configured_admin_key_is_installed_and_auth_can_be_turned_off() {
    let given = "xck_operatorkey_s3cr3ts3cr3ts3cr3t".to_owned();
    let t =
        TestNode::start_with(NodeConfig { admin_key: Some(given.clone()), ..NodeConfig::default() }).await;
    assert!(t.node.created_admin_key_file().is_none(), "no key file when one is given");
    let (status, _) = call(&t, Some(&given), reqwest::Method::GET, "/v1/keys", None).await;
    assert_eq!(status, 200);
    t.stop().await;

    let open = TestNode::start_with(NodeConfig { auth: false, ..NodeConfig::default() }).await;
    assert!(open.node.created_admin_key_file().is_none());
    let (status, body) =
        call(&open, None, reqwest::Method::POST, "/v1/jobs", Some(job("open-1", "none", json!(1)))).await;
    assert_eq!(status, 201, "{body}");
    open.stop().await;
}
