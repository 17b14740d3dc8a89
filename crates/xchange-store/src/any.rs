//! [`open`]: a store from a URL, whichever backend it names.

use crate::error::{StoreError, redact_url};
#[cfg(feature = "postgres")]
use crate::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
use crate::sqlite::SqliteStore;

/// A store of either backend, as [`open`] returns it.
///
/// An enum rather than a `Box<dyn Store>`: the trait's methods return `impl Future`, which
/// keeps them free of boxing and of an `async-trait` dependency but makes the trait not
/// object-safe. Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// The embedded SQLite backend.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// The PostgreSQL backend.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// Opens the store a URL names, creating and migrating its schema as needed.
///
/// - `sqlite://PATH` (also `sqlite:PATH`, `sqlite:///ABSOLUTE/PATH`): the file is created
///   if missing. In-memory databases are refused (not durable).
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?options=-c search_path=SCHEMA]`
///   (or `postgresql://`): the schema is the first of the connection's `search_path`.
///
/// Any other scheme, or a backend left out of this build, is a
/// [`StoreError::InvalidUrl`] whose message says what is expected.
pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme {
        #[cfg(feature = "sqlite")]
        Some("sqlite") => Ok(AnyStore::Sqlite(SqliteStore::open(url).await?)),
        #[cfg(feature = "postgres")]
        Some("postgres" | "postgresql") => Ok(AnyStore::Postgres(PostgresStore::connect(url).await?)),
        // A guard, not a pattern: with both features on, this arm is reached by no scheme.
        Some(scheme) if matches!(scheme, "sqlite" | "postgres" | "postgresql") => {
            Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: format!("this build has no {scheme} backend (cargo feature of xchange-store)"),
            })
        }
        _ => Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "unknown scheme; expected sqlite://PATH or postgres://USER@HOST/DATABASE".to_owned(),
        }),
    }
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! dispatch {
    ($kind:ident, $self:ident, $s:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($s) => $call.await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl_store_by!(impl[] AnyStore => dispatch);
