//! Keys as plain data: the stored record of each key, the lifecycle rule over those records, and
//! the [`Store`] trait that persists them (SQLite for one node, PostgreSQL for several replicas).
//!
//! Knows nothing of PKCS#11, HTTP or JOSE beyond the public JWK it stores as JSON.

pub mod approvals;
pub mod audit;
pub mod audit_json;
pub mod lifecycle;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod store;

use serde_json::{Map, Value};

pub use approvals::{Approval, ApprovalStore};
pub use audit::{AuditEvent, NewEvent};
pub use lifecycle::KeyState;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::{KeyChange, Lease, Store, StoreError, open_store};

/// How a key came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Generated,
    Imported,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Imported => "imported",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "generated" => Some(Self::Generated),
            "imported" => Some(Self::Imported),
            _ => None,
        }
    }
}

/// What the token says of a key's private object: whether its bytes were ever outside the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// `CKA_LOCAL`: generated inside the token.
    pub local: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
}

impl Provenance {
    /// Whether the private bytes may have existed outside the HSM (not always sensitive, or not
    /// never-extractable). `CKA_LOCAL` alone does not decide it: a key unwrapped into the token
    /// is not local, yet may never have been exposed.
    pub fn exposed(&self) -> bool {
        !(self.always_sensitive && self.never_extractable)
    }
}

/// A certificate chain attached to a key (checked before it was stored).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCertificate {
    /// Standard base64 DER of each certificate, leaf first: the JWK's and JWS header's `x5c`.
    pub x5c: Vec<String>,
    /// The leaf's `notAfter`.
    pub not_after: i64,
}

/// One key as stored. Times are unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub key_set: String,
    pub kid: String,
    /// JOSE `alg` of the key's JWK.
    pub alg: String,
    /// The `[[hsm]]` backend that holds the private key.
    pub hsm: String,
    /// `CKA_ID` of the key pair in the token.
    pub hsm_id: Vec<u8>,
    /// Public members of the JWK (no `kid`/`alg`/`use`).
    pub public_jwk: Map<String, Value>,
    pub origin: Origin,
    pub created_at: i64,
    pub activate_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    pub destroyed_at: Option<i64>,
    /// When the scheduler destroys the private object (pending destruction), if scheduled.
    pub destroy_at: Option<i64>,
    /// When a pending destruction was last cancelled (`destroy_after` does not schedule it again).
    pub destroy_cancelled_at: Option<i64>,
    /// `None` for a key stored before Signet recorded provenance, until reconciliation reads it.
    pub provenance: Option<Provenance>,
    /// Created while its key set had `require_certificate = true`: the key does not take over
    /// signing before a certificate chain is attached (`lifecycle`).
    pub certificate_required: bool,
    /// When a chain was first attached.
    pub certified_at: Option<i64>,
    /// The chain attached last.
    pub certificate: Option<KeyCertificate>,
}

impl KeyRecord {
    /// A key added at `created_at` and active from then (callers set `activate_at` otherwise):
    /// not revoked, destroyed, scheduled for destruction nor certified, without provenance.
    /// Callers fill in the key material (`alg`, `hsm`, `hsm_id`, `public_jwk`) by struct update.
    pub fn new(key_set: &str, kid: &str, origin: Origin, created_at: i64) -> Self {
        KeyRecord {
            key_set: key_set.into(),
            kid: kid.into(),
            alg: String::new(),
            hsm: String::new(),
            hsm_id: Vec::new(),
            public_jwk: Map::new(),
            origin,
            created_at,
            activate_at: created_at,
            revoked_at: None,
            revoke_reason: None,
            destroyed_at: None,
            destroy_at: None,
            destroy_cancelled_at: None,
            provenance: None,
            certificate_required: false,
            certified_at: None,
            certificate: None,
        }
    }

    #[cfg(test)]
    pub fn for_test(kid: &str, activate_at: i64) -> Self {
        KeyRecord {
            alg: "ES256".into(),
            hsm: "primary".into(),
            hsm_id: kid.as_bytes().to_vec(),
            ..KeyRecord::new("set", kid, Origin::Generated, activate_at)
        }
    }
}
