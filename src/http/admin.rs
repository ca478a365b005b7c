//! Admin and auditor routes: key lists, rotate, revoke, import, destroy (and its cancellation),
//! the audit trail.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::openapi::ProblemDoc;
use super::problem::{ApiJson, ApiQuery, Problem};
use crate::config::Role;
use crate::keys::{KeyRecord, audit_json};
use crate::service::{ApprovalView, Held, ImportBy, KeyEntry, KeyListing, Rfc3339, ServiceError};
use crate::support::Chain;

/// The key listing of `set` as JSON, for the answers that add members to it.
fn listing(state: &AppState, set: &str) -> Result<Value, Problem> {
    Ok(json!(state.service.key_listing(set)?))
}

#[utoipa::path(get, path = "/v1/key-sets/{set}/keys", tag = "admin", params(("set" = String, Path, description = "key set name")), responses((status = 200, description = "every key with its state"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
) -> Result<Json<KeyListing>, Problem> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(state.service.key_listing(&set)?))
}

/// Records a refused admin call, then returns its problem.
pub(super) async fn refused(
    state: &AppState,
    caller: &Caller,
    call: &str,
    set: &str,
    e: ServiceError,
) -> Problem {
    let problem = Problem::from(e);
    if let Err(e) = state
        .service
        .audit_refusal(caller.name(), call, set, problem.code, &problem.detail)
        .await
    {
        tracing::error!(error = %Chain(&e), "cannot record a refused admin call");
    }
    problem
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    activate_at: Option<String>,
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/rotate", tag = "admin", params(("set" = String, Path, description = "key set name")), request_body(content = RotateRequest, description = "optional"), responses((status = 200, description = "the next key activates at the given time"), (status = 202, description = "a forced rotation held for a second admin (`[approvals] require = [\"force\"]`): `{\"approval\": {...}}`"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    // The body is optional: an empty POST rotates now.
    let req: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::new("invalid_request", format!("rotate body: {e}")))?
    };
    let at = match &req.activate_at {
        None => None,
        Some(t) => Some(
            humantime::parse_rfc3339_weak(t)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .ok_or_else(|| Problem::new("invalid_time", "activate_at must be RFC 3339"))?,
        ),
    };
    match state
        .service
        .rotate_or_hold(&set, at, req.force, caller.name())
        .await
    {
        Ok(Held::Done(k)) => rotated(&state, &set, &k),
        Ok(Held::Pending(a)) => Ok(held(a)),
        Err(e) => Err(refused(&state, &caller, "rotate", &set, e).await),
    }
}

/// The answer of a rotation (direct, or approved).
pub(super) fn rotated(state: &AppState, set: &str, k: &KeyRecord) -> Result<Response, Problem> {
    let mut out = listing(state, set)?;
    out["rotated_to"] = json!(k.kid);
    out["activate_at"] = json!(Rfc3339(k.activate_at));
    Ok(Json(out).into_response())
}

/// 202 with the pending approval of a held request (`[approvals] require`).
pub(super) fn held(approval: ApprovalView) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "approval": approval }))).into_response()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    reason: String,
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/keys/{kid}/revoke", tag = "admin", params(("set" = String, Path, description = "key set name"), ("kid" = String, Path, description = "key id (RFC 7638 thumbprint)")), request_body = RevokeRequest, responses((status = 200, description = "revoked; a revoked active key hands over to the next key at once"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((set, kid)): Path<(String, String)>,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    match state
        .service
        .revoke(&set, &kid, &req.reason, req.force, caller.name())
        .await
    {
        Ok(promoted) => {
            let mut out = listing(&state, &set)?;
            out["revoked"] = json!(kid);
            out["promoted"] = json!(promoted);
            Ok(Json(out))
        }
        Err(e) => Err(refused(&state, &caller, "revoke", &set, e).await),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    id: Option<String>,
    label: Option<String>,
    /// Adopt a key whose private bytes were once outside the HSM (`CKA_ALWAYS_SENSITIVE` or
    /// `CKA_NEVER_EXTRACTABLE` false); only where the key set sets `allow_exposed_import`.
    #[serde(default)]
    accept_exposed_material: bool,
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/keys/import", tag = "admin", params(("set" = String, Path, description = "key set name")), request_body = ImportRequest, responses((status = 201, description = "the key pair is the key set's next key"), (status = 202, description = "held for a second admin (`[approvals] require = [\"import\"]`): `{\"approval\": {...}}`"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json"), (status = 201, description = "imported as the next key")), security(("bearer" = [])))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Response, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    let by = match (req.id, req.label) {
        (Some(id), None) => ImportBy::Id(id),
        (None, Some(label)) => ImportBy::Label(label),
        _ => {
            return Err(Problem::new(
                "invalid_request",
                "give exactly one of `id` (CKA_ID in hex) or `label` (CKA_LABEL)",
            ));
        }
    };
    let accept = req.accept_exposed_material;
    match state
        .service
        .import_or_hold(&set, by, accept, caller.name())
        .await
    {
        Ok(Held::Done(entry)) => Ok(imported(entry)),
        Ok(Held::Pending(a)) => Ok(held(a)),
        Err(e) => Err(refused(&state, &caller, "import", &set, e).await),
    }
}

/// The answer of an import (direct, or approved).
pub(super) fn imported(entry: KeyEntry) -> Response {
    (StatusCode::CREATED, Json(entry)).into_response()
}

#[utoipa::path(delete, path = "/v1/key-sets/{set}/keys/{kid}", tag = "admin", params(("set" = String, Path, description = "key set name"), ("kid" = String, Path, description = "key id (RFC 7638 thumbprint)")), responses((status = 200, description = "the private object is destroyed (key set `destroy_delay` 0s); the public JWK stays"), (status = 202, description = "destruction scheduled: the key shows `pending_destruction`, or the request waits for a second admin (`approval`)"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path((set, kid)): Path<(String, String)>,
) -> Result<Response, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    match state
        .service
        .destroy_or_hold(&set, &kid, caller.name())
        .await
    {
        Ok(Held::Done(entry)) => Ok(destroyed(entry)),
        Ok(Held::Pending(a)) => Ok(held(a)),
        Err(e) => Err(refused(&state, &caller, "destroy", &set, e).await),
    }
}

/// The answer of a destruction (direct, or approved): 200 when done, 202 when scheduled.
pub(super) fn destroyed(entry: KeyEntry) -> Response {
    if entry.destroyed_at.is_none() {
        (StatusCode::ACCEPTED, Json(entry)).into_response()
    } else {
        Json(entry).into_response()
    }
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/keys/{kid}/cancel-destruction", tag = "admin", params(("set" = String, Path, description = "key set name"), ("kid" = String, Path, description = "key id (RFC 7638 thumbprint)")), responses((status = 200, description = "the pending destruction is cancelled; the key is shown"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn cancel_destruction(
    State(state): State<AppState>,
    caller: Caller,
    Path((set, kid)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    match state
        .service
        .cancel_destruction(&set, &kid, caller.name())
        .await
    {
        Ok(entry) => Ok(Json(json!(entry))),
        Err(e) => Err(refused(&state, &caller, "cancel-destruction", &set, e).await),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(("after" = Option<i64>, Query, description = "events with seq > after"), ("limit" = Option<i64>, Query, description = "at most this many (1-1000, default 100)")), responses((status = 200, description = "audit events"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let events = state
        .service
        .audit_after(q.after, q.limit.unwrap_or(100))
        .await?;
    let next = events.last().map_or(q.after, |e| e.seq);
    let events: Vec<Value> = events.iter().map(audit_json::to_json).collect();
    Ok(Json(json!({ "events": events, "next_after": next })))
}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", responses((status = 200, description = "the hash chain holds"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn audit_verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    match state.service.audit_verify().await? {
        Ok(n) => Ok(Json(json!({ "ok": true, "events": n }))),
        Err(brk) => Err(Problem::new("audit_chain_broken", brk.to_string())
            .with_member("first_bad_seq", json!(brk.seq))
            .with_member("reason", json!(brk.reason))),
    }
}
