//! Ed25519 keys kept in files: the node's manager key in its data folder, an agent's key
//! where `--key-file` says. A key file holds the 32-byte seed in 64 hex digits and is
//! created readable by its owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use data_encoding::HEXLOWER;
use xchange_protocol::AgentKey;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or creating the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file does not hold a seed.
    #[error("key file {path}: expected 64 hex digits (a 32-byte ed25519 seed)")]
    Invalid {
        /// The file.
        path: String,
    },
    /// The system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// A key from fresh OS randomness.
pub fn fresh_key() -> Result<AgentKey, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    Ok(AgentKey::from_seed(seed))
}

/// The key in `path`, or a new one written there; the flag says whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(AgentKey, bool), KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.display().to_string(), source };
    match fs::read_to_string(path) {
        Ok(text) => {
            let seed = parse_seed(&text)
                .ok_or_else(|| KeyFileError::Invalid { path: path.display().to_string() })?;
            Ok((AgentKey::from_seed(seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
            let mut file = new_private_file(path).map_err(io)?;
            writeln!(file, "{}", HEXLOWER.encode(&seed)).map_err(io)?;
            Ok((AgentKey::from_seed(seed), true))
        }
        Err(e) => Err(io(e)),
    }
}

fn parse_seed(text: &str) -> Option<[u8; 32]> {
    HEXLOWER.decode(text.trim().to_ascii_lowercase().as_bytes()).ok()?.try_into().ok()
}

fn new_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let path = std::env::temp_dir().join(format!("xchange-key-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let (created, new) = load_or_create_key(&path).unwrap();
        let (read, again) = load_or_create_key(&path).unwrap();
        assert!(new && !again);
        assert_eq!(created.id(), read.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_key_files_are_refused() {
        for bad in ["", "abc", &"zz".repeat(32), &"00".repeat(31), &"00".repeat(33)] {
            assert!(parse_seed(bad).is_none(), "{bad:?}");
        }
        assert_eq!(parse_seed(&format!("  {}\n", "0A".repeat(32))).unwrap(), [0x0a; 32]);
        let path = std::env::temp_dir().join(format!("xchange-badkey-{}", std::process::id()));
        fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_or_create_key(&path), Err(KeyFileError::Invalid { .. })));
        fs::remove_file(&path).unwrap();
    }
}
