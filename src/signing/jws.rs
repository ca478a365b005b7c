//! JWS compact serialisation through josekit, with a [`SigningKey`] behind josekit's `JwsSigner`.
//! `alg` and `kid` always come from the key; the caller supplies the rest of the header.

use std::sync::{Arc, Mutex};

use josekit::JoseError;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsAlgorithm, JwsHeader, JwsSigner, JwsVerifier};
use serde_json::{Map, Value};

use super::{Algorithm, PublicKey, SignError, SigningKey};

/// josekit's view of an [`Algorithm`]: just its name.
#[derive(Debug, Clone, Copy)]
struct JoseAlg(Algorithm);

impl JwsAlgorithm for JoseAlg {
    fn name(&self) -> &str {
        self.0.jose_name()
    }

    fn box_clone(&self) -> Box<dyn JwsAlgorithm> {
        Box::new(*self)
    }
}

/// A [`SigningKey`] as josekit's `JwsSigner`. The signer's own error is kept aside, since josekit
/// can only carry its own error type through `serialize_compact`.
#[derive(Debug, Clone)]
struct KeySigner {
    key: SigningKey,
    alg: JoseAlg,
    with_kid: bool,
    error: Arc<Mutex<Option<SignError>>>,
}

impl JwsSigner for KeySigner {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &self.alg
    }

    fn key_id(&self) -> Option<&str> {
        self.with_kid.then(|| self.key.kid())
    }

    fn signature_len(&self) -> usize {
        match self.key.public_key() {
            PublicKey::Ec { curve, .. } => 2 * curve.coordinate_len(),
            PublicKey::Rsa { n, .. } => n.iter().skip_while(|b| **b == 0).count(),
            PublicKey::Ed25519 { .. } => 64,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        self.key.sign(message).map_err(|e| {
            let shown = JoseError::InvalidSignature(anyhow::anyhow!("{e}"));
            if let Ok(mut slot) = self.error.lock() {
                *slot = Some(e);
            }
            shown
        })
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

/// Signs `payload` as a compact JWS with `header` (which must not hold `alg` or `kid`: they come
/// from the key). With `with_kid = false` no `kid` is added (test vectors).
pub fn sign_compact(
    key: &SigningKey,
    header: Map<String, Value>,
    payload: &[u8],
    with_kid: bool,
) -> Result<String, SignError> {
    let header =
        JwsHeader::from_map(header).map_err(|e| SignError::Failed(format!("header: {e}")))?;
    let signer = KeySigner {
        key: key.clone(),
        alg: JoseAlg(key.alg()),
        with_kid,
        error: Arc::new(Mutex::new(None)),
    };
    jws::serialize_compact(payload, &header, &signer).map_err(|e| {
        signer
            .error
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .unwrap_or_else(|| SignError::Failed(e.to_string()))
    })
}

/// Signs a JWT: `claims` serialised as the payload.
pub fn sign_jwt(
    key: &SigningKey,
    header: Map<String, Value>,
    claims: &Map<String, Value>,
) -> Result<String, SignError> {
    let payload = serde_json::to_vec(claims).map_err(|e| SignError::Failed(e.to_string()))?;
    sign_compact(key, header, &payload, true)
}

/// RFC 7515 Appendix F: the compact JWS with its payload part emptied.
pub fn detach(compact: &str) -> String {
    let mut parts = compact.splitn(3, '.');
    let (h, _, s) = (parts.next(), parts.next(), parts.next());
    format!("{}..{}", h.unwrap_or_default(), s.unwrap_or_default())
}

/// A josekit verifier for `public` under `alg`, for the self-check of every signature.
pub(super) fn verifier(
    alg: Algorithm,
    public: &PublicKey,
) -> Result<Arc<dyn JwsVerifier>, SignError> {
    let jwk = Jwk::from_map(public.jwk_members()).map_err(|e| SignError::Key(e.to_string()))?;
    let v: Box<dyn JwsVerifier> = match alg {
        Algorithm::Ps256 => jws::PS256
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::Ps384 => jws::PS384
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::Ps512 => jws::PS512
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::Rs256 => jws::RS256
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::Es256 => jws::ES256
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::Es384 => jws::ES384
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
        Algorithm::EdDsa | Algorithm::Ed25519 => jws::EdDSA
            .verifier_from_jwk(&jwk)
            .map(|x| Box::new(x) as Box<dyn JwsVerifier>),
    }
    .map_err(|e| SignError::Key(format!("{alg} cannot use this public key: {e}")))?;
    Ok(Arc::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::software::SoftwareSigner;
    use crate::signing::{Sign, SignError};
    use serde_json::json;

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vectors/standards.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("shared vectors")).unwrap()
    }

    #[test]
    fn rfc8037_a4_reproduces_through_the_jws_layer() {
        let v = vectors();
        let a4 = &v["rfc8037_a4"];
        let key =
            SoftwareSigner::key_from_jwk(Algorithm::EdDsa, a4["jwk"].as_object().unwrap()).unwrap();
        assert_eq!(key.kid(), a4["jwk_thumbprint_sha256"].as_str().unwrap());
        let payload = a4["payload"].as_str().unwrap().as_bytes();
        let jws = sign_compact(&key, Map::new(), payload, false).unwrap();
        assert_eq!(jws, a4["jws"].as_str().unwrap());
    }

    #[test]
    fn every_algorithm_round_trips_with_kid_and_typ() {
        for alg in [
            Algorithm::Ps256,
            Algorithm::Es256,
            Algorithm::EdDsa,
            Algorithm::Ed25519,
            Algorithm::Rs256,
            Algorithm::Ps384,
            Algorithm::Es384,
        ] {
            let key = SoftwareSigner::generate(alg).unwrap();
            let header = json!({"typ": "at+jwt"}).as_object().unwrap().clone();
            let claims = json!({"sub": "alice"}).as_object().unwrap().clone();
            let jwt = sign_jwt(&key, header, &claims).unwrap();
            let (h, _) = jwt.split_once('.').unwrap();
            let h: Value = serde_json::from_slice(
                &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(h["alg"], alg.jose_name());
            assert_eq!(h["kid"], key.kid());
            assert_eq!(h["typ"], "at+jwt");
        }
    }

    #[test]
    fn detached_drops_the_payload() {
        assert_eq!(detach("aaa.bbb.ccc"), "aaa..ccc");
    }

    /// A signer that flips a bit: the self-check must refuse its signature.
    #[derive(Debug)]
    struct Faulty(SoftwareSigner);

    impl Sign for Faulty {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
            let mut sig = self.0.sign(msg)?;
            sig[0] ^= 1;
            Ok(sig)
        }
    }

    #[test]
    fn a_faulty_signature_is_never_returned() {
        let v = vectors();
        let jwk = v["rfc8037_a4"]["jwk"].as_object().unwrap();
        let good = SoftwareSigner::key_from_jwk(Algorithm::EdDsa, jwk).unwrap();
        let faulty = Faulty(SoftwareSigner::from_jwk(Algorithm::EdDsa, jwk).unwrap());
        let key = SigningKey::new(
            good.kid(),
            Algorithm::EdDsa,
            good.public_key().clone(),
            Arc::new(faulty),
        )
        .unwrap();
        let err = sign_compact(&key, Map::new(), b"x", true).unwrap_err();
        assert!(matches!(err, SignError::SelfCheckFailed(_)), "{err:?}");
    }
}
