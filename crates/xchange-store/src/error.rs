//! The one error type of the crate.

use std::sync::Arc;

use xchange_protocol::Code;

use crate::job::JobState;

/// Why a store operation was refused or failed.
///
/// The first variants are answers about the data (the caller did something the state does
/// not allow); the last ones are failures of the database or its configuration. Messages
/// are lower case, without a trailing period. [`StoreError::code`] gives the status code
/// an API answers with.
///
/// Cloneable (the database errors are shared behind an [`Arc`]): when a group commit fails,
/// every write of the batch gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No row with that key.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What was looked up: `job`, `taskdb`, `org`, `agent card` or `template`.
        kind: &'static str,
        /// The key.
        id: String,
    },
    /// A job id was submitted again with another body (or to another task database).
    #[error("job {job_id:?} already exists with a different body")]
    Conflict {
        /// The job id.
        job_id: String,
    },
    /// A conditional write found another version than the caller expected: someone else
    /// changed the row since the caller read it.
    #[error("{kind} {id:?} is at version {actual}, not {expected}")]
    StaleVersion {
        /// `job`, `taskdb` or `org`.
        kind: &'static str,
        /// The key.
        id: String,
        /// The version the caller expected.
        expected: i64,
        /// The version found (0 when the row does not exist).
        actual: i64,
    },
    /// A job state change that the lifecycle does not allow: out of a terminal state, or
    /// back into `submitted`.
    #[error("job {job_id:?} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The job id.
        job_id: String,
        /// The state the job is in.
        from: JobState,
        /// The state asked for.
        to: JobState,
    },
    /// A fenced write (see [`Fence`](crate::Fence)) whose partition's lease has moved on:
    /// another node manages the partition now, or the job is in another partition.
    #[error("partition {partition} is at epoch {current}, not {epoch}: another node manages it now")]
    Fenced {
        /// The partition the write named.
        partition: i32,
        /// The epoch the write carried.
        epoch: i64,
        /// The lease's epoch now (-1 when the job is in another partition or the
        /// partition does not exist).
        current: i64,
    },
    /// An argument the store cannot accept (empty id, malformed hash, a JSON string with
    /// a NUL character, ...). Refused before anything is written, by both backends alike.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The URL given to [`open`](crate::open) names no backend of this build or is
    /// malformed. The URL in the message has its password removed.
    #[error("invalid store url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row that this crate cannot have written (an unknown state name, for example).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong with the row.
        reason: String,
    },
    /// The schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(Arc<sqlx::migrate::MigrateError>),
    /// The database failed: connection, I/O, pool timeout, constraint, a failed commit, ...
    /// A closed store answers `Database(PoolClosed)`.
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(Arc::new(err))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(Arc::new(err))
    }
}

impl StoreError {
    /// The status code from the project's table that this error answers with.
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound { .. } => Code::NotFound,
            Self::Conflict { .. } | Self::StaleVersion { .. } | Self::IllegalTransition { .. } => {
                Code::Conflict
            }
            Self::Fenced { .. } => Code::Fenced,
            Self::InvalidInput(_) | Self::InvalidUrl { .. } => Code::InvalidRequest,
            Self::Database(err)
                if matches!(
                    **err,
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
                ) =>
            {
                Code::Unavailable
            }
            Self::Corrupt { .. } | Self::Migrate(_) | Self::Database(_) => Code::Internal,
        }
    }

    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        Self::NotFound { kind, id: id.to_owned() }
    }

    /// What a closed store answers.
    pub(crate) fn closed() -> Self {
        sqlx::Error::PoolClosed.into()
    }

    /// Whether the database refused a statement (a constraint, a type, a value), as opposed
    /// to failing as a whole (connection, I/O, pool): a refusal may be one write's fault.
    pub(crate) fn is_refusal(&self) -> bool {
        matches!(self, Self::Database(err) if matches!(**err, sqlx::Error::Database(_)))
    }
}

/// The URL with its password, if any, replaced by `***`: URLs end up in error messages and
/// logs, passwords must not.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The last '@' ends the userinfo: a password may itself contain '@' when not encoded.
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_owned();
    };
    let start = scheme_end + 3 + colon + 1;
    let end = scheme_end + 3 + at;
    format!("{}***{}", &url[..start], &url[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u:p@ss@h/db?x=1"), "postgres://u:***@h/db?x=1");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db?a=b@c"), "postgres://h/db?a=b@c");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }

    #[test]
    fn codes() {
        assert_eq!(StoreError::not_found("job", "j").code(), Code::NotFound);
        assert_eq!(StoreError::Conflict { job_id: "j".into() }.code(), Code::Conflict);
        assert_eq!(StoreError::InvalidInput("x".into()).code(), Code::InvalidRequest);
        assert_eq!(StoreError::from(sqlx::Error::PoolTimedOut).code(), Code::Unavailable);
        assert_eq!(StoreError::closed().code(), Code::Unavailable);
        assert_eq!(StoreError::from(sqlx::Error::RowNotFound).code(), Code::Internal);
        assert!(!StoreError::closed().is_refusal());
    }
}
