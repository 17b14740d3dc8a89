//! How a node joins a bus: in process by default, or NATS / Redis (`bus` in the config),
//! where the manager signs what creates obligations with the node's key (kept in the data
//! folder), finds agents through the bus's directory and relays its events.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use xchange_bus::NetOptions;
use xchange_mesh::{DirectoryStats, Mesh, RelayHandle};
use xchange_protocol::{AgentId, AgentKey, Code};
use xchange_runtime::AgentSpec;

use crate::config::NodeConfig;
use crate::error::ApiError;
use crate::keyfile::load_or_create_key;
use crate::metrics::{family, header};

/// The file in the data folder that holds the node's manager key.
pub const NODE_KEY_FILE: &str = "node.key";

/// The bus `config` names.
pub(crate) async fn join(config: &NodeConfig) -> Result<Mesh, ApiError> {
    let Some(url) = &config.bus else { return Ok(Mesh::in_process()) };
    let mut options = NetOptions::new(config.bus_prefix.clone());
    options.sender_rate = Some(config.agent_rate());
    if config.bus_nkey {
        options.nkey_seed = Some(xchange_mesh::nkey_seed(&node_key(config)?.seed()));
    }
    Mesh::connect(url, options, Duration::from_millis(config.card_ttl_ms))
        .await
        .map_err(|e| ApiError::new(Code::Unavailable, format!("joining the bus: {e}")))
}

/// The node's managing agent: in process an unsigned well-known id; on a bus that checks
/// signatures the key in the data folder, created on first start, so that agents see the
/// same manager across restarts.
pub(crate) fn manager_spec(config: &NodeConfig, mesh: &Mesh) -> Result<AgentSpec, ApiError> {
    if !mesh.bus().wants_signatures() {
        return Ok(AgentSpec::manager(AgentId::from_index(0, 1)));
    }
    let key = node_key(config)?;
    Ok(AgentSpec::manager(key.id()).with_key(key))
}

/// The node's id in the cluster: its key's agent id (the key is created in the data
/// folder on first start), so that a restarted node is the same node.
pub(crate) fn node_id(config: &NodeConfig) -> Result<String, ApiError> {
    Ok(node_key(config)?.id().to_string())
}

/// The node's key, from the data folder, created there on first use.
fn node_key(config: &NodeConfig) -> Result<AgentKey, ApiError> {
    let internal = |e: String| ApiError::new(Code::Internal, e);
    std::fs::create_dir_all(&config.data).map_err(|e| internal(format!("creating the data folder: {e}")))?;
    let (key, created) =
        load_or_create_key(&config.data.join(NODE_KEY_FILE)).map_err(|e| internal(e.to_string()))?;
    if created {
        tracing::info!(node = %key.id(), "created the node's key");
    }
    Ok(key)
}

/// Appends the directory's and the relay's counters to the metrics text.
pub(crate) fn render_metrics(
    out: &mut String,
    directory: Option<&DirectoryStats>,
    relay: Option<&RelayHandle>,
) {
    if let Some(d) = directory {
        header(out, "xchange_directory_cards_total", "Agent cards seen in the bus's directory, by outcome.");
        for (what, n) in [
            ("seen", &d.cards_seen),
            ("invalid", &d.cards_invalid),
            ("arrived", &d.arrivals),
            ("departed", &d.departures),
            ("expired", &d.expiries),
        ] {
            let _ = writeln!(out, "xchange_directory_cards_total{{outcome=\"{what}\"}} {}", n.load(Relaxed));
        }
    }
    if let Some(r) = relay {
        let s = r.stats();
        header(out, "xchange_relay_events_total", "Outbox events relayed to the bus's server, by outcome.");
        for (what, n) in [("published", &s.published), ("duplicate", &s.duplicates), ("error", &s.errors)] {
            let _ = writeln!(out, "xchange_relay_events_total{{outcome=\"{what}\"}} {}", n.load(Relaxed));
        }
        family(out, "xchange_relay_cursor", "gauge", "The last outbox event id the bus acknowledged.");
        let _ = writeln!(out, "xchange_relay_cursor {}", s.cursor.load(Relaxed));
    }
}
