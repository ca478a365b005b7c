//! Verifying an RFC 9421 signature with nothing but a published JWKS: the key is chosen by the
//! signature's `keyid` (Signet's kid), the algorithm by the JWK's `alg` (or the signature's `alg`
//! parameter, which must agree with it), and the check is made by the JWS layer's verifiers.
//!
//! This is what an integrator or a test calls; the service itself never verifies here.

use serde_json::{Map, Value};

use super::{HttpMessage, HttpSigError, Verified, verify_message};
use crate::signing::{Algorithm, PublicKey, jws};

/// Verifies one signature of `message` (with `request` for `;req` components) against `jwks`
/// (`{"keys": [...]}`), as [`verify_message`] does. Expiry is the caller's to judge from the
/// returned `expires`.
///
/// # Errors
/// Every error of [`verify_message`], plus `unknown_key` (no `keyid`, or no JWK with that kid),
/// `algorithm_mismatch` (the `alg` parameter disagrees with the JWK), `unsupported_algorithm`
/// (no algorithm Signet knows) and `bad_key` (the JWK is not a usable public key).
pub fn verify_with_jwks(
    message: &HttpMessage,
    request: Option<&HttpMessage>,
    signature_input: &str,
    signature: &str,
    label: Option<&str>,
    jwks: &Value,
) -> Result<Verified, HttpSigError> {
    let mut key_error = None;
    let result = verify_message(
        message,
        request,
        signature_input,
        signature,
        label,
        |keyid, alg, base, sig| match verifier(jwks, keyid, alg) {
            Ok(v) => v.verify(base, sig).is_ok(),
            Err(e) => {
                key_error = Some(e);
                false
            }
        },
    );
    match (result, key_error) {
        (Err(_), Some(e)) => Err(e),
        (result, _) => result,
    }
}

/// The verifier for the JWK `keyid` names, under the algorithm both sides agree on.
fn verifier(
    jwks: &Value,
    keyid: Option<&str>,
    alg: Option<&str>,
) -> Result<std::sync::Arc<dyn josekit::jws::JwsVerifier>, HttpSigError> {
    let jwk = find_jwk(jwks, keyid)?;
    let kid = keyid.unwrap_or_default().to_owned();
    let key_alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(
            Algorithm::from_jose(name)
                .ok_or_else(|| HttpSigError::UnsupportedAlgorithm(Some(name.clone())))?,
        ),
        Some(other) => {
            return Err(HttpSigError::BadKey {
                kid,
                reason: format!("`alg` is not a string: {other}"),
            });
        }
    };
    let param_alg = alg
        .map(|name| {
            Algorithm::from_http(name)
                .ok_or_else(|| HttpSigError::UnsupportedAlgorithm(Some(name.to_owned())))
        })
        .transpose()?;
    let chosen = match (param_alg, key_alg) {
        (Some(p), Some(k)) if same(p, k) => k,
        (Some(_), Some(k)) => {
            return Err(HttpSigError::AlgorithmMismatch {
                alg: alg.unwrap_or_default().to_owned(),
                key_alg: k.jose_name().to_owned(),
            });
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Err(HttpSigError::UnsupportedAlgorithm(None)),
    };
    let public = PublicKey::from_jwk(jwk).map_err(|e| HttpSigError::BadKey {
        kid: kid.clone(),
        reason: e.to_string(),
    })?;
    jws::verifier(chosen, &public).map_err(|e| HttpSigError::BadKey {
        kid,
        reason: e.to_string(),
    })
}

/// Whether two names denote the same signature procedure (`EdDSA` over Ed25519 is `Ed25519`).
fn same(a: Algorithm, b: Algorithm) -> bool {
    let canonical = |x| match x {
        Algorithm::Ed25519 => Algorithm::EdDsa,
        other => other,
    };
    canonical(a) == canonical(b)
}

fn find_jwk<'a>(
    jwks: &'a Value,
    keyid: Option<&str>,
) -> Result<&'a Map<String, Value>, HttpSigError> {
    let unknown = || HttpSigError::UnknownKey(keyid.map(str::to_owned));
    let keyid = keyid.ok_or_else(unknown)?;
    jwks.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(keyid))
        .ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signing::http_sig::{finish, parse_sign_request, prepare};
    use crate::signing::software::SoftwareSigner;

    const REQUEST: &str = r#"{"message":{"method":"POST","target_uri":"https://rs.example/a",
        "headers":[["Authorization","DPoP abc"]],"body":"eyJhIjoxfQ=="},
        "covered":["@method","@target-uri","authorization","content-digest"],
        "content_digest":"sha-256","tag":"fapi-2-request","created":1700000000}"#;

    /// Signs REQUEST with a fresh software key of `alg`; returns the message as sent (with its
    /// Content-Digest), the signature fields and the JWKS.
    fn signed(alg: Algorithm, with_alg: bool) -> (HttpMessage, String, String, Value) {
        let key = SoftwareSigner::generate(alg).expect("software key");
        let req = parse_sign_request(REQUEST.as_bytes()).expect("request");
        let http_alg = alg.http_name().filter(|_| with_alg);
        let prepared = prepare(&req, key.kid(), http_alg, 0).expect("prepare");
        let sig = key
            .sign(prepared.signature_base.as_bytes())
            .expect("software signature");
        let out = finish(prepared, &sig);
        let mut message = req.message.clone();
        message.headers.push((
            "Content-Digest".into(),
            out.content_digest.clone().expect("digest"),
        ));
        let jwk = key.public_key().to_jwk(key.kid(), alg.jose_name());
        let jwks = json!({ "keys": [jwk] });
        (message, out.signature_input, out.signature, jwks)
    }

    fn check(
        m: &HttpMessage,
        input: &str,
        sig: &str,
        jwks: &Value,
    ) -> Result<Verified, HttpSigError> {
        verify_with_jwks(m, None, input, sig, Some("sig"), jwks)
    }

    #[test]
    fn each_rfc_9421_algorithm_verifies_against_its_jwk() {
        for alg in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Ps512] {
            for with_alg in [false, true] {
                let (m, input, sig, jwks) = signed(alg, with_alg);
                let v = check(&m, &input, &sig, &jwks).expect("verifies");
                assert_eq!(v.tag.as_deref(), Some("fapi-2-request"), "{alg}");
                assert_eq!(v.keyid.as_deref(), jwks["keys"][0]["kid"].as_str());

                let mut tampered = m.clone();
                tampered.headers[0].1 = "DPoP abd".into();
                let err = check(&tampered, &input, &sig, &jwks).expect_err("tampered");
                assert_eq!(err.code(), "signature_invalid", "{alg}");
            }
        }
    }

    #[test]
    fn key_and_algorithm_problems_have_their_codes() {
        let (m, input, sig, jwks) = signed(Algorithm::Es256, true);
        let code = |input: &str, jwks: &Value| check(&m, input, &sig, jwks).expect_err("").code();

        assert_eq!(code(&input, &json!({"keys": []})), "unknown_key");
        let no_keyid = input.replace(";keyid=", ";x=");
        assert_eq!(code(&no_keyid, &jwks), "unknown_key");

        let other_alg = input.replace("alg=\"ecdsa-p256-sha256\"", "alg=\"ed25519\"");
        assert_eq!(code(&other_alg, &jwks), "algorithm_mismatch");
        let unknown_alg = input.replace("alg=\"ecdsa-p256-sha256\"", "alg=\"hmac-sha256\"");
        assert_eq!(code(&unknown_alg, &jwks), "unsupported_algorithm");

        let mut no_alg = jwks.clone();
        no_alg["keys"][0]
            .as_object_mut()
            .expect("jwk")
            .remove("alg");
        let without_param = input.replace(";alg=\"ecdsa-p256-sha256\"", "");
        assert_eq!(code(&without_param, &no_alg), "unsupported_algorithm");
        // With the parameter alone the algorithm is known (the base then no longer matches).
        assert_eq!(code(&without_param, &jwks), "signature_invalid");
        check(&m, &input, &sig, &no_alg).expect("alg from the signature parameter");

        let mut bad = jwks.clone();
        bad["keys"][0]["x"] = json!("!!");
        assert_eq!(code(&input, &bad), "bad_key");
        let mut wrong_type = jwks.clone();
        wrong_type["keys"][0]["alg"] = json!("PS512");
        assert_eq!(
            code(
                &input.replace(";alg=\"ecdsa-p256-sha256\"", ""),
                &wrong_type
            ),
            "bad_key"
        );
    }
}
