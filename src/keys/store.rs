//! The metadata store seam. Callers hold an `Arc<dyn Store>`; which database sits behind it is
//! decided once, from `[store] url`, by [`open_store`].

use std::sync::Arc;

use async_trait::async_trait;

use super::audit::{AuditEvent, NewEvent};
use super::{KeyRecord, SqliteStore};

/// One change to the key rows.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// A new key; a kid already in its key set is a [`StoreError::Conflict`].
    Insert(KeyRecord),
    /// Moves a key's activation (rotation, or promotion of the next key on revocation).
    Activate {
        key_set: String,
        kid: String,
        at: i64,
    },
    /// Revokes a key; a key already revoked is a [`StoreError::Conflict`].
    Revoke {
        key_set: String,
        kid: String,
        at: i64,
        reason: String,
    },
    /// Records that the key's private object was destroyed.
    Destroyed {
        key_set: String,
        kid: String,
        at: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unreachable or failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in the store: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported store url `{0}`")]
    Unsupported(String),
}

/// Persistence of key records.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Every key of every key set (keys are few; the whole view is reloaded at once).
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Applies `changes` and appends `events` to the audit trail in one transaction: all of it
    /// lands, or none of it.
    async fn apply(&self, changes: &[KeyChange], events: &[NewEvent]) -> Result<(), StoreError>;
    /// Up to `limit` audit events with `seq > after`, in order.
    async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError>;
    /// The newest event of `action` for `key_set`.
    async fn last_event(
        &self,
        key_set: &str,
        action: &str,
    ) -> Result<Option<AuditEvent>, StoreError>;
    /// The whole audit trail and its head (last seq and hash), for verification.
    async fn audit_all(&self) -> Result<(Vec<AuditEvent>, Option<(i64, String)>), StoreError>;
}

/// Opens (creating if needed) and migrates the store named by `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "{url}: only sqlite:// is supported by this version"
        )))
    }
}
