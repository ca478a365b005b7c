//! The service's one error type, with typed kinds: which rule refused, which key was missing, and
//! the lower error (signing, store, RFC 9421, profile) kept as it came. The HTTP layer maps each
//! kind to a problem code and status in one place (`http::problem`).

use std::sync::Arc;

use crate::keys::StoreError;
use crate::signing::compact::CompactError;
use crate::signing::http_sig::HttpSigError;
use crate::signing::x509::{ChainError, CsrError};
use crate::signing::{Algorithm, KeyError, PolicyError, SignError, Unmatched};

/// A domain failure.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no key set named `{0}`")]
    KeySetNotFound(String),
    /// The client is not a signer, or not one of this key set's.
    #[error("client `{client}` may not sign with key set `{set}`")]
    Forbidden { client: String, set: String },
    #[error("key set `{set}` has profile {profile}; {route} is not available for it")]
    WrongProfile {
        set: String,
        profile: &'static str,
        route: &'static str,
    },
    /// The request breaks the key set's profile (claims, header, lifetime, clock skew).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// An RFC 9421 request the signature base cannot be built from.
    #[error(transparent)]
    Message(#[from] HttpSigError),
    /// A caller-built signing input (`sign/compact`) that cannot be signed as given.
    #[error(transparent)]
    Compact(#[from] CompactError),
    /// No profile of a key set with several fits the JWT.
    #[error(transparent)]
    ProfileUnmatched(#[from] Unmatched),
    /// A caller-built JWS names a kid that may not sign now (`sign/compact`).
    #[error(
        "kid {} may not sign for key set {set} now; the active kid is {}",
        .kid.as_deref().unwrap_or("(none)"),
        .active_kid.as_deref().unwrap_or("(none)")
    )]
    KidNotActive {
        set: String,
        kid: Option<String>,
        active_kid: Option<String>,
        next_kid: Option<String>,
    },
    /// A Vault Transit request Signet refuses (options, input, key version): the message is
    /// what the caller reads in Vault's `errors`.
    #[error("{0}")]
    Transit(String),
    #[error("`payload` must be base64url")]
    PayloadNotBase64url(#[source] base64::DecodeError),
    #[error("key set `{0}` has no active key")]
    NoActiveKey(String),
    #[error("no key {kid} in key set {set}")]
    KeyNotFound { set: String, kid: String },
    /// The stored key cannot be made ready to sign (a corrupt record).
    #[error("key {kid} of key set {set} is unusable")]
    KeyUnusable {
        set: String,
        kid: String,
        #[source]
        source: Arc<KeyError>,
    },
    #[error("no key pair {what} in the token of hsm `{hsm}`")]
    HsmKeyNotFound { hsm: String, what: String },
    /// Several token objects match what an operator named; Signet never picks one.
    #[error("ambiguous in the token of hsm `{hsm}`: {what}; name the key pair by a unique CKA_ID")]
    HsmKeyAmbiguous { hsm: String, what: String },
    /// The lifecycle rule refuses an operator change.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The two-person rule: an approval that cannot be decided (see [`ApprovalRefusal`]).
    #[error(transparent)]
    Approval(#[from] ApprovalRefusal),
    /// An operator request that is malformed or names an unsuitable key.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A certificate chain refused for a key (DESIGN.md "Certificates").
    #[error(transparent)]
    Certificate(#[from] ChainError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store has been unreachable since `since`: operator changes are refused at once.
    #[error(
        "the metadata store has been unreachable since {since} (unix s); retry when it answers"
    )]
    StoreUnavailable { since: i64 },
    /// The store has been unreachable for longer than `[store] grace`: this replica could miss a
    /// revocation, so it does not sign.
    #[error(
        "the key view is stale: the metadata store has been unreachable since {since} (unix s), \
         longer than the grace of {grace} s"
    )]
    KeyViewStale { since: i64, grace: i64 },
    /// A bug: a state that configuration validation or the code itself rules out.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Why the lifecycle rule refuses an operator change (a conflict with the key set's state).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "key {kid} was published at {published_at} and may not sign before {earliest} \
         (min_publish {min_publish}); verifiers may not have it cached yet. Retry later, or pass \
         force = true"
    )]
    MinPublishNotMet {
        kid: String,
        published_at: i64,
        earliest: i64,
        min_publish: String,
    },
    #[error("key set {0} has no next key to take over; pass force = true to generate one")]
    NoNextKey(String),
    #[error("key {0} is already revoked")]
    AlreadyRevoked(String),
    #[error("key {0} is already destroyed")]
    AlreadyDestroyed(String),
    #[error("key {0} has no pending destruction to cancel")]
    NoPendingDestruction(String),
    #[error("key {kid} is {state}; only expired or revoked keys can be destroyed")]
    KeyInUse { kid: String, state: &'static str },
    #[error("key {0} is already managed by Signet")]
    KeyExists(String),
    #[error(
        "key {0} has no certificate and its key set requires one before a key may activate; \
         attach its chain first (PUT .../keys/{0}/certificate)"
    )]
    CertificateRequired(String),
}

/// Why a pending approval of the two-person rule cannot be decided.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalRefusal {
    #[error("no approval {0}")]
    NotFound(String),
    #[error("approval {0} was requested by this client; a different admin client must approve it")]
    SelfApproval(String),
    #[error("approval {id} expired at {at} (unix s); request the change again")]
    Expired { id: String, at: i64 },
    #[error("approval {id} is already {status}")]
    Decided { id: String, status: String },
    /// The key set or key changed since the request: carrying it out now would act on what
    /// neither admin saw.
    #[error("approval {id} no longer fits the key set: {reason}; request the change again")]
    Stale { id: String, reason: String },
}

/// A malformed operator request, or one that names a key Signet may not adopt.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error("a revocation needs a reason")]
    ReasonRequired,
    #[error("activate_at must not be in the past")]
    ActivateAtInPast,
    #[error("`id` must be the CKA_ID in hex")]
    Id(#[source] hex::FromHexError),
    #[error(
        "the private key must be a private token object with CKA_SENSITIVE=true, \
         CKA_EXTRACTABLE=false and CKA_SIGN=true (pkcs11-tool: --sensitive --private)"
    )]
    KeyNotProtected,
    #[error("the key pair does not fit {0}")]
    KeyTypeMismatch(Algorithm),
    #[error(
        "the private key's bytes were once outside the HSM (CKA_LOCAL={local}, \
         CKA_ALWAYS_SENSITIVE={always_sensitive}, CKA_NEVER_EXTRACTABLE={never_extractable}); \
         {why}"
    )]
    KeyMaterialExposed {
        local: bool,
        always_sensitive: bool,
        never_extractable: bool,
        why: &'static str,
    },
    /// A CSR's subject or SANs do not parse.
    #[error(transparent)]
    Csr(CsrError),
}
