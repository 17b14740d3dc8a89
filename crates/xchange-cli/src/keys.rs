//! `xchange keys create|list|revoke`: the API keys of a node's HTTP API, through the node
//! (`/v1/keys`, admin scope).

use anyhow::Context;
use serde_json::{Value, json};

use crate::client::ServerArgs;

/// API keys for organisations, with scopes.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; it is printed once.
    Create(CreateArgs),
    /// List the keys (never their secrets).
    List(ListArgs),
    /// Revoke a key by its id.
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The organisation the key acts for.
    #[arg(long)]
    org: String,
    /// What it may do: submit, read, admin (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "submit,read")]
    scopes: Vec<String>,
    /// A note: who the key is for.
    #[arg(long, default_value = "")]
    label: String,
    /// Print the node's JSON answer.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the node's JSON answers, one page per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The key's id (`xck_<id>_...`), or the whole key.
    key: String,
}

pub(crate) fn run(command: KeysCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(async {
        match command {
            KeysCommand::Create(args) => create(args).await,
            KeysCommand::List(args) => list(args).await,
            KeysCommand::Revoke(args) => revoke(args).await,
        }
    })
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let body = json!({"org_id": args.org, "scopes": args.scopes, "label": args.label});
    let created = args.server.call(reqwest::Method::POST, "/v1/keys", Some(&body)).await?;
    if args.json {
        println!("{created}");
    } else {
        println!("{}", created["key"].as_str().unwrap_or_default());
        eprintln!(
            "created key {} for {} with scopes {}: it is shown this once",
            created["key_id"].as_str().unwrap_or("?"),
            created["org_id"].as_str().unwrap_or("?"),
            scopes_of(&created)
        );
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    if !args.json {
        println!("{:<18} {:<20} {:<18} {:<10} label", "key id", "organisation", "scopes", "state");
    }
    loop {
        let path = match &after {
            Some(a) => format!("/v1/keys?limit=500&after={a}"),
            None => "/v1/keys?limit=500".to_owned(),
        };
        let page = args.server.call(reqwest::Method::GET, &path, None).await?;
        if args.json {
            println!("{page}");
        } else {
            for key in page["items"].as_array().into_iter().flatten() {
                let state = if key["revoked_ms"].is_null() { "active" } else { "revoked" };
                println!(
                    "{:<18} {:<20} {:<18} {:<10} {}",
                    key["key_id"].as_str().unwrap_or("?"),
                    key["org_id"].as_str().unwrap_or("?"),
                    scopes_of(key),
                    state,
                    key["label"].as_str().unwrap_or("")
                );
            }
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    // A whole key names its id between the prefix and the secret.
    let id = args.key.strip_prefix("xck_").and_then(|rest| rest.split('_').next()).unwrap_or(&args.key);
    let revoked = args.server.call(reqwest::Method::DELETE, &format!("/v1/keys/{id}"), None).await?;
    println!("revoked key {} of {}", revoked["key_id"].as_str().unwrap_or(id), revoked["org_id"]);
    Ok(())
}

fn scopes_of(key: &Value) -> String {
    let scopes: Vec<&str> =
        key["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    scopes.join(",")
}
