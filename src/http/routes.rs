//! Route handlers: parse, authorise, call the service, shape the answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Caller;
use super::openapi::{JwksDoc, ProblemDoc, SignedDoc};
use super::problem::{ApiJson, Problem};
use crate::config::Role;
use crate::service::{SignJws, SignJwt, Signed};

/// `POST /v1/key-sets/{set}/sign/jwt`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignJwtRequest {
    /// The JWT claims, signed as sent after the profile's checks.
    #[schema(value_type = Object)]
    claims: Map<String, Value>,
    /// Header members the profile allows (`typ`; any but alg/kid/jku/x5u/jwk/crit for `generic`).
    #[serde(default)]
    #[schema(value_type = Object)]
    header: Map<String, Value>,
}

/// `POST /v1/key-sets/{set}/sign/jws` (profile `generic`)
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignJwsRequest {
    /// base64url of the payload.
    payload: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    header: Map<String, Value>,
    #[serde(default)]
    detached: bool,
}

fn signed(field: &str, s: Signed) -> Json<Value> {
    Json(json!({ field: s.token, "kid": s.kid, "alg": s.alg }))
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/sign/jwt", tag = "signing", params(("set" = String, Path, description = "key set name")), request_body = SignJwtRequest, responses((status = 200, description = "the signed JWT", body = SignedDoc), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn sign_jwt(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    ApiJson(req): ApiJson<SignJwtRequest>,
) -> Result<Json<Value>, Problem> {
    let op = SignJwt::new(req.claims, req.header);
    let s = state.service.sign(caller.client(), &set, op).await?;
    tracing::debug!(client = caller.name(), key_set = %set, kid = %s.kid, "signed JWT");
    Ok(signed("jwt", s))
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/sign/jws", tag = "signing", params(("set" = String, Path, description = "key set name")), request_body = SignJwsRequest, responses((status = 200, description = "the JWS"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn sign_jws(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    ApiJson(req): ApiJson<SignJwsRequest>,
) -> Result<Json<Value>, Problem> {
    let op = SignJws::new(req.payload, req.header, req.detached);
    let s = state.service.sign(caller.client(), &set, op).await?;
    tracing::debug!(client = caller.name(), key_set = %set, kid = %s.kid, "signed JWS");
    Ok(signed("jws", s))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "jwks", responses((status = 200, description = "every published public key; Cache-Control max-age and a strong ETag", body = JwksDoc), (status = 304, description = "If-None-Match matched")))]
pub(crate) async fn jwks_all(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    jwks(&state, None, &headers)
}

#[utoipa::path(get, path = "/v1/key-sets/{set}/jwks", tag = "jwks", params(("set" = String, Path, description = "key set name")), responses((status = 200, description = "the key set's published public keys", body = JwksDoc), (status = 304, description = "If-None-Match matched"), (status = 404, description = "unknown key set", body = ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn jwks_set(
    State(state): State<AppState>,
    Path(set): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    jwks(&state, Some(&set), &headers)
}

fn jwks(state: &AppState, set: Option<&str>, headers: &HeaderMap) -> Result<Response, Problem> {
    let doc = state.service.jwks(set)?;
    let max_age = state.service.config.server.jwks_max_age.as_secs();
    let cache = HeaderValue::try_from(format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"));
    let etag = HeaderValue::try_from(doc.etag.as_str()).unwrap_or(HeaderValue::from_static("\"\""));
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == doc.etag || t.trim() == "*");
    let common = [(header::CACHE_CONTROL, cache), (header::ETAG, etag)];
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    Ok((
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.body.clone(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/key-sets", tag = "admin", responses((status = 200, description = "key sets with active and next kids"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn key_sets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(json!({ "key_sets": state.service.key_sets() })))
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is alive")))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "`ready`, or `degraded`: every key set can sign but something else is down (the store for less than `[store] grace`)"), (status = 503, description = "`not_ready` (some key set cannot sign, or the key view is stale) or `draining`. Without credentials the body has the status and each component's up/down only; an admin or auditor credential adds the reasons and details")), security((), ("bearer" = [])))]
pub(crate) async fn readyz(
    State(state): State<AppState>,
    caller: Result<Caller, Problem>,
) -> Response {
    if state.drain.is_draining() {
        let body = json!({ "status": "draining" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    // Answered from the background health check's state: no HSM or store call per probe.
    let readiness = state.service.readiness();
    let status = if readiness.can_sign() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let details = caller.is_ok_and(|c| c.require(&[Role::Admin, Role::Auditor]).is_ok());
    if details {
        (status, Json(readiness)).into_response()
    } else {
        (status, Json(readiness.public())).into_response()
    }
}
