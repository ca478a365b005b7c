//! `sign/http` as an operation of the signing pipeline (`service::sign`): RFC 9421 HTTP message
//! signatures for key sets of profile `http_message`.
//!
//! Its policy check: the request shape (`signing::http_sig`, with its own codes), the profile, and
//! the key set's time rules for `created` and `expires` (`signing::profile`, the same rule as a
//! JWT's `iat` and `exp`). Its signing input is the RFC 9421 signature base, with `keyid` the kid
//! of the key that signs. Knows nothing of axum.

use serde::Serialize;
use serde_json::Value;

use super::ServiceError;
use super::jws_sign::times;
use super::sign::{SignOperation, wrong_profile};
use crate::config::KeySetConfig;
use crate::signing::http_sig::{self, Prepared, SignHttpRequest};
use crate::signing::{Profile, SigningKey, TimeMembers};

/// What `sign/http` returns: the field values to attach to the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpSigned {
    /// One `Signature-Input` dictionary member: `label=(...);created=...;keyid="<kid>"`.
    pub signature_input: String,
    /// One `Signature` dictionary member: `label=:<base64>:`.
    pub signature: String,
    /// The `Content-Digest` value Signet computed, when asked to.
    pub content_digest: Option<String>,
    pub kid: String,
    /// The RFC 9421 algorithm name (`ed25519`, `ecdsa-p256-sha256`, `rsa-pss-sha512`).
    pub alg: &'static str,
}

/// `sign/http`: the JSON body of DESIGN.md, parsed at admission so that an unknown key set or a
/// caller without permission is answered before the body's own errors. `keyid` is always the
/// kid; `created` defaults to now. No `alg` parameter is added: the key (found by `keyid` in the
/// JWKS) fixes the algorithm.
#[derive(Debug)]
pub struct SignHttp {
    body: Option<Value>,
    request: Option<SignHttpRequest>,
    prepared: Option<Prepared>,
    alg: &'static str,
}

impl SignHttp {
    pub fn new(body: Value) -> Self {
        Self {
            body: Some(body),
            request: None,
            prepared: None,
            alg: "",
        }
    }
}

impl SignOperation for SignHttp {
    type Output = HttpSigned;

    fn admit(&mut self, set: &KeySetConfig, now: i64) -> Result<Profile, ServiceError> {
        let body = self.body.take().unwrap_or_default();
        let request = http_sig::sign_request_from_json(body)?;
        if set.profile != Profile::HttpMessage {
            return Err(wrong_profile(set, "sign/http"));
        }
        // Config validation admits only RFC 9421 algorithms for this profile.
        self.alg = set.alg.http_name().ok_or(ServiceError::Internal(
            "an http_message key set without an RFC 9421 alg",
        ))?;
        times(set).check(
            TimeMembers::HttpSignature,
            request.created,
            request.expires,
            now,
        )?;
        self.request = Some(request);
        Ok(set.profile)
    }

    fn signing_input(&mut self, key: &SigningKey, now: i64) -> Result<Vec<u8>, ServiceError> {
        let request = self.request.as_ref().ok_or(ServiceError::Internal(
            "sign/http: signing input before admission",
        ))?;
        let mut prepared = http_sig::prepare(request, key.kid(), None, now)?;
        // `finish` needs the label, the parameters and the digest; the base itself is signed.
        let base = std::mem::take(&mut prepared.signature_base).into_bytes();
        self.prepared = Some(prepared);
        Ok(base)
    }

    fn finish(
        self,
        key: &SigningKey,
        _input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<HttpSigned, ServiceError> {
        let prepared = self.prepared.ok_or(ServiceError::Internal(
            "sign/http: finish before the signing input",
        ))?;
        let out = http_sig::finish(prepared, &signature);
        Ok(HttpSigned {
            signature_input: out.signature_input,
            signature: out.signature,
            content_digest: out.content_digest,
            kid: key.kid().to_string(),
            alg: self.alg,
        })
    }
}
