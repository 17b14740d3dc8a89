//! How the CLI's client commands (`keys`, `cluster`) reach a node: its URL and an API key,
//! given or read from the data folder a local `xchange serve` wrote its admin key to.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

/// Where the node is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub(crate) struct ServerArgs {
    /// The node's URL.
    #[arg(long, env = "XCHANGE_SERVER", default_value = "http://127.0.0.1:7192")]
    server: String,
    /// An API key (xck_...) [default: the admin key in DATA/admin.key, if there is one].
    #[arg(long, env = "XCHANGE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The data folder of a local node, where its admin key is [default: ./xchange-data].
    #[arg(long, env = "XCHANGE_DATA", default_value = "xchange-data")]
    data: PathBuf,
}

impl ServerArgs {
    fn key(&self) -> Option<String> {
        self.api_key.clone().or_else(|| {
            let file = self.data.join(xchange_node::ADMIN_KEY_FILE);
            std::fs::read_to_string(file).ok().map(|k| k.trim().to_owned())
        })
    }

    /// Sends `method` to `path` with `body`, and returns the node's JSON answer, or an error
    /// that says what the node said.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut request = reqwest::Client::new().request(method, &url);
        if let Some(key) = self.key() {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.with_context(|| format!("{url} did not answer JSON"))?;
        if !status.is_success() {
            let error = &body["error"];
            anyhow::bail!(
                "{url} answered {status}: {} ({} {})",
                error["message"].as_str().unwrap_or("no message"),
                error["code"],
                error["name"].as_str().unwrap_or("")
            );
        }
        Ok(body)
    }
}

/// A client builder whose requests carry `key` as their bearer token.
pub(crate) fn with_key(builder: reqwest::ClientBuilder, key: &str) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse()?);
    Ok(builder.default_headers(headers))
}
