//! Schema migrations, embedded in the binary.
//!
//! Each backend has its own folder under `migrations/` because the column types differ
//! (TEXT and STRICT tables in SQLite, JSONB and `COLLATE "C"` in PostgreSQL); both must
//! hold the same versions with the same meaning. sqlx records applied versions and their
//! checksums in `_sqlx_migrations`, so editing a migration that has shipped is refused at
//! the next start: add a new file instead.
//!
//! The list is written out here rather than read by `sqlx::migrate!`, to keep sqlx's
//! proc-macro (and a second compilation of both drivers for it) out of the build.

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// A migration: version, description, SQL.
pub(crate) type Step = (i64, &'static str, &'static str);

#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: &[Step] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "registry and stats", include_str!("../migrations/sqlite/0002_registry_and_stats.sql")),
    (3, "partitions", include_str!("../migrations/sqlite/0003_partitions.sql")),
    (4, "api keys", include_str!("../migrations/sqlite/0004_api_keys.sql")),
];

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: &[Step] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "registry and stats", include_str!("../migrations/postgres/0002_registry_and_stats.sql")),
    (3, "partitions", include_str!("../migrations/postgres/0003_partitions.sql")),
    (4, "api keys", include_str!("../migrations/postgres/0004_api_keys.sql")),
];

/// A migrator for `steps`, each run in its own transaction.
pub(crate) fn migrator(steps: &[Step]) -> Migrator {
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}
