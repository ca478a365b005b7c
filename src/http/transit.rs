//! The Vault Transit-compatible routes (DESIGN.md "Vault Transit compatibility"):
//! `POST /v1/transit/sign/{set}[/{hash}]`, `POST /v1/transit/verify/{set}[/{hash}]`,
//! `GET /v1/transit/keys/{set}`, with Vault's request fields, its `{"data": ...}` envelope and
//! its `{"errors": [...]}` error bodies (not RFC 9457: Transit clients parse Vault's shape).
//! `X-Vault-Token: <bearer token>` authenticates, as do `Authorization: Bearer` and mTLS.
//! Signing goes through the one pipeline (`service::TransitSign`), one call per `batch_input`
//! item; the body shapes are in `transit_body`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use super::transit_body::{
    SignBody, TransitKeyDoc, TransitSignedDoc, TransitValidDoc, VaultErrorsDoc, VerifyBody, parse,
};
use crate::service::{ServiceError, TransitSign};

/// A Vault error response: `{"errors": [...]}` with Vault's status.
#[derive(Debug)]
pub(crate) struct VaultError {
    status: StatusCode,
    errors: Vec<String>,
    retry_after: Option<u64>,
}

impl VaultError {
    pub(crate) fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    pub(crate) fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            errors: vec![msg.into()],
            retry_after: None,
        }
    }

    /// Vault's answer for what Signet reports as `p`: 401 and 403 are Vault's 403 `permission
    /// denied`, other client errors 400 (429 stays), server errors keep their status.
    fn from_problem(p: Problem, on_read: bool) -> Self {
        let status = match p.status.as_u16() {
            401 | 403 => return Self::new(StatusCode::FORBIDDEN, "permission denied"),
            404 if p.code == "key_set_not_found" && on_read => {
                return Self {
                    status: StatusCode::NOT_FOUND,
                    errors: Vec::new(),
                    retry_after: None,
                };
            }
            404 if p.code == "key_set_not_found" => {
                return Self::bad_request("signing key not found");
            }
            429 => StatusCode::TOO_MANY_REQUESTS,
            400..=499 => StatusCode::BAD_REQUEST,
            _ => p.status,
        };
        Self {
            status,
            errors: vec![p.detail],
            retry_after: p.retry_after,
        }
    }

    /// The message of a failed `batch_input` item.
    fn message(self) -> String {
        self.errors.join("; ")
    }
}

impl From<ServiceError> for VaultError {
    fn from(e: ServiceError) -> Self {
        Self::from_problem(e.into(), false)
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "errors": self.errors }))).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// 404 or 405 on a path under `/v1/transit/`, in Vault's shape.
pub(crate) fn vault_route_error(status: StatusCode) -> Response {
    let msg = if status == StatusCode::NOT_FOUND {
        "unsupported path"
    } else {
        "unsupported operation"
    };
    VaultError::new(status, msg).into_response()
}

/// The caller of a Transit route; a failed authentication is Vault's 403.
pub(crate) struct VaultCaller(Caller);

impl FromRequestParts<AppState> for VaultCaller {
    type Rejection = VaultError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, VaultError> {
        Caller::vault(parts, state)
            .map(VaultCaller)
            .map_err(|p| VaultError::from_problem(p, false))
    }
}

/// What every sign and verify route takes: the caller (Vault's 403 when authentication fails),
/// the key set and the optional `{hash}` of the path, and the body, extracted in that order.
pub(crate) struct TransitCall {
    state: AppState,
    caller: Caller,
    path: TransitPath,
    body: Bytes,
}

/// `{set}` and, on the `.../{hash}` routes, `{hash}`.
#[derive(Deserialize)]
struct TransitPath {
    set: String,
    hash: Option<String>,
}

impl FromRequest<AppState> for TransitCall {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let VaultCaller(caller) = VaultCaller::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Path(path) = Path::<TransitPath>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: state.clone(),
            caller,
            path,
            body,
        })
    }
}

/// The message of a failed `batch_input` item.
fn item_error(e: ServiceError) -> String {
    VaultError::from(e).message()
}

/// Vault's response envelope around `data`.
fn envelope(data: Value) -> Json<Value> {
    Json(json!({
        "request_id": "", "lease_id": "", "renewable": false, "lease_duration": 0,
        "data": data, "wrap_info": null, "warnings": null, "auth": null, "mount_type": "transit",
    }))
}

#[utoipa::path(post, path = "/v1/transit/sign/{set}", tag = "transit", params(("set" = String, Path, description = "key set name")), request_body = SignBody, responses((status = 200, description = "Vault's envelope; `data` holds `signature` (`vault:v<N>:...`) and `key_version`, or `batch_results`", body = TransitSignedDoc), (status = "4XX", description = "Vault's error body (not RFC 9457): 400 bad input or a key version that may not sign, 403 permission denied, 429", body = VaultErrorsDoc), (status = "5XX", description = "Vault's error body; 503 carries Retry-After", body = VaultErrorsDoc)), security(("vault_token" = []), ("bearer" = [])))]
pub(crate) async fn sign(call: TransitCall) -> Result<Json<Value>, VaultError> {
    sign_with(call).await
}

#[utoipa::path(post, path = "/v1/transit/sign/{set}/{hash}", tag = "transit", params(("set" = String, Path, description = "key set name"), ("hash" = String, Path, description = "hash_algorithm, e.g. sha2-256")), request_body = SignBody, responses((status = 200, description = "as POST /v1/transit/sign/{set}", body = TransitSignedDoc), (status = "4XX", description = "Vault's error body (not RFC 9457)", body = VaultErrorsDoc), (status = "5XX", description = "Vault's error body; 503 carries Retry-After", body = VaultErrorsDoc)), security(("vault_token" = []), ("bearer" = [])))]
pub(crate) async fn sign_hash(call: TransitCall) -> Result<Json<Value>, VaultError> {
    sign_with(call).await
}

async fn sign_with(call: TransitCall) -> Result<Json<Value>, VaultError> {
    let (state, caller, set) = (&call.state, &call.caller, call.path.set.as_str());
    let req: SignBody = parse(&call.body)?;
    let options = req.options(call.path.hash.clone());
    let marshaling = state
        .service
        .transit_admit(caller.client(), set, &options)?;
    let sign_one = |input: String| {
        let op = TransitSign::new(input, marshaling, options.key_version);
        state.service.sign(caller.client(), set, op)
    };
    let Some(items) = req.batch_input else {
        let signed = sign_one(req.input.unwrap_or_default()).await?;
        return Ok(envelope(json!(signed)));
    };
    if items.is_empty() {
        return Err(VaultError::bad_request("missing batch input to process"));
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let reference = item.reference.unwrap_or_default();
        let result = match item.input {
            None => Err("missing input".to_string()),
            Some(input) => sign_one(input).await.map_err(item_error),
        };
        results.push(match result {
            Ok(s) => json!({ "signature": s.signature, "key_version": s.key_version,
                "reference": reference }),
            Err(error) => json!({ "error": error, "reference": reference }),
        });
    }
    Ok(envelope(json!({ "batch_results": results })))
}

#[utoipa::path(post, path = "/v1/transit/verify/{set}", tag = "transit", params(("set" = String, Path, description = "key set name")), request_body = VerifyBody, responses((status = 200, description = "Vault's envelope; `data` holds `valid`, or `batch_results`", body = TransitValidDoc), (status = "4XX", description = "Vault's error body (not RFC 9457)", body = VaultErrorsDoc), (status = "5XX", description = "Vault's error body", body = VaultErrorsDoc)), security(("vault_token" = []), ("bearer" = [])))]
pub(crate) async fn verify(call: TransitCall) -> Result<Json<Value>, VaultError> {
    verify_with(call)
}

#[utoipa::path(post, path = "/v1/transit/verify/{set}/{hash}", tag = "transit", params(("set" = String, Path, description = "key set name"), ("hash" = String, Path, description = "hash_algorithm, e.g. sha2-256")), request_body = VerifyBody, responses((status = 200, description = "as POST /v1/transit/verify/{set}", body = TransitValidDoc), (status = "4XX", description = "Vault's error body (not RFC 9457)", body = VaultErrorsDoc), (status = "5XX", description = "Vault's error body", body = VaultErrorsDoc)), security(("vault_token" = []), ("bearer" = [])))]
pub(crate) async fn verify_hash(call: TransitCall) -> Result<Json<Value>, VaultError> {
    verify_with(call)
}

fn verify_with(call: TransitCall) -> Result<Json<Value>, VaultError> {
    let (state, caller, set) = (&call.state, &call.caller, call.path.set.as_str());
    let req: VerifyBody = parse(&call.body)?;
    if req.hmac.is_some() {
        return Err(VaultError::bad_request("hmac is not supported: keys sign"));
    }
    let options = req.options(call.path.hash.clone());
    let marshaling = state
        .service
        .transit_admit(caller.client(), set, &options)?;
    let verify_one = |input: Option<String>, signature: Option<String>| {
        let signature = signature.ok_or_else(|| "missing signature".to_string())?;
        let input = input.unwrap_or_default();
        (state.service)
            .transit_verify(set, marshaling, &input, &signature)
            .map_err(item_error)
    };
    let Some(items) = req.batch_input else {
        if req.signature.is_none() {
            return Err(VaultError::bad_request(
                "neither a 'signature' nor an 'hmac' were given to verify",
            ));
        }
        let valid = verify_one(req.input, req.signature).map_err(VaultError::bad_request)?;
        return Ok(envelope(json!({ "valid": valid })));
    };
    if items.is_empty() {
        return Err(VaultError::bad_request("missing batch input to process"));
    }
    let results: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let reference = item.reference.unwrap_or_default();
            match verify_one(item.input, item.signature) {
                Ok(valid) => json!({ "valid": valid, "reference": reference }),
                Err(error) => json!({ "error": error, "reference": reference }),
            }
        })
        .collect();
    Ok(envelope(json!({ "batch_results": results })))
}

#[utoipa::path(get, path = "/v1/transit/keys/{set}", tag = "transit", params(("set" = String, Path, description = "key set name")), responses((status = 200, description = "Vault's read-key shape: `type`, `keys` (version -> PEM `public_key`, `creation_time`, `name`, and Signet's `kid` and `state`), `latest_version` (the active key's)...", body = TransitKeyDoc), (status = "4XX", description = "Vault's error body (not RFC 9457): 403 permission denied, 404 no such key set", body = VaultErrorsDoc), (status = "5XX", description = "Vault's error body", body = VaultErrorsDoc)), security(("vault_token" = []), ("bearer" = [])))]
pub(crate) async fn read_key(
    State(state): State<AppState>,
    VaultCaller(caller): VaultCaller,
    Path(set): Path<String>,
) -> Result<Json<Value>, VaultError> {
    let key = (state.service)
        .transit_key(caller.client(), &set)
        .map_err(|e| VaultError::from_problem(e.into(), true))?;
    Ok(envelope(json!(key)))
}
