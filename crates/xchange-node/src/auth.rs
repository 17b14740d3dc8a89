//! Callers of the HTTP API: API keys issued per organisation, with scopes.
//!
//! A key reads `xck_<id>_<secret>`: the id names the stored key, the secret proves it.
//! The store keeps the SHA-256 of the secret only (secrets are 256 random bits, so a slow
//! hash would add nothing). Scopes: `submit` (jobs in, cancels), `read` (jobs, events,
//! registry, agents), `admin` (everything, keys and the registry's writes included).
//!
//! With `auth` on (the default), every `/v1/` call but the agents' WebSocket needs a key
//! (401 `unauthenticated`, 5004, without or with an unknown or revoked one; 403
//! `forbidden`, 5007, without the scope). On first start a node whose store has no admin
//! key creates one and writes it to `DATA/admin.key`; `admin_key` in the config (or
//! `XCHANGE_ADMIN_KEY`) gives one instead, for deployments that hand it in.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use data_encoding::{BASE32_NOPAD, HEXLOWER};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use xchange_protocol::Code;
use xchange_store::{ApiKey, Store, StoreError};

use crate::error::ApiError;
use crate::node::{Node, now_ms};

/// The file in the data folder that holds the admin key a node created.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The organisation of the admin keys a node creates.
pub const OPERATOR_ORG: &str = "operator";

/// How long a checked key is trusted without reading the store again: a key revoked on
/// another node stops working within this time (at once on the node that revoked it).
const CACHE_FOR: Duration = Duration::from_secs(5);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Submit, validate, explain and cancel jobs.
    Submit,
    /// Read jobs, events, the registry, organisations, agents and the cluster.
    Read,
    /// Everything, API keys and the registry's writes included.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 3] = [Self::Submit, Self::Read, Self::Admin];

    /// The scope's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Who is calling: the key that authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// The organisation it acts for.
    pub org_id: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The key itself, which a call made on the caller's behalf to another node presents
    /// (that node checks it against its own keys).
    pub credential: Credential,
}

/// A key kept to act on its owner's behalf; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(Arc<str>);

impl Credential {
    /// The key, for an `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

/// The credential a request's caller lends to the calls made on its behalf (none with
/// authentication off).
pub(crate) fn credential_of(caller: Option<&Caller>) -> Option<&str> {
    caller.map(|c| c.credential.expose())
}

impl Caller {
    /// Whether the caller may do what `scope` covers (admin covers everything).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// A new key: the full key (shown once) and what the store keeps.
pub(crate) fn new_key(org_id: &str, scopes: &[Scope], label: &str) -> Result<(String, ApiKey), ApiError> {
    let mut random = [0u8; 42];
    getrandom::fill(&mut random).map_err(|e| ApiError::new(Code::Internal, format!("no randomness: {e}")))?;
    let id = BASE32_NOPAD.encode(&random[..10]).to_ascii_lowercase();
    let secret = BASE32_NOPAD.encode(&random[10..]).to_ascii_lowercase();
    let record = ApiKey {
        key_id: id.clone(),
        org_id: org_id.to_owned(),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        secret_hash: hash_secret(&secret),
        label: label.to_owned(),
        created_ms: now_ms() as i64,
        revoked_ms: None,
    };
    Ok((format!("xck_{id}_{secret}"), record))
}

/// A fresh key (`xck_<id>_<secret>`) that nothing stores yet: for `admin_key`, when a
/// deployment or a benchmark hands a node its admin key.
pub fn fresh_api_key() -> Result<String, ApiError> {
    new_key(OPERATOR_ORG, &[Scope::Admin], "").map(|(key, _)| key)
}

/// The id and secret of a key, if it has the key's shape.
pub(crate) fn split_key(key: &str) -> Option<(&str, &str)> {
    let (id, secret) = key.strip_prefix("xck_")?.split_once('_')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id) && ok(secret)).then_some((id, secret))
}

fn hash_secret(secret: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(secret.as_bytes()))
}

/// Keys checked recently, by id, with when they were read from the store.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(Mutex<std::collections::HashMap<String, (Arc<ApiKey>, Instant)>>);

impl KeyCache {
    fn get(&self, id: &str) -> Option<Arc<ApiKey>> {
        let cache = self.0.lock();
        cache.get(id).filter(|(_, at)| at.elapsed() < CACHE_FOR).map(|(key, _)| key.clone())
    }

    fn put(&self, key: ApiKey) -> Arc<ApiKey> {
        let key = Arc::new(key);
        let mut cache = self.0.lock();
        // Bounded by the number of keys; old entries are dropped when it grows.
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(key.key_id.clone(), (key.clone(), Instant::now()));
        key
    }

    pub(crate) fn forget(&self, id: &str) {
        self.0.lock().remove(id);
    }
}

impl<S: Store + Clone> Node<S> {
    /// The caller a bearer key stands for.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, ApiError> {
        let unauthenticated = |m: &str| ApiError::new(Code::Unauthenticated, m).at("Authorization");
        let Some(given) = bearer else {
            return Err(unauthenticated("an API key is required: Authorization: Bearer xck_..."));
        };
        let Some((id, secret)) = split_key(given) else {
            return Err(unauthenticated("the bearer token is not an API key (xck_<id>_<secret>)"));
        };
        let key = match self.keys.get(id) {
            Some(key) => key,
            None => match self.store.get_api_key(id).await {
                Ok(key) => self.keys.put(key),
                Err(StoreError::NotFound { .. }) => return Err(unauthenticated("the API key is not valid")),
                Err(e) => return Err(e.into()),
            },
        };
        let matches = xchange_ws::token_matches(&hash_secret(secret), std::slice::from_ref(&key.secret_hash));
        if !matches {
            return Err(unauthenticated("the API key is not valid"));
        }
        if key.revoked_ms.is_some() {
            return Err(unauthenticated("the API key was revoked"));
        }
        let scopes = key.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
        Ok(Caller {
            key_id: key.key_id.clone(),
            org_id: key.org_id.clone(),
            scopes,
            credential: Credential(Arc::from(given)),
        })
    }

    /// Makes sure an admin key exists: the configured one, or else, if the store has no
    /// admin key, a new one written to `DATA/admin.key`. Returns that file when created.
    pub(crate) async fn ensure_admin_key(&self) -> Result<Option<std::path::PathBuf>, ApiError> {
        if let Some(given) = &self.config.admin_key {
            return self.install_admin_key(given).await.map(|()| None);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_api_keys(after.as_deref(), 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key_id.clone());
            let admin = |k: &ApiKey| k.revoked_ms.is_none() && k.scopes.iter().any(|s| s == "admin");
            if page.iter().any(admin) {
                return Ok(None);
            }
        }
        let (full, record) = new_key(OPERATOR_ORG, &[Scope::Admin], "created at first start")?;
        let path = self.config.data.join(ADMIN_KEY_FILE);
        write_secret(&path, &full)?;
        self.store.create_api_key(&record).await?;
        tracing::info!(path = %path.display(), key_id = %record.key_id, "created an admin API key");
        Ok(Some(path))
    }

    /// Stores the configured admin key if it is not stored yet.
    async fn install_admin_key(&self, given: &str) -> Result<(), ApiError> {
        let invalid = || ApiError::invalid("admin_key is not an API key (xck_<id>_<secret>)").at("admin_key");
        let (id, secret) = split_key(given).ok_or_else(invalid)?;
        match self.store.get_api_key(id).await {
            Ok(stored) if stored.secret_hash == hash_secret(secret) => Ok(()),
            Ok(_) => Err(ApiError::invalid("admin_key's id is stored with another secret").at("admin_key")),
            Err(StoreError::NotFound { .. }) => {
                let record = ApiKey {
                    key_id: id.to_owned(),
                    org_id: OPERATOR_ORG.to_owned(),
                    scopes: vec![Scope::Admin.as_str().to_owned()],
                    secret_hash: hash_secret(secret),
                    label: "configured admin_key".to_owned(),
                    created_ms: now_ms() as i64,
                    revoked_ms: None,
                };
                match self.store.create_api_key(&record).await {
                    Ok(()) => Ok(()),
                    // Another node given the same key installed it first.
                    Err(e) => match self.store.get_api_key(id).await {
                        Ok(stored) if stored.secret_hash == record.secret_hash => Ok(()),
                        _ => Err(e.into()),
                    },
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes a secret to a new file readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> Result<(), ApiError> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| ApiError::new(Code::Internal, format!("writing {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    writeln!(file, "{secret}").map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_shape_and_keep_only_a_hash() {
        let (full, record) = new_key("acme", &[Scope::Submit, Scope::Read], "ci").unwrap();
        let (id, secret) = split_key(&full).unwrap();
        assert_eq!((id, record.scopes.join(" ").as_str()), (record.key_id.as_str(), "submit read"));
        assert_eq!(record.secret_hash, hash_secret(secret));
        assert!(!record.secret_hash.contains(secret));
        assert_eq!(secret.len(), 52, "256 random bits");
        assert_ne!(new_key("acme", &[], "").unwrap().0, full);
        for bad in ["", "xck_", "xck_abc", "xck__x", "Bearer xck_a_b", "xck_A_b", "xck_a_b c", "xck_a_b_"] {
            assert!(split_key(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn admin_covers_every_scope() {
        let caller = |scopes: Vec<Scope>| Caller {
            key_id: "k".into(),
            org_id: "o".into(),
            scopes,
            credential: Credential(Arc::from("xck_k_secret")),
        };
        assert_eq!(format!("{:?}", caller(vec![]).credential), "Credential(***)");
        assert!(caller(vec![Scope::Admin]).may(Scope::Submit));
        assert!(caller(vec![Scope::Read]).may(Scope::Read));
        assert!(!caller(vec![Scope::Read]).may(Scope::Submit));
        assert!(!caller(vec![Scope::Submit, Scope::Read]).may(Scope::Admin));
        assert_eq!(Scope::ALL.map(|s| Scope::parse(s.as_str())), Scope::ALL.map(Some));
    }
}
