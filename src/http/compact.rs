//! `POST /v1/key-sets/{set}/sign/compact` (a JWS the caller built: Signet signs its exact signing
//! input after its checks, `service::SignCompact`) and `GET /v1/key-sets/{set}/signing-key` (the
//! active, next and retired keys, so such a caller keeps its keystore in step with rotation).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::openapi::ProblemDoc;
use super::problem::{ApiJson, Problem};
use crate::service::{CompactSigned, SignCompact, SigningKeys};

/// `POST /v1/key-sets/{set}/sign/compact`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignCompactRequest {
    /// `BASE64URL(header) "." BASE64URL(payload)`, built by the caller; the header carries the key
    /// set's `alg` and a `kid` that may sign now.
    signing_input: String,
}

/// What `sign/compact` returns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CompactSignedDoc {
    /// The JWS signature, base64url (raw r||s for ECDSA).
    signature: String,
    /// `signing_input "." signature`.
    jws: String,
    kid: String,
    alg: String,
    /// The profile the JWS was checked against.
    profile: String,
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/sign/compact", tag = "signing", params(("set" = String, Path, description = "key set name")), request_body = SignCompactRequest, responses((status = 200, description = "the signature over the caller's signing input", body = CompactSignedDoc), (status = 409, description = "kid_not_active, with active_kid and next_kid", body = ProblemDoc, content_type = "application/problem+json"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn sign_compact(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    ApiJson(req): ApiJson<SignCompactRequest>,
) -> Result<Json<CompactSigned>, Problem> {
    let op = SignCompact::new(req.signing_input);
    let signed = state.service.sign(caller.client(), &set, op).await?;
    tracing::debug!(client = caller.name(), key_set = %set, kid = %signed.kid,
        profile = signed.profile, "signed a caller-built JWS");
    Ok(Json(signed))
}

/// One key of `GET /v1/key-sets/{set}/signing-key`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SigningKeyDoc {
    kid: String,
    alg: String,
    /// The public JWK, as the JWKS serves it.
    #[schema(value_type = Object)]
    jwk: serde_json::Value,
    /// RFC 3339.
    activate_at: String,
}

/// `GET /v1/key-sets/{set}/signing-key`
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SigningKeysDoc {
    active: SigningKeyDoc,
    next: Option<SigningKeyDoc>,
    retired: Vec<SigningKeyDoc>,
}

#[utoipa::path(get, path = "/v1/key-sets/{set}/signing-key", tag = "signing", params(("set" = String, Path, description = "key set name")), responses((status = 200, description = "the active key, the next key and the retired keys still published", body = SigningKeysDoc), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
) -> Result<Json<SigningKeys>, Problem> {
    Ok(Json(state.service.signing_keys(caller.client(), &set)?))
}
