use serde_json::json;

use crate::common::TestNode;

#[tokio::test]
async fn health_metrics_openapi_and_docs() {
    let t = TestNode::start().await;
    let (status, health) = t.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["store_durable"], true, "{health}");
    let metrics = t.http.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xchange_jobs_total{outcome=\"submitted\"} 0"), "{metrics}");

    let (status, doc) = t.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert!(doc["paths"]["/v1/jobs"]["post"].is_object());
    assert!(doc["components"]["schemas"]["JobDocument"]["properties"]["job_goal"].is_object());
    // The API keys, and each operation's scope as the middleware enforces it.
    assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer", "{doc}");
    assert_eq!(doc["paths"]["/v1/jobs"]["post"]["security"], json!([{"api_key": ["submit"]}]));
    assert_eq!(doc["paths"]["/v1/jobs"]["get"]["security"], json!([{"api_key": ["read"]}]));
    assert_eq!(doc["paths"]["/v1/keys"]["get"]["security"], json!([{"api_key": ["admin"]}]));
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([{}]));

    // Swagger UI is served from the binary: its page and its script, no internet.
    let page = t.http.get(t.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("https://"), "the page loads something from the internet");
    let js = t.http.get(t.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.bytes().await.unwrap().len() > 100_000);
    t.stop().await;
}

/// The committed document is what the code generates (`XCHANGE_UPDATE_OPENAPI=1` rewrites
/// it after a deliberate change).
#[test]
fn openapi_snapshot_is_current() {
    use utoipa::OpenApi;
    let generated = xchange_node::ApiDoc::openapi().to_pretty_json().unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("XCHANGE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "docs/openapi.json is stale: run with XCHANGE_UPDATE_OPENAPI=1");
}
