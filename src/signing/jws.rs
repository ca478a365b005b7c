//! Compact JWS (RFC 7515 section 7.1), built here: the signing input is
//! `BASE64URL(UTF8(header JSON)) "." BASE64URL(payload)`, and [`SigningKey::sign`] signs it (and
//! self-checks the signature) like any other bytes. josekit is kept for verification only (the
//! self-check and `verify_with_jwks`), so the code that checks a JWS is not the code that built it.
//! `alg` and `kid` always come from the key; the caller's members were checked by its profile.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsVerifier};
use serde_json::{Map, Value};

use super::{Algorithm, KeyError, PublicKey, SigningKey};

/// The protected header of a JWS signed by `key`: `alg` and `kid` from the key, its certificate
/// chain as `x5c` when `with_x5c` (a key set's `header_x5c`) and the key has one, then `members`
/// (which a profile has checked; an `alg`, `kid` or `x5c` among them is ignored).
pub(crate) fn protected_header(
    key: &SigningKey,
    members: Map<String, Value>,
    with_x5c: bool,
) -> Map<String, Value> {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(key.alg().jose_name().into()));
    header.insert("kid".into(), Value::String(key.kid().into()));
    if let Some(chain) = key.x5c().filter(|_| with_x5c) {
        header.insert("x5c".into(), Value::from(chain.to_vec()));
    }
    header.extend(
        members
            .into_iter()
            .filter(|(name, _)| name != "alg" && name != "kid" && name != "x5c"),
    );
    header
}

/// The JWS signing input: `BASE64URL(header JSON) "." BASE64URL(payload)`.
pub(crate) fn signing_input(header: Map<String, Value>, payload: &[u8]) -> String {
    let header = Value::Object(header).to_string();
    format!(
        "{}.{}",
        B64URL.encode(header.as_bytes()),
        B64URL.encode(payload)
    )
}

/// The compact serialisation: the signing input, a dot, the signature in base64url.
pub(crate) fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", B64URL.encode(signature))
}

/// RFC 7515 Appendix F: the compact JWS with its payload part emptied.
pub(crate) fn detach(compact: &str) -> String {
    let mut parts = compact.splitn(3, '.');
    let (h, _, s) = (parts.next(), parts.next(), parts.next());
    format!("{}..{}", h.unwrap_or_default(), s.unwrap_or_default())
}

/// A josekit verifier for `public` under `alg`, for the self-check of every signature.
pub(super) fn verifier(
    alg: Algorithm,
    public: &PublicKey,
) -> Result<Arc<dyn JwsVerifier>, KeyError> {
    let unusable = |source| KeyError::Unusable { alg, source };
    let jwk = Jwk::from_map(public.jwk_members()).map_err(unusable)?;
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
    .map_err(unusable)?;
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

    /// Header and payload signed as a compact JWS, as the service's operations do.
    fn sign(
        key: &SigningKey,
        header: Map<String, Value>,
        payload: &[u8],
    ) -> Result<String, SignError> {
        let input = signing_input(header, payload);
        let signature = key.sign(input.as_bytes())?;
        Ok(compact(&input, &signature))
    }

    #[test]
    fn rfc8037_a4_reproduces_through_the_jws_layer() {
        let v = vectors();
        let a4 = &v["rfc8037_a4"];
        let key =
            SoftwareSigner::key_from_jwk(Algorithm::EdDsa, a4["jwk"].as_object().unwrap()).unwrap();
        assert_eq!(key.kid(), a4["jwk_thumbprint_sha256"].as_str().unwrap());
        let payload = a4["payload"].as_str().unwrap().as_bytes();
        // RFC 8037 A.4 signs a header of `alg` alone.
        let header = json!({"alg": "EdDSA"}).as_object().unwrap().clone();
        let jws = sign(&key, header, payload).unwrap();
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
            let members = json!({"typ": "at+jwt", "alg": "none", "kid": "other"});
            let header = protected_header(&key, members.as_object().unwrap().clone(), false);
            let claims = json!({"sub": "alice"});
            let jwt = sign(&key, header, claims.to_string().as_bytes()).unwrap();
            let (h, _) = jwt.split_once('.').unwrap();
            let h: Value = serde_json::from_slice(&B64URL.decode(h).unwrap()).unwrap();
            assert_eq!(h["alg"], alg.jose_name());
            assert_eq!(h["kid"], key.kid());
            assert_eq!(h["typ"], "at+jwt");
            // josekit, independent of the code above, accepts it.
            let verifier = verifier(alg, key.public_key()).unwrap();
            let (input, sig) = jwt.rsplit_once('.').unwrap();
            verifier
                .verify(input.as_bytes(), &B64URL.decode(sig).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn x5c_joins_the_header_only_when_asked_and_attached() {
        let key = SoftwareSigner::generate(Algorithm::Es256).unwrap();
        assert!(!protected_header(&key, Map::new(), true).contains_key("x5c"));
        let key = key.with_x5c(vec!["MIIB".into(), "MIIC".into()]);
        assert!(!protected_header(&key, Map::new(), false).contains_key("x5c"));
        let caller = json!({"x5c": ["forged"]}).as_object().unwrap().clone();
        let header = protected_header(&key, caller, true);
        assert_eq!(header["x5c"], json!(["MIIB", "MIIC"]));
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
        let err = sign(&key, Map::new(), b"x").unwrap_err();
        assert!(matches!(err, SignError::SelfCheckFailed(_)), "{err:?}");
    }
}
