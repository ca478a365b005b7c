//! `sign/http`: RFC 9421 HTTP message signatures with a key set's active key.
//!
//! Applies the key set's policy (profile `http_message`, `created` within the clock skew,
//! `expires - created` within `max_lifetime`), builds the signature base with
//! `signing::http_sig`, and signs it through the key's backend on a blocking thread, where
//! `SigningKey::sign` self-verifies the signature. Knows nothing of axum.

use serde::Serialize;

use super::{Service, ServiceError};
use crate::signing::Profile;
use crate::signing::http_sig::{self, HttpSigError, SignHttpRequest};

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

impl From<HttpSigError> for ServiceError {
    fn from(e: HttpSigError) -> Self {
        ServiceError::BadRequest {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl Service {
    /// Signs an HTTP message (RFC 9421) under key set `set`. `keyid` is always the active kid;
    /// `created` defaults to now. No `alg` parameter is added: the key (found by `keyid` in the
    /// JWKS) fixes the algorithm.
    pub async fn sign_http(
        &self,
        set: &str,
        request: SignHttpRequest,
    ) -> Result<HttpSigned, ServiceError> {
        let result = self.sign_http_unobserved(set, request).await;
        self.observe_signature(set, &result);
        result
    }

    async fn sign_http_unobserved(
        &self,
        set: &str,
        request: SignHttpRequest,
    ) -> Result<HttpSigned, ServiceError> {
        let cfg = self.key_set(set)?;
        if cfg.profile != Profile::HttpMessage {
            return Err(ServiceError::WrongProfile {
                set: set.into(),
                profile: cfg.profile.name(),
                route: "sign/http",
            });
        }
        // Config validation only admits RFC 9421 algorithms for this profile.
        let alg = cfg
            .alg
            .http_name()
            .ok_or_else(|| ServiceError::BadRequest {
                code: "key_set_misconfigured",
                message: format!("key set `{set}` has no RFC 9421 algorithm"),
            })?;
        let now = self.now();
        check_times(&request, now, &cfg.policy)?;
        let key = self.view().signing_key(set, now)?;
        let kid = key.kid().to_string();
        let prepared = http_sig::prepare(&request, &kid, None, now)?;
        let base = prepared.signature_base.clone().into_bytes();
        let signature = self.backend_of(cfg).run(move || key.sign(&base)).await?;
        let out = http_sig::finish(prepared, &signature);
        Ok(HttpSigned {
            signature_input: out.signature_input,
            signature: out.signature,
            content_digest: out.content_digest,
            kid,
            alg,
        })
    }
}

/// `created` must be within the clock skew of `now`, and the signature may not live longer
/// than the key set's `max_lifetime`.
fn check_times(
    request: &SignHttpRequest,
    now: i64,
    policy: &crate::config::Policy,
) -> Result<(), ServiceError> {
    let skew = policy.clock_skew.as_secs() as i64;
    let max_lifetime = policy.max_lifetime.as_secs() as i64;
    let created = request.created.unwrap_or(now);
    if (created - now).abs() > skew {
        return Err(ServiceError::BadRequest {
            code: "created_out_of_range",
            message: format!(
                "created is {}s from now; at most {skew}s of clock skew is allowed",
                created - now
            ),
        });
    }
    if let Some(expires) = request.expires
        && expires - created > max_lifetime
    {
        return Err(ServiceError::BadRequest {
            code: "lifetime_exceeded",
            message: format!(
                "expires - created is {}s; this key set allows at most {max_lifetime}s",
                expires - created
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Policy;

    fn policy() -> Policy {
        Policy {
            rotation_period: Duration::from_secs(86_400),
            min_publish: Duration::ZERO,
            retain: Duration::ZERO,
            destroy_after: None,
            max_lifetime: Duration::from_secs(300),
            clock_skew: Duration::from_secs(60),
        }
    }

    fn request(extra: &str) -> SignHttpRequest {
        http_sig::parse_sign_request(
            format!(r#"{{"message":{{}},"covered":[]{extra}}}"#).as_bytes(),
        )
        .expect("request")
    }

    fn code(extra: &str) -> Option<&'static str> {
        match check_times(&request(extra), 1_000, &policy()) {
            Ok(()) => None,
            Err(ServiceError::BadRequest { code, .. }) => Some(code),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn created_and_lifetime_follow_the_key_set_policy() {
        assert_eq!(code(""), None);
        assert_eq!(code(r#","expires":1300"#), None);
        assert_eq!(code(r#","expires":1301"#), Some("lifetime_exceeded"));
        assert_eq!(code(r#","created":940,"expires":1240"#), None);
        assert_eq!(code(r#","created":939"#), Some("created_out_of_range"));
        assert_eq!(code(r#","created":1061"#), Some("created_out_of_range"));
        assert_eq!(
            code(r#","created":1060,"expires":1361"#),
            Some("lifetime_exceeded")
        );
    }

    #[test]
    fn module_errors_keep_their_codes() {
        let e: ServiceError = HttpSigError::DuplicateComponent("\"@method\"".into()).into();
        assert!(matches!(
            e,
            ServiceError::BadRequest {
                code: "duplicate_component",
                ..
            }
        ));
    }
}
