//! A software signer over josekit keys, for tests of the layers above the HSM and for published
//! test vectors. Never used by the service for its own keys.

use std::sync::Arc;

use josekit::jwk::Jwk;
use josekit::jws::{self, JwsSigner};
use serde_json::{Map, Value};

use super::{Algorithm, KeyError, PublicKey, Sign, SignError, SigningKey};

/// Signs with a private key held in process memory.
#[derive(Debug)]
pub struct SoftwareSigner {
    inner: Box<dyn JwsSigner>,
}

impl Sign for SoftwareSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.inner
            .sign(msg)
            .map_err(|e| SignError::Failed(Box::new(e)))
    }
}

impl SoftwareSigner {
    /// A signer from a private JWK (with `d`).
    pub fn from_jwk(alg: Algorithm, jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        let unusable = |source| KeyError::Unusable { alg, source };
        let key = Jwk::from_map(jwk.clone()).map_err(unusable)?;
        let inner: Box<dyn JwsSigner> = match alg {
            Algorithm::Ps256 => jws::PS256
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::Ps384 => jws::PS384
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::Ps512 => jws::PS512
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::Rs256 => jws::RS256
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::Es256 => jws::ES256
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::Es384 => jws::ES384
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
            Algorithm::EdDsa | Algorithm::Ed25519 => jws::EdDSA
                .signer_from_jwk(&key)
                .map(|x| Box::new(x) as Box<dyn JwsSigner>),
        }
        .map_err(unusable)?;
        Ok(Self { inner })
    }

    /// A fresh key pair in memory and the [`SigningKey`] over it, its kid the RFC 7638 thumbprint.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, KeyError> {
        let jwk = match alg {
            Algorithm::Ps256 | Algorithm::Ps384 | Algorithm::Ps512 | Algorithm::Rs256 => {
                Jwk::generate_rsa_key(2048)
            }
            Algorithm::Es256 => Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P256),
            Algorithm::Es384 => Jwk::generate_ec_key(josekit::jwk::alg::ec::EcCurve::P384),
            Algorithm::EdDsa | Algorithm::Ed25519 => {
                Jwk::generate_ed_key(josekit::jwk::alg::ed::EdCurve::Ed25519)
            }
        }
        .map_err(|source| KeyError::Unusable { alg, source })?;
        Self::key_from_jwk(alg, jwk.as_ref())
    }

    /// The [`SigningKey`] for a private JWK, its kid the RFC 7638 thumbprint.
    pub fn key_from_jwk(alg: Algorithm, jwk: &Map<String, Value>) -> Result<SigningKey, KeyError> {
        let public = PublicKey::from_jwk(jwk)?;
        let signer = Arc::new(Self::from_jwk(alg, jwk)?);
        SigningKey::new(public.thumbprint(), alg, public, signer)
    }
}
