//! The metadata store seam. Callers hold an `Arc<dyn Store>`; which database sits behind it is
//! decided once, from `[store] url`, by [`open_store`].

use std::sync::Arc;

use async_trait::async_trait;

use super::audit::{AuditEvent, NewEvent};
use super::{ApprovalStore, KeyRecord, PgStore, SqliteStore};

/// One change to the key rows.
// A few changes per operator call: the size of `Insert` costs nothing worth a `Box` at every
// call site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// A new key; a kid already in its key set is a [`StoreError::Conflict`], and so is a key
    /// set that, once the whole transaction is applied, has another live key (not revoked, not
    /// destroyed) activating after the new key's `created_at`: the one-next-key guard that keeps
    /// two replicas racing to add a next key from both succeeding.
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
    /// Records what the token says of a key stored before Signet recorded provenance.
    Provenance {
        key_set: String,
        kid: String,
        provenance: super::Provenance,
    },
    /// Attaches a checked certificate chain (`x5c`, leaf first) to a live key (neither revoked
    /// nor destroyed), replacing any earlier one; `certified_at` keeps the first attachment.
    Certify {
        key_set: String,
        kid: String,
        x5c: Vec<String>,
        not_after: i64,
        at: i64,
    },
    /// Changes nothing, but holds only while the key is not revoked: applied with a `signed`
    /// audit event, it orders that event before any revocation of the key (else a
    /// [`StoreError::Conflict`], and the signature is withheld).
    NotRevoked { key_set: String, kid: String },
    /// Schedules the destruction of a key's private object at `at`; a key already destroyed or
    /// with a destruction pending is a [`StoreError::Conflict`].
    ScheduleDestruction {
        key_set: String,
        kid: String,
        at: i64,
    },
    /// Cancels a pending destruction (recorded at `at`); a key destroyed or with none pending is
    /// a [`StoreError::Conflict`].
    CancelDestruction {
        key_set: String,
        kid: String,
        at: i64,
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

/// Persistence of key records (and, through [`ApprovalStore`], of pending approvals).
#[async_trait]
pub trait Store: ApprovalStore + Send + Sync + std::fmt::Debug {
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
    /// Takes the lease `name` for `holder` until `now + ttl_s` when it is free, expired or
    /// already `holder`'s (a renewal), atomically. Returns who holds it afterwards.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_s: i64,
    ) -> Result<Lease, StoreError>;
    /// Gives the lease `name` up if `holder` holds it (graceful shutdown: hand over at once).
    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// Who holds a lease, and until when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub expires_at: i64,
}

/// Opens (creating if needed) and migrates the store named by `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "{url}: neither sqlite:// nor postgres://"
        )))
    }
}
