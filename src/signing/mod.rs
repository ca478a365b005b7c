//! JWS signing: algorithms, profiles, the [`Sign`] seam every key implements, the JWS/JWT layer
//! on josekit and the RFC 9421 HTTP message signature layer.
//!
//! Knows neither axum nor cryptoki: an HSM key reaches this layer only as an `Arc<dyn Sign>`.

mod alg;
pub mod compact;
pub mod http_sig;
pub(crate) mod jwk;
pub(crate) mod jws;
mod profile;
pub mod software;
pub mod x509;

use std::fmt;
use std::sync::Arc;

pub use alg::{Algorithm, KeyKind};
pub use jwk::PublicKey;
pub use profile::{
    ClaimPolicy, PolicyError, Profile, TimeMembers, TimePolicy, Unmatched, select as select_profile,
};

/// The one capability a key offers this layer: sign a message with its algorithm's full procedure
/// (hashing included). Blocking; callers run it off the async executor.
pub trait Sign: Send + Sync + fmt::Debug {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// A lower layer's error, kept as the `source` of a [`SignError`] without this layer naming it
/// (the HSM error travels this way).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a signature could not be made. The cause, where there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key's backend is down or not logged in; retrying later may work.
    #[error("key backend unavailable")]
    Unavailable(#[source] BoxError),
    /// Every backend session is busy and none came free within the deadline.
    #[error("key backend busy")]
    Busy,
    /// The backend did not answer within its operation timeout.
    #[error("key backend timed out")]
    Timeout,
    /// The backend refused the operation.
    #[error("key backend refused the operation")]
    Failed(#[source] BoxError),
    /// The signature did not verify with the key's public key (fault-attack defence); it was not
    /// returned. Holds the kid.
    #[error("signature self-check failed for kid {0}")]
    SelfCheckFailed(String),
    /// A bug: the signing task panicked or was cancelled.
    #[error("the signing task failed")]
    Internal(#[source] BoxError),
}

/// Why a key cannot be made ready to sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unknown algorithm `{0}`")]
    UnknownAlgorithm(String),
    #[error(transparent)]
    Jwk(#[from] jwk::JwkError),
    #[error("{alg} cannot use this key")]
    Unusable {
        alg: Algorithm,
        #[source]
        source: josekit::JoseError,
    },
}

/// Whether `sig` (the JWS form: `r || s` for ECDSA) is `public`'s signature of `msg` under `alg`:
/// the check Vault Transit's `verify` answers, with the verifier of the self-check.
pub fn verify(
    alg: Algorithm,
    public: &PublicKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<bool, KeyError> {
    Ok(jws::verifier(alg, public)?.verify(msg, sig).is_ok())
}

/// A key ready to sign: its kid, algorithm, public key, and the backend behind it.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    public: PublicKey,
    signer: Arc<dyn Sign>,
    verifier: Arc<dyn josekit::jws::JwsVerifier>,
    /// The key's certificate chain (`x5c`: standard base64 DER, leaf first), once attached.
    x5c: Option<Arc<[String]>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn new(
        kid: impl Into<String>,
        alg: Algorithm,
        public: PublicKey,
        signer: Arc<dyn Sign>,
    ) -> Result<Self, KeyError> {
        let verifier = jws::verifier(alg, &public)?;
        Ok(Self {
            kid: kid.into(),
            alg,
            public,
            signer,
            verifier,
            x5c: None,
        })
    }

    /// This key with its certificate chain (`x5c`, leaf first).
    pub fn with_x5c(mut self, x5c: Vec<String>) -> Self {
        self.x5c = (!x5c.is_empty()).then(|| Arc::from(x5c));
        self
    }

    /// The key's certificate chain, if one is attached.
    pub fn x5c(&self) -> Option<&[String]> {
        self.x5c.as_deref()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `msg` and returns the signature only if it verifies with the public key.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_with(&*self.signer, msg)
    }

    /// As [`Self::sign`], made by `signer`, another holder of the same private key (the same key
    /// reached through another backend or module context); the self-check is this key's.
    pub fn sign_with(&self, signer: &dyn Sign, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = signer.sign(msg)?;
        if self.verifier.verify(msg, &sig).is_err() {
            return Err(SignError::SelfCheckFailed(self.kid.clone()));
        }
        Ok(sig)
    }
}
