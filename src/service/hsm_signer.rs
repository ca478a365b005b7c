//! The bridge from the HSM layer to the signing layer: an HSM key pair as a [`Sign`], and the
//! mapping of algorithms to key specs and schemes, and of HSM public keys to JWK material.

use std::sync::Arc;

use super::BackendSlot;
use super::context::Context;
use crate::hsm::{self, Backend, HsmError, KeySpec, SignScheme};
use crate::signing::jwk::Curve;
use crate::signing::{Algorithm, KeyKind, PublicKey, Sign, SignError};

/// Where an [`HsmSigner`] finds its backend at each call, and whom it tells of a failure.
pub trait BackendSource: Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Result<Arc<Backend>, SignError>;
    fn error(&self, backend: &Arc<Backend>, e: HsmError) -> SignError;
}

/// A configured backend: its current context, which a device failure takes down for recovery.
impl BackendSource for Arc<BackendSlot> {
    fn backend(&self) -> Result<Arc<Backend>, SignError> {
        self.up()
    }

    fn error(&self, backend: &Arc<Backend>, e: HsmError) -> SignError {
        self.check(backend, e)
    }
}

/// A fixed context (tests, one-shot CLI commands).
impl BackendSource for Arc<Backend> {
    fn backend(&self) -> Result<Arc<Backend>, SignError> {
        Ok(self.clone())
    }

    fn error(&self, _: &Arc<Backend>, e: HsmError) -> SignError {
        sign_error(e)
    }
}

/// A private key in the token, found by its `CKA_ID`.
#[derive(Debug)]
pub struct HsmSigner {
    source: Box<dyn BackendSource>,
    id: Vec<u8>,
    scheme: SignScheme,
}

impl HsmSigner {
    pub fn new(source: impl BackendSource + 'static, id: Vec<u8>, alg: Algorithm) -> Self {
        Self {
            source: Box::new(source),
            id,
            scheme: scheme(alg),
        }
    }
}

impl Sign for HsmSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let backend = self.source.backend()?;
        timed_sign(&backend, &self.id, self.scheme, msg).map_err(|e| self.source.error(&backend, e))
    }
}

/// The private key `id` on one chosen module context: what an attempt of the signing pipeline
/// signs with, so that a failure is charged to the context it happened on.
#[derive(Debug)]
pub(crate) struct ContextSigner<'a> {
    pub(crate) context: &'a Arc<Context>,
    pub(crate) id: &'a [u8],
    pub(crate) scheme: SignScheme,
}

impl Sign for ContextSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let backend = self.context.up()?;
        timed_sign(&backend, self.id, self.scheme, msg).map_err(|e| self.context.check(&backend, e))
    }
}

/// One C_Sign, its duration recorded per backend.
fn timed_sign(
    backend: &Backend,
    id: &[u8],
    scheme: SignScheme,
    msg: &[u8],
) -> Result<Vec<u8>, HsmError> {
    let started = std::time::Instant::now();
    let result = backend.sign(id, scheme, msg);
    metrics::histogram!("signet_hsm_operation_duration_seconds",
        "hsm" => backend.name().to_string(), "op" => "sign")
    .record(started.elapsed().as_secs_f64());
    result
}

/// Domain view of an HSM failure: the HSM error travels on as the `source`.
pub(crate) fn sign_error(e: HsmError) -> SignError {
    match e {
        HsmError::Busy => SignError::Busy,
        e if e.is_unavailable() => SignError::Unavailable(Box::new(e)),
        e => SignError::Failed(Box::new(e)),
    }
}

pub fn scheme(alg: Algorithm) -> SignScheme {
    match alg {
        Algorithm::Ps256 => SignScheme::RsaPssSha256,
        Algorithm::Ps384 => SignScheme::RsaPssSha384,
        Algorithm::Ps512 => SignScheme::RsaPssSha512,
        Algorithm::Rs256 => SignScheme::RsaPkcs1Sha256,
        Algorithm::Es256 => SignScheme::EcdsaSha256,
        Algorithm::Es384 => SignScheme::EcdsaSha384,
        Algorithm::EdDsa | Algorithm::Ed25519 => SignScheme::Ed25519,
    }
}

pub fn key_spec(alg: Algorithm, rsa_bits: u32) -> KeySpec {
    match alg.key_kind(rsa_bits) {
        KeyKind::P256 => KeySpec::EcP256,
        KeyKind::P384 => KeySpec::EcP384,
        KeyKind::Rsa { bits } => KeySpec::Rsa { bits },
        KeyKind::Ed25519 => KeySpec::Ed25519,
    }
}

/// The JWK material of an HSM public key.
pub fn public_key(key: hsm::PublicKey) -> PublicKey {
    match key {
        hsm::PublicKey::EcP256 { x, y } => PublicKey::Ec {
            curve: Curve::P256,
            x,
            y,
        },
        hsm::PublicKey::EcP384 { x, y } => PublicKey::Ec {
            curve: Curve::P384,
            x,
            y,
        },
        hsm::PublicKey::Rsa { modulus, exponent } => PublicKey::Rsa {
            n: modulus,
            e: exponent,
        },
        hsm::PublicKey::Ed25519 { a } => PublicKey::Ed25519 { x: a },
    }
}

/// Whether an HSM key pair fits `alg` (for imports).
pub(crate) fn fits(key: &PublicKey, alg: Algorithm) -> bool {
    match (key, alg.key_kind(2048)) {
        (
            PublicKey::Ec {
                curve: Curve::P256, ..
            },
            KeyKind::P256,
        ) => true,
        (
            PublicKey::Ec {
                curve: Curve::P384, ..
            },
            KeyKind::P384,
        ) => true,
        (PublicKey::Rsa { n, .. }, KeyKind::Rsa { .. }) => {
            n.iter().skip_while(|b| **b == 0).count() >= 256
        }
        (PublicKey::Ed25519 { .. }, KeyKind::Ed25519) => true,
        _ => false,
    }
}
