//! The server keeps to its OpenAPI document: what it accepts, what it refuses and how its
//! refusals look. Each test here is a disagreement `scripts/schemathesis.sh` found between
//! the server and the document, kept so that it stays fixed.

use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::common::{TestNode, answer, job, refused};

/// A query string of the wrong type or with an unknown parameter is refused with the error
/// body (it was axum's plain text), naming the parameter.
#[tokio::test]
async fn bad_query_strings_get_the_error_body() {
    let t = TestNode::start().await;
    for path in [
        "/v1/orgs",
        "/v1/taskdbs",
        "/v1/templates",
        "/v1/agents",
        "/v1/jobs",
        "/v1/taskdbs/global/subscribers",
    ] {
        let field = refused(&t.get(&format!("{path}?limit=many")).await, 422, 5014);
        assert_eq!(field.as_deref(), Some("limit"), "{path}");
        let answer = t.get(&format!("{path}?limit=1&colour=blue")).await;
        refused(&answer, 422, 5014);
        assert!(answer.1["error"]["message"].as_str().unwrap().contains("colour"), "{path}: {}", answer.1);
        refused(&t.get(&format!("{path}?limit=0")).await, 400, 5038);
        refused(&t.get(&format!("{path}?limit=1001")).await, 400, 5038);
    }
    let field = refused(&t.get("/v1/events?after=soon").await, 422, 5014);
    assert_eq!(field.as_deref(), Some("after"));
    t.stop().await;
}

/// `GET /v1/jobs?taskdb=` lists one task database's jobs (two query extractors each
/// refused the other's parameters, so any `taskdb` was a 400).
#[tokio::test]
async fn jobs_are_listed_by_task_database() {
    let t = TestNode::start().await;
    assert_eq!(t.post("/v1/taskdbs", &json!({"task_listing_db_id": "nlp"})).await.0, 201);
    let mut in_nlp = job("in-nlp", "echo", json!(1));
    in_nlp["task_db_id"] = json!("nlp");
    assert_eq!(t.post("/v1/jobs", &in_nlp).await.0, 201);
    assert_eq!(t.post("/v1/jobs", &job("in-global", "echo", json!(1))).await.0, 201);

    let (status, page) = t.get("/v1/jobs?taskdb=nlp&limit=10").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["in-nlp"]);
    let (status, page) = t.get("/v1/jobs?limit=1").await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 1), "{page}");
    t.stop().await;
}

/// A path segment that is not UTF-8 is `malformed` with the error body (it was plain text).
#[tokio::test]
async fn a_path_that_is_not_utf8_gets_the_error_body() {
    let t = TestNode::start().await;
    for path in ["/v1/jobs/%FF", "/v1/taskdbs/%C3%28", "/v1/orgs/%FF", "/v1/agents/%FF", "/v1/templates/%FF"]
    {
        let field = refused(&t.get(path).await, 400, 5015);
        assert!(field.is_some(), "{path}");
    }
    t.stop().await;
}

/// Every body of the API is a JSON object: an array was read as the struct's fields in
/// order, so `[null, null, null]` was a query matching everything and `"budget": []` a
/// budget.
#[tokio::test]
async fn bodies_that_are_not_objects_are_refused() {
    let t = TestNode::start().await;
    for path in ["/v1/jobs/query", "/v1/taskdbs/query", "/v1/registry/query", "/v1/agents/query"] {
        for body in ["[null, null, null]", "[{}, null, 10]", "[]", "null", "7", "\"filter\""] {
            let answer = t.post_raw(path, body).await;
            refused(&answer, 422, 5014);
        }
        refused(&t.post_raw(path, "[null,").await, 400, 5015);
    }
    refused(&t.post_raw("/v1/taskdbs", "[\"nlp\"]").await, 422, 5014);
    refused(&t.post_raw("/v1/orgs", "[\"acme\"]").await, 422, 5014);

    let mut listed_budget = job("b1", "echo", json!(1));
    listed_budget["budget"] = json!([]);
    assert_eq!(refused(&t.post("/v1/jobs", &listed_budget).await, 422, 5014).as_deref(), Some("budget"));
    listed_budget["budget"] = json!([5, 1]);
    refused(&t.post("/v1/jobs", &listed_budget).await, 422, 5014);
    listed_budget["budget"] = json!({"price": "cheap"});
    let refusal = t.post("/v1/jobs", &listed_budget).await;
    assert_eq!(refused(&refusal, 422, 5014).as_deref(), Some("budget"));
    assert!(refusal.1["error"]["message"].as_str().unwrap().starts_with("price: "), "{}", refusal.1);
    listed_budget["budget"] = json!({"price": 5, "retries": 1});
    assert_eq!(t.post("/v1/jobs", &listed_budget).await.0, 201);

    let r = t.http.post(t.url("/v1/jobs/b1/cancel")).body("[]").send().await.unwrap();
    refused(&answer(r).await, 422, 5014);
    t.stop().await;
}

/// JSON Schema's `integer`, which the document says, takes `5.0`: so does the server now
/// (serde refused it as a float); a fraction is still refused.
#[tokio::test]
async fn whole_numbers_with_a_zero_fraction_are_integers() {
    let t = TestNode::start().await;
    let (status, page) = t.post("/v1/jobs/query", &json!({"limit": 5.0})).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        refused(&t.post("/v1/jobs/query", &json!({"limit": 5.5})).await, 422, 5014).as_deref(),
        Some("limit")
    );

    let mut doc = job("w1", "echo", json!(1));
    doc["max_price"] = json!(689_738_289_550.0);
    doc["retry_limit"] = json!(2.0);
    doc["job_priority_value"] = json!(-317.0);
    doc["budget"] = json!({"price": 100.0, "subtasks": 3.0});
    let (status, accepted) = t.post("/v1/jobs", &doc).await;
    assert_eq!(status, 201, "{accepted}");
    doc["job_id"] = json!("w2");
    doc["retry_limit"] = json!(2.5);
    assert_eq!(refused(&t.post("/v1/jobs", &doc).await, 422, 5014).as_deref(), Some("retry_limit"));
    doc["retry_limit"] = json!(-1.0);
    refused(&t.post("/v1/jobs", &doc).await, 422, 5014);
    doc["retry_limit"] = json!(4_294_967_296u64);
    refused(&t.post("/v1/jobs", &doc).await, 422, 5014);
    t.stop().await;
}

/// The cancel body is optional, and `null` is no body (the document says so).
#[tokio::test]
async fn a_cancel_takes_no_body_or_null() {
    let t = TestNode::start().await;
    for id in ["c1", "c2", "c3"] {
        assert_eq!(t.post("/v1/jobs", &job(id, "nobody-offers-this", json!(1))).await.0, 201);
    }
    let r = t.http.post(t.url("/v1/jobs/c1/cancel")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let (status, body) = t.post_raw("/v1/jobs/c2/cancel", "null").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = t.post("/v1/jobs/c3/cancel", &json!({"reason": "changed my mind"})).await;
    assert_eq!(status, 202, "{body}");
    t.stop().await;
}

/// Ids and tags are measured in characters, as the document's `maxLength` counts (they were
/// measured in bytes, so 100 accented letters were refused).
#[tokio::test]
async fn ids_and_tags_are_measured_in_characters() {
    let t = TestNode::start().await;
    let id = "é".repeat(128);
    let mut doc = job(&id, "echo", json!(1));
    doc["tags"] = json!(["ü".repeat(64)]);
    let (status, accepted) = t.post("/v1/jobs", &doc).await;
    assert_eq!(status, 201, "{accepted}");
    let (status, read) = t.get(&format!("/v1/jobs/{}", "%C3%A9".repeat(128))).await;
    assert_eq!((status, read["job_id"].as_str()), (200, Some(id.as_str())), "{read}");

    let mut too_long = job(&"é".repeat(129), "echo", json!(1));
    assert_eq!(refused(&t.post("/v1/jobs", &too_long).await, 422, 5014).as_deref(), Some("job_id"));
    too_long["job_id"] = json!("t2");
    too_long["tags"] = json!(["ü".repeat(65)]);
    assert_eq!(refused(&t.post("/v1/jobs", &too_long).await, 422, 5014).as_deref(), Some("tags[0]"));
    t.stop().await;
}

/// A template, an input schema and an output schema are JSON Schema objects: `false` was
/// stored as a template and then shown where the document promises an object.
#[tokio::test]
async fn schemas_must_be_objects() {
    let t = TestNode::start().await;
    for schema in [json!(false), json!(true), json!("x")] {
        let r = t.http.put(t.url("/v1/templates/flag")).json(&schema).send().await.unwrap();
        refused(&answer(r).await, 422, 5014);
        let mut doc = job("s1", "echo", json!(1));
        doc["output_schema"] = schema.clone();
        assert_eq!(refused(&t.post("/v1/jobs", &doc).await, 422, 5014).as_deref(), Some("output_schema"));
    }
    let (_, templates) = t.get("/v1/templates").await;
    assert_eq!(templates["items"], json!([]), "{templates}");
    t.stop().await;
}

/// `accessibility_data` is an object (or null), as documented: a string was taken as public.
#[tokio::test]
async fn accessibility_data_must_be_an_object() {
    let t = TestNode::start().await;
    for bad in [json!("private"), json!(["visibility"]), json!(1)] {
        let entry = json!({"task_listing_db_id": "odd", "accessibility_data": bad});
        let field = refused(&t.post("/v1/taskdbs", &entry).await, 422, 5014);
        assert_eq!(field.as_deref(), Some("accessibility_data"));
    }
    let entry = json!({"task_listing_db_id": "odd", "accessibility_data": null});
    assert_eq!(t.post("/v1/taskdbs", &entry).await.0, 201);
    t.stop().await;
}

/// A plain GET of the agents' WebSocket is refused with the error body (it was plain text).
#[tokio::test]
async fn the_websocket_refuses_a_plain_get_with_the_error_body() {
    let t = TestNode::start().await;
    let r = t.http.get(t.url("/v1/agents/connect")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let field = refused(&answer(r).await, 400, 5038);
    assert_eq!(field.as_deref(), Some("Connection"));
    t.stop().await;
}

/// The document puts paging and filters in the query string (they were declared as
/// required path parameters) and says the constraints the server checks.
#[test]
fn the_document_places_parameters_where_the_server_reads_them() {
    let doc = serde_json::to_value(xchange_node::ApiDoc::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name} is not in the path"
                    );
                    assert_eq!(p["required"], true, "{method} {path}: {name}");
                } else {
                    assert_ne!(p["required"], true, "{method} {path}: {name} is optional");
                }
                if name == "limit" {
                    assert_eq!((&p["schema"]["minimum"], &p["schema"]["maximum"]), (&json!(1), &json!(1000)));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked} parameters");
}

/// The patterns in the document accept exactly what the server's checks accept.
#[test]
fn the_documents_patterns_are_the_servers_checks() {
    let doc = serde_json::to_value(xchange_node::ApiDoc::openapi()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let job_id = &schemas["JobDocument"]["properties"]["job_id"];
    let name = &schemas["JobDocument"]["properties"]["capability"];
    let member = &schemas["OrgEntry"]["properties"]["members"]["items"];
    let submitter = &schemas["JobDocument"]["properties"]["submitted_by"];
    let agent = xchange_protocol::AgentId::from_index(9, 1).to_string();

    let cases: [(&Value, &str, bool); 17] = [
        (job_id, "job-1", true),
        (job_id, &"é".repeat(128), true),
        (job_id, &"é".repeat(129), false),
        (job_id, "a/b", false),
        (job_id, "tab\there", false),
        (job_id, "c1\u{85}", false),
        (job_id, "", false),
        (name, "echo_2-x", true),
        (name, &"a".repeat(65), false),
        (name, "ec ho", false),
        (name, "é", false),
        (member, &agent, true),
        (member, &agent.to_uppercase(), false),
        (member, &agent[..51], false),
        (submitter, "alice", true),
        (submitter, " \t\u{3000}", false),
        (submitter, "\u{1c}", true),
    ];
    for (schema, text, valid) in cases {
        let validator = jsonschema::validator_for(&strip_description(schema)).unwrap();
        assert_eq!(validator.is_valid(&json!(text)), valid, "{text:?} against {schema}");
    }
    // And the server agrees, through its own checks.
    assert!(agent.parse::<xchange_protocol::AgentId>().is_ok());
    let last = agent.chars().last().unwrap();
    assert!(last == '0' || last == 'g', "{agent}");
    let other_last = format!("{}{}", &agent[..51], if last == '0' { 'h' } else { '1' });
    assert!(other_last.parse::<xchange_protocol::AgentId>().is_err(), "{other_last}");
}

fn strip_description(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(o) = schema.as_object_mut() {
        o.remove("description");
    }
    schema
}
