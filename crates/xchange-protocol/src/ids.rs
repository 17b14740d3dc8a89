//! Identifiers and wire time.
//!
//! All ids are small `Copy` values so that a million engines fit in memory: an agent id
//! is the agent's 32-byte Ed25519 public key (so a signature can be checked from the id
//! alone), task and message ids are UUIDs (version 7, time-ordered) built from time and
//! random bytes passed in by the caller.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_DNSSEC;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Unix time in milliseconds, as carried on the wire.
pub type UnixMs = u64;

/// Characters in the text form of an agent id.
pub const AGENT_ID_LEN: usize = 52;

/// An agent's identity: its Ed25519 public key.
///
/// Text form: the 32 bytes in lower-case base32hex without padding (52 characters), which is
/// safe in NATS subjects, Redis channels and URLs. Agents that never sign (in-process
/// simulations) may use any 32 bytes, for example [`AgentId::from_index`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentId(pub [u8; 32]);

impl std::hash::Hash for AgentId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // One write of the raw bytes, without a length prefix, so that a hasher can key on
        // the leading bytes, which are already well spread.
        state.write(&self.0);
    }
}

impl AgentId {
    /// A deterministic id for unsigned, in-process agents (simulations, benchmarks).
    pub fn from_index(namespace: u32, index: u64) -> Self {
        // A simple bijective mix so that ids look random and spread evenly in ordered maps.
        let mut bytes = [0u8; 32];
        let mut x = (u64::from(namespace) << 40) ^ index ^ 0x9e37_79b9_7f4a_7c15;
        for chunk in bytes.chunks_mut(8) {
            x = splitmix(x);
            chunk.copy_from_slice(&x.to_be_bytes());
        }
        bytes[31] = (index & 0xff) as u8;
        bytes[30] = ((index >> 8) & 0xff) as u8;
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first eight bytes as a number: a cheap, well-spread hash key.
    pub fn short(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("eight bytes"))
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: ids are written into every envelope and subject.
        let mut text = [0u8; AGENT_ID_LEN];
        BASE32_DNSSEC.encode_mut(&self.0, &mut text);
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = BASE32_DNSSEC.encode(&self.0);
        write!(f, "AgentId({}…)", &text[..10])
    }
}

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {text:?}")]
pub struct IdParseError {
    what: &'static str,
    text: String,
}

impl FromStr for AgentId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdParseError { what: "agent id", text: s.chars().take(80).collect() };
        // Lower case only, so that one id has exactly one text form.
        if s.len() != AGENT_ID_LEN || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)) {
            return Err(err());
        }
        let mut bytes = [0u8; 32];
        match BASE32_DNSSEC.decode_mut(s.as_bytes(), &mut bytes) {
            Ok(32) => Ok(Self(bytes)),
            _ => Err(err()),
        }
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A version-7 UUID from a unix time in milliseconds and 10 random bytes.
            pub fn new_v7(unix_ms: UnixMs, random: [u8; 10]) -> Self {
                Self(uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid())
            }

            /// The nil id (all zeros).
            pub const NIL: Self = Self(uuid::Uuid::nil());
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdParseError { what: $what, text: s.chars().take(80).collect() })
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "format": "uuid" })
            }
        }
    };
}

uuid_id!(
    /// A task id (also the FIPA conversation id). Version-7 UUID.
    TaskId,
    "task id"
);
uuid_id!(
    /// A message id: unique per sender, used for deduplication and `in_reply_to`.
    MsgId,
    "message id"
);

/// A random nonce that makes every signed message unique (replay protection).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nonce(pub [u8; 16]);

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE32_DNSSEC.encode(&self.0))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // Lower case only, like agent ids: one nonce has one text form.
        if !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)) {
            return Err(serde::de::Error::custom("invalid nonce"));
        }
        let bytes =
            BASE32_DNSSEC.decode(s.as_bytes()).map_err(|_| serde::de::Error::custom("invalid nonce"))?;
        Ok(Self(bytes.try_into().map_err(|_| serde::de::Error::custom("nonce must be 16 bytes"))?))
    }
}

/// An Ed25519 signature (64 bytes), base64url without padding on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}…)", &data_encoding::BASE64URL_NOPAD.encode(&self.0)[..8])
    }
}

impl Serialize for Sig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::BASE64URL_NOPAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("invalid signature encoding"))?;
        Ok(Self(bytes.try_into().map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))?))
    }
}

#[cfg(feature = "schema")]
mod schema_impls {
    use super::*;
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use std::borrow::Cow;

    impl JsonSchema for AgentId {
        fn schema_name() -> Cow<'static, str> {
            "AgentId".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "Ed25519 public key, lower-case base32hex without padding.",
                "type": "string", "pattern": "^[0-9a-v]{52}$"
            })
        }
    }
    impl JsonSchema for Nonce {
        fn schema_name() -> Cow<'static, str> {
            "Nonce".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "16 random bytes, lower-case base32hex without padding.",
                "type": "string", "pattern": "^[0-9a-v]{26}$"
            })
        }
    }
    impl JsonSchema for Sig {
        fn schema_name() -> Cow<'static, str> {
            "Sig".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "Ed25519 signature (64 bytes), base64url without padding.",
                "type": "string", "pattern": "^[A-Za-z0-9_-]{86}$"
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_text_round_trips_and_rejects_garbage() {
        let id = AgentId::from_index(1, 42);
        let text = id.to_string();
        assert_eq!(text.len(), AGENT_ID_LEN);
        assert_eq!(text.parse::<AgentId>().unwrap(), id);
        assert!("not-an-id".parse::<AgentId>().is_err());
        assert!(text.to_uppercase().parse::<AgentId>().is_err());
        assert_ne!(AgentId::from_index(1, 1), AgentId::from_index(1, 2));
        assert_ne!(AgentId::from_index(1, 1), AgentId::from_index(2, 1));
    }

    #[test]
    fn nonce_text_is_lower_case_base32hex() {
        let n = Nonce([0xab; 16]);
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(text.len(), 26 + 2);
        assert_eq!(serde_json::from_str::<Nonce>(&text).unwrap(), n);
        assert!(serde_json::from_str::<Nonce>(&text.to_uppercase()).is_err());
        assert!(serde_json::from_str::<Nonce>("\"0123\"").is_err());
    }

    #[test]
    fn v7_ids_order_by_time() {
        let a = TaskId::new_v7(1_000, [9; 10]);
        let b = TaskId::new_v7(2_000, [0; 10]);
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.to_string().parse::<TaskId>().unwrap(), a);
    }
}
