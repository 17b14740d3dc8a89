//! What the unit tests share: a store on a fresh temporary file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SqliteStore;

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SQLite store on a new file, and the directory that holds it (keep it alive).
pub(crate) async fn sqlite_store() -> (SqliteStore, TempDir) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xchange-store-unit-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open_path(dir.join("store.db")).await.expect("open");
    (store, TempDir(dir))
}
