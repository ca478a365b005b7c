//! RFC 9421 HTTP Message Signatures and RFC 9530 Content-Digest, as pure code.
//!
//! Owns the `sign/http` request shape, the signature base (section 2.5), the `Signature-Input`
//! and `Signature` field values (section 4) and their verification-side parsing. The signature
//! itself is produced and checked elsewhere: `prepare` hands out the base to sign, `finish`
//! wraps the signature bytes, `verify_message` calls back for the cryptographic check. Only
//! `verify_with_jwks` (in `jwks.rs`) reaches for keys: it verifies with the JWS layer's
//! verifiers against a published JWKS. This module knows neither axum nor cryptoki.

mod base;
mod components;
mod digest;
mod error;
mod jwks;
mod message;
mod uri;
mod verify;

#[cfg(test)]
mod error_codes;
#[cfg(test)]
mod vectors;

use serde::Deserialize;
use sfv::{BareItem, FieldType as _, Item};

pub(crate) use digest::{DigestAlg, content_digest};
pub use error::HttpSigError;
pub use jwks::verify_with_jwks;
pub use message::HttpMessage;
pub use verify::{Verified, verify_message};

use base::{Context, SigParams, serialize_inner_list, signature_base, signature_params};
use components::{Kind, parse_covered};
use digest::check_content_digest;

/// The test vectors (RFC 9421 Appendix B, RFC 9530), next to the crate in `shared/`.
#[cfg(test)]
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/vectors/standards.json"
);

/// The request body of `POST /v1/key-sets/{set}/sign/http` (DESIGN.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignHttpRequest {
    /// The message to sign (a request, or a response when `status` or `request` is given).
    pub(crate) message: HttpMessage,
    /// The request a response answers, for `;req` components.
    pub(crate) request: Option<HttpMessage>,
    /// Component identifiers, name quoted or not: `@method`, `@query-param;name="Pet"`,
    /// `"example-dict";key="a"`. May be empty.
    pub(crate) covered: Vec<String>,
    /// The signature label (an sf-key).
    #[serde(default = "default_label")]
    pub(crate) label: String,
    pub(crate) tag: Option<String>,
    /// Unix seconds; `now` when absent.
    pub(crate) created: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) nonce: Option<String>,
    /// Compute a Content-Digest of `message.body` with this algorithm.
    pub(crate) content_digest: Option<DigestAlg>,
}

fn default_label() -> String {
    "sig".to_owned()
}

/// Parses a `sign/http` JSON body, giving an undecodable body its own code.
///
/// # Errors
/// `bad_body_base64` for a body that is not padded standard base64, `invalid_request` for any
/// other departure from the documented shape (unknown members included).
pub fn parse_sign_request(json: &[u8]) -> Result<SignHttpRequest, HttpSigError> {
    serde_json::from_slice(json).map_err(request_error)
}

/// As [`parse_sign_request`], for a body already parsed as JSON (the HTTP layer checks the
/// syntax first, so that malformed JSON keeps its usual problem code).
///
/// # Errors
/// As [`parse_sign_request`].
pub(crate) fn sign_request_from_json(
    json: serde_json::Value,
) -> Result<SignHttpRequest, HttpSigError> {
    serde_json::from_value(json).map_err(request_error)
}

fn request_error(e: serde_json::Error) -> HttpSigError {
    if e.to_string().contains(message::BODY_BASE64_ERROR) {
        HttpSigError::BadBodyBase64
    } else {
        HttpSigError::InvalidRequest(e.to_string())
    }
}

/// A signature base ready to be signed, with what `finish` needs afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub label: String,
    /// RFC 9421 section 2.5 exact bytes (ASCII).
    pub signature_base: String,
    /// The serialized inner list with parameters: `("@method" "@path");created=1;keyid="k"`.
    pub signature_params: String,
    /// The Content-Digest field value Signet computed, when asked to.
    pub content_digest: Option<String>,
}

/// Builds the signature base. `keyid` is always the `keyid` parameter; `alg` (an RFC 9421
/// algorithm name such as `ed25519`) is added only when `Some`. Parameter order in
/// `@signature-params`: created, expires, nonce, alg, keyid, tag.
///
/// With `content_digest`, the digest of `message.body` is computed; an existing Content-Digest
/// field must match the body, otherwise the computed value is added as a `content-digest`
/// field line before the base is built. A covered `content-digest` (or `content-digest;req`)
/// field is checked against its body whenever both are present. When the message already has a
/// Content-Digest field, that field is what gets covered and the computed value is returned
/// only for information.
///
/// # Errors
/// Any `HttpSigError` of the signing side: a bad label or parameter, a bad or duplicate
/// component identifier, a component the message cannot supply, a digest mismatch.
pub fn prepare(
    req: &SignHttpRequest,
    keyid: &str,
    alg: Option<&str>,
    now: i64,
) -> Result<Prepared, HttpSigError> {
    if sfv::KeyRef::from_str(&req.label).is_err() {
        return Err(HttpSigError::BadLabel(req.label.clone()));
    }
    let components = parse_covered(&req.covered)?;
    let created = req.created.unwrap_or(now);
    if let Some(expires) = req.expires
        && expires <= created
    {
        return Err(HttpSigError::ExpiresNotAfterCreated { created, expires });
    }

    let mut message = req.message.clone();
    let computed = match req.content_digest {
        Some(alg) => {
            let body = message
                .body
                .as_deref()
                .ok_or(HttpSigError::ContentDigestWithoutBody)?;
            let value = content_digest(body, alg);
            if message.has_field("content-digest") {
                check_content_digest(&message)?;
            } else {
                message
                    .headers
                    .push(("content-digest".into(), value.clone()));
            }
            Some(value)
        }
        None => None,
    };
    check_covered_digests(&components, &message, req.request.as_ref())?;

    let params = SigParams {
        created: Some(created),
        expires: req.expires,
        nonce: req.nonce.as_deref(),
        alg,
        keyid: Some(keyid),
        tag: req.tag.as_deref(),
    };
    let signature_params = serialize_inner_list(&signature_params(&components, &params)?);
    let ctx = Context {
        message: &message,
        request: req.request.as_ref(),
    };
    let signature_base = signature_base(&ctx, &components, &signature_params)?;
    Ok(Prepared {
        label: req.label.clone(),
        signature_base,
        signature_params,
        content_digest: computed,
    })
}

/// The three field values to attach to the message once the base is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `label=<signature_params>`: one Signature-Input dictionary member.
    pub signature_input: String,
    /// `label=:<base64>:`: one Signature dictionary member.
    pub signature: String,
    pub(crate) content_digest: Option<String>,
}

/// Wraps the signature over `prepared.signature_base` into the Signature-Input and Signature
/// dictionary members.
#[must_use]
pub fn finish(prepared: Prepared, signature: &[u8]) -> SignedHeaders {
    // The label was checked as an sf-key by `prepare`, and both values are sfv serializations,
    // so `key=value` is a serialized dictionary member.
    let bytes = Item::new(BareItem::ByteSequence(signature.to_vec())).serialize();
    SignedHeaders {
        signature_input: format!("{}={}", prepared.label, prepared.signature_params),
        signature: format!("{}={bytes}", prepared.label),
        content_digest: prepared.content_digest,
    }
}

/// Checks the Content-Digest field of the message (and of the request, for
/// `content-digest;req`) against its body when that field is covered.
fn check_covered_digests(
    components: &[components::Component],
    message: &HttpMessage,
    request: Option<&HttpMessage>,
) -> Result<(), HttpSigError> {
    let covered = |req: bool| {
        components
            .iter()
            .any(|c| c.kind == Kind::Field && c.name == "content-digest" && c.req == req)
    };
    if covered(false) {
        check_content_digest(message)?;
    }
    if let Some(request) = request
        && covered(true)
    {
        check_content_digest(request)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> SignHttpRequest {
        parse_sign_request(json.as_bytes()).expect("valid request")
    }

    #[test]
    fn defaults_and_parameter_order() {
        let req = request(
            r#"{"message":{"method":"GET","target_uri":"https://e.com/x"},
                "covered":["@method"],"tag":"t","nonce":"n","expires":20}"#,
        );
        let p = prepare(&req, "k", Some("ed25519"), 10).expect("prepare");
        assert_eq!(p.label, "sig");
        assert_eq!(
            p.signature_params,
            r#"("@method");created=10;expires=20;nonce="n";alg="ed25519";keyid="k";tag="t""#
        );
        assert_eq!(
            p.signature_base,
            format!(
                "\"@method\": GET\n\"@signature-params\": {}",
                p.signature_params
            )
        );
        let signed = finish(p, &[1, 2, 3]);
        assert!(
            signed
                .signature_input
                .starts_with("sig=(\"@method\");created=10;")
        );
        assert_eq!(signed.signature, "sig=:AQID:");
        assert_eq!(signed.content_digest, None);
    }

    #[test]
    fn empty_covered_list_signs_only_the_parameters() {
        let req = request(r#"{"message":{},"covered":[],"label":"a1"}"#);
        let p = prepare(&req, "k", None, 5).expect("prepare");
        assert_eq!(
            p.signature_base,
            "\"@signature-params\": ();created=5;keyid=\"k\""
        );
    }

    #[test]
    fn computed_digest_is_added_and_covered() {
        let req = request(
            r#"{"message":{"status":200,"body":"eyJoZWxsbyI6ICJ3b3JsZCJ9"},
                "covered":["@status","content-digest"],"content_digest":"sha-256","created":1}"#,
        );
        let p = prepare(&req, "k", None, 0).expect("prepare");
        let digest = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        assert_eq!(p.content_digest.as_deref(), Some(digest));
        assert!(
            p.signature_base
                .contains(&format!("\"content-digest\": {digest}\n"))
        );
    }

    #[test]
    fn an_existing_matching_digest_is_kept() {
        let req = request(
            r#"{"message":{"status":200,"body":"eyJoZWxsbyI6ICJ3b3JsZCJ9","headers":[
                ["Content-Digest","sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"]]},
                "covered":["content-digest"],"content_digest":"sha-256","created":1}"#,
        );
        let p = prepare(&req, "k", None, 0).expect("prepare");
        assert!(
            p.signature_base
                .starts_with("\"content-digest\": sha-512=:WZDP")
        );
        assert!(
            p.content_digest
                .as_deref()
                .is_some_and(|d| d.starts_with("sha-256=:"))
        );
    }

    #[test]
    fn unknown_json_members_are_refused() {
        let err = parse_sign_request(br#"{"message":{},"covered":[],"extra":1}"#)
            .expect_err("unknown member");
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn a_parsed_json_value_gets_the_same_codes() {
        let code = |v: serde_json::Value| sign_request_from_json(v).expect_err("refused").code();
        let bad_body = serde_json::json!({"message": {"body": "***"}, "covered": []});
        assert_eq!(code(bad_body), "bad_body_base64");
        assert_eq!(code(serde_json::json!({"covered": []})), "invalid_request");
        let ok = serde_json::json!({"message": {"body": "AQID"}, "covered": []});
        let req = sign_request_from_json(ok).expect("valid");
        assert_eq!(req.message.body.as_deref(), Some(&[1u8, 2, 3][..]));
    }
}
