//! The bridge from the HSM layer to the signing layer: an HSM key pair as a [`Sign`], and the
//! mapping of algorithms to key specs and schemes, and of HSM public keys to JWK material.

use std::sync::Arc;

use crate::hsm::{self, Backend, HsmError, KeySpec, SignScheme};
use crate::signing::jwk::Curve;
use crate::signing::{Algorithm, KeyKind, PublicKey, Sign, SignError};

/// A private key in the token, found by its `CKA_ID`.
#[derive(Debug)]
pub struct HsmSigner {
    backend: Arc<Backend>,
    id: Vec<u8>,
    scheme: SignScheme,
}

impl HsmSigner {
    pub fn new(backend: Arc<Backend>, id: Vec<u8>, alg: Algorithm) -> Self {
        Self {
            backend,
            id,
            scheme: scheme(alg),
        }
    }
}

impl Sign for HsmSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.backend
            .sign(&self.id, self.scheme, msg)
            .map_err(sign_error)
    }
}

/// Domain view of an HSM failure.
pub fn sign_error(e: HsmError) -> SignError {
    match e {
        HsmError::Busy => SignError::Busy,
        e if e.is_unavailable() => SignError::Unavailable(e.to_string()),
        e => SignError::Failed(e.to_string()),
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
pub fn fits(key: &PublicKey, alg: Algorithm) -> bool {
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
