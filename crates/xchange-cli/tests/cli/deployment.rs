//! The deployment files in `deploy/` (docs/deployment.md), checked without a container engine
//! or a cluster: each file against the schema of its format, committed in `deploy/schemas/`
//! (their README says where each came from), and every node against what the docs say a
//! node is given (a store, a bus, a health check on `/healthz`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jsonschema::{Registry, Validator};
use serde::Deserialize;
use serde_json::{Value, json};

/// The Kubernetes version whose schemas are committed (deploy/schemas/refresh.sh).
const KUBERNETES_SCHEMAS: &str = "kubernetes/v1.37.0-local-strict";

/// Where the Kubernetes kinds' schemas find their shared definitions.
const KUBERNETES_DEFINITIONS: &str = "https://kubernetes.io/api/_definitions.json";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every document of a YAML file as JSON, with merge keys (`<<: *anchor`) applied as
/// Compose applies them.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    yaml_serde::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = yaml_serde::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            value.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(value).unwrap_or_else(|e| panic!("{}: not JSON-like: {e}", path.display()))
        })
        .collect()
}

/// The schema's complaints about `instance`, one line each (none when it is valid).
fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let mut message = e.to_string();
            if message.len() > 300 {
                let mut end = 300;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                message.push_str("...");
            }
            format!("at {:?}: {message}", e.instance_path().as_str())
        })
        .collect()
}

fn compose_validator() -> Validator {
    let schema = read_json(&deploy().join("schemas/compose-spec.json"));
    jsonschema::validator_for(&schema).expect("the Compose Specification schema compiles")
}

fn kubernetes_schema(name: &str) -> Value {
    read_json(&deploy().join("schemas").join(KUBERNETES_SCHEMAS).join(format!("{name}.json")))
}

/// The Kubernetes schemas: one validator per kind, all sharing one definitions file.
struct Kubernetes {
    registry: Registry<'static>,
}

impl Kubernetes {
    fn new() -> Self {
        let definitions = kubernetes_schema("_definitions");
        let registry = Registry::new()
            .add(KUBERNETES_DEFINITIONS, definitions)
            .and_then(|builder| builder.prepare())
            .expect("the Kubernetes definitions load");
        Self { registry }
    }

    /// The validator for a document's `apiVersion` and `kind`.
    fn validator(&self, document: &Value) -> Validator {
        let file = match (document["apiVersion"].as_str(), document["kind"].as_str()) {
            (Some("v1"), Some("Service")) => "service-v1",
            (Some("v1"), Some("Secret")) => "secret-v1",
            (Some("apps/v1"), Some("StatefulSet")) => "statefulset-apps-v1",
            (Some("policy/v1"), Some("PodDisruptionBudget")) => "poddisruptionbudget-policy-v1",
            (api, kind) => panic!(
                "no schema is committed for {api:?} {kind:?}: add it to deploy/schemas/refresh.sh and run it"
            ),
        };
        let schema = kubernetes_schema(file);
        jsonschema::options()
            .with_registry(&self.registry)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema {file} compiles: {e}"))
    }
}

fn kubernetes_documents() -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for file in ["node.yaml", "secret.example.yaml"] {
        for document in yaml_documents(&deploy().join("kubernetes").join(file)) {
            let (kind, name) = (document["kind"].as_str(), document["metadata"]["name"].as_str());
            let name = format!("{file}: {} {}", kind.unwrap_or("?"), name.unwrap_or("?"));
            all.push((name, document));
        }
    }
    all
}

fn the_statefulset(documents: &[(String, Value)]) -> Value {
    let mut sets = documents.iter().filter(|(_, d)| d["kind"] == "StatefulSet");
    let (_, set) = sets.next().expect("node.yaml has a StatefulSet");
    assert!(sets.next().is_none(), "one StatefulSet");
    set.clone()
}

#[test]
fn the_deployment_files_match_the_schemas_of_their_formats() {
    let mut refused = Vec::new();
    let compose = yaml_documents(&deploy().join("compose.yaml"));
    assert_eq!(compose.len(), 1, "compose.yaml is one document");
    for e in errors(&compose_validator(), &compose[0]) {
        refused.push(format!("compose.yaml {e}"));
    }
    let kubernetes = Kubernetes::new();
    let documents = kubernetes_documents();
    let kinds: Vec<&str> = documents.iter().filter_map(|(_, d)| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Service", "Service", "StatefulSet", "PodDisruptionBudget", "Secret"]);
    for (name, document) in &documents {
        for e in errors(&kubernetes.validator(document), document) {
            refused.push(format!("{name} {e}"));
        }
    }
    assert!(refused.is_empty(), "the schemas refuse:\n{}", refused.join("\n"));
}

#[test]
fn the_schemas_refuse_a_broken_copy() {
    // What a typo would do: a number as a word, a key the format does not have.
    let documents = kubernetes_documents();
    let kubernetes = Kubernetes::new();
    let mut set = the_statefulset(&documents);
    let validator = kubernetes.validator(&set);
    set["spec"]["replicas"] = json!("three");
    let refused = errors(&validator, &set);
    assert!(refused.iter().any(|e| e.contains("/spec/replicas")), "replicas: \"three\" passed: {refused:?}");
    let mut set = the_statefulset(&documents);
    set["spec"]["template"]["spec"]["containers"][0]["envFrom_typo"] = json!([]);
    let refused = errors(&validator, &set);
    assert!(refused.iter().any(|e| e.contains("envFrom_typo")), "an unknown key passed: {refused:?}");

    let compose_validator = compose_validator();
    let mut compose = yaml_documents(&deploy().join("compose.yaml")).remove(0);
    compose["services"]["node-1"]["replica_count"] = json!(3);
    let refused = errors(&compose_validator, &compose);
    assert!(
        refused.iter().any(|e| e.contains("replica_count")),
        "an unknown service key passed: {refused:?}"
    );
    let mut compose = yaml_documents(&deploy().join("compose.yaml")).remove(0);
    compose["services"]["node-2"]["depends_on"]["postgres"]["condition"] = json!("healthy");
    let refused = errors(&compose_validator, &compose);
    assert!(refused.iter().any(|e| e.contains("/services/node-2")), "condition: healthy passed: {refused:?}");
}

/// What every node is given, as docs/deployment.md describes it.
fn check_node(name: &str, env: &serde_json::Map<String, Value>, health_path: &str) {
    for key in ["XCHANGE_STORE", "XCHANGE_BUS", "XCHANGE_DATA", "XCHANGE_ADVERTISE_URL"] {
        assert!(env.contains_key(key), "{name} sets no {key}");
    }
    assert_eq!(env["XCHANGE_DATA"], "/data", "{name}: the data folder is the volume");
    let bus = env["XCHANGE_BUS"].as_str().unwrap_or_default();
    assert!(bus.starts_with("nats://"), "{name}: replicas share a NATS bus, not {bus:?}");
    assert_eq!(env["XCHANGE_PARTITIONS"], "16", "{name}: every node must agree on the partitions");
    assert_eq!(env["XCHANGE_PARTITION_LEASE_MS"], "10000", "{name}");
    assert_eq!(health_path, "/healthz", "{name}: the health check");
}

#[test]
fn every_node_has_a_store_a_bus_and_a_health_check() {
    let compose = yaml_documents(&deploy().join("compose.yaml")).remove(0);
    let services = compose["services"].as_object().expect("services");
    let nodes: Vec<&String> = services.keys().filter(|k| k.starts_with("node-")).collect();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    for (n, name) in nodes.iter().enumerate() {
        let service = &services[name.as_str()];
        let env = service["environment"].as_object().expect("environment as a mapping");
        let store = env["XCHANGE_STORE"].as_str().unwrap_or_default();
        assert!(store.starts_with("postgres://"), "{name}: replicas share PostgreSQL, not {store:?}");
        assert_eq!(env["XCHANGE_ADVERTISE_URL"], format!("http://{name}:7192"), "{name}");
        assert_eq!(env["XCHANGE_LISTEN"], "0.0.0.0:7192", "{name}");
        let test: Vec<&str> = service["healthcheck"]["test"]
            .as_array()
            .expect("a health check command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let url_checked = test.iter().find(|a| a.starts_with("http://")).expect("a URL in the health check");
        let path = url_checked.strip_prefix("http://localhost:7192").expect("the node's own port");
        check_node(name, env, path);
        assert_eq!(service["ports"], json!([format!("{}:7192", 7191 + n)]), "{name}'s port on the host");
        assert_eq!(service["volumes"], json!([format!("{name}-data:/data")]), "{name}: its own data volume");
        assert_eq!(service["depends_on"]["postgres"]["condition"], "service_healthy", "{name}");
    }

    let documents = kubernetes_documents();
    let set = the_statefulset(&documents);
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let mut env = serde_json::Map::new();
    for var in container["env"].as_array().expect("env") {
        let value = var.get("value").cloned().unwrap_or_else(|| var["valueFrom"].clone());
        env.insert(var["name"].as_str().expect("a name").to_owned(), value);
    }
    let secret = &env["XCHANGE_STORE"]["secretKeyRef"];
    let store_secret = documents
        .iter()
        .find(|(_, d)| d["kind"] == "Secret" && d["metadata"]["name"] == secret["name"])
        .map(|(_, d)| d["stringData"][secret["key"].as_str().unwrap_or_default()].clone());
    let store = store_secret.expect("XCHANGE_STORE comes from the Secret of secret.example.yaml");
    assert!(store.as_str().is_some_and(|s| s.starts_with("postgres://")), "the Secret's URL: {store}");
    assert_eq!(env["XCHANGE_ADVERTISE_URL"], "http://$(POD_NAME).xchange-headless:7192");
    assert_eq!(env["POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name");
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "http", "{probe}");
        check_node(&format!("the StatefulSet's {probe}"), &env, get["path"].as_str().unwrap_or_default());
    }
    assert_eq!(container["ports"], json!([{"name": "http", "containerPort": 7192}]));
    assert_eq!(set["spec"]["serviceName"], "xchange-headless");
    let mount = &container["volumeMounts"][0];
    assert_eq!((&mount["name"], &mount["mountPath"]), (&json!("data"), &json!("/data")));
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data");
    assert_eq!(set["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn every_setting_the_deployment_files_use_is_documented() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let documented = read(&docs.join("service.md")) + &read(&docs.join("deployment.md"));
    let mut used = BTreeSet::new();
    for file in ["compose.yaml", "kubernetes/node.yaml", "Dockerfile"] {
        let text = read(&deploy().join(file));
        for (at, _) in text.match_indices("XCHANGE_") {
            let name: String =
                text[at..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            used.insert((file, name));
        }
    }
    assert!(used.len() > 10, "the files set XCHANGE_ variables: {used:?}");
    let missing: Vec<_> =
        used.iter().filter(|(_, name)| !documented.contains(&format!("`{name}`"))).collect();
    assert!(missing.is_empty(), "not in docs/service.md or docs/deployment.md: {missing:?}");
}
