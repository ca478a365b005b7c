//! Certificate routes (admin): a CSR for a key, signed inside its HSM, and the chain a CA issued.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admin::refused;
use super::auth::Caller;
use super::openapi::ProblemDoc;
use super::problem::{ApiJson, Problem};
use crate::config::Role;
use crate::service::{CsrRequest, KeyEntry};

/// `POST /v1/key-sets/{set}/keys/{kid}/csr`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CsrBody {
    /// RFC 4514 distinguished name, e.g. `CN=signet,O=Example`.
    subject: String,
    /// DNS subject alternative names.
    #[serde(default)]
    dns: Vec<String>,
    /// URI subject alternative names.
    #[serde(default)]
    uri: Vec<String>,
}

#[utoipa::path(post, path = "/v1/key-sets/{set}/keys/{kid}/csr", tag = "admin", params(("set" = String, Path, description = "key set name"), ("kid" = String, Path, description = "key id (RFC 7638 thumbprint)")), request_body = CsrBody, responses((status = 200, description = "`{\"csr\": \"<PEM PKCS#10 signed inside the HSM>\", \"kid\"}`"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn csr(
    State(state): State<AppState>,
    caller: Caller,
    Path((set, kid)): Path<(String, String)>,
    ApiJson(req): ApiJson<CsrBody>,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    let req = CsrRequest {
        subject: req.subject,
        dns: req.dns,
        uri: req.uri,
    };
    match state.service.csr(&set, &kid, req, caller.name()).await {
        Ok(pem) => Ok(Json(json!({ "csr": pem, "kid": kid }))),
        Err(e) => Err(refused(&state, &caller, "csr", &set, e).await),
    }
}

/// `PUT /v1/key-sets/{set}/keys/{kid}/certificate`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateBody {
    /// PEM certificates, leaf first, each issued by the next.
    chain: String,
}

#[utoipa::path(put, path = "/v1/key-sets/{set}/keys/{kid}/certificate", tag = "admin", params(("set" = String, Path, description = "key set name"), ("kid" = String, Path, description = "key id (RFC 7638 thumbprint)")), request_body = CertificateBody, responses((status = 200, description = "attached: the key's JWK carries x5c and x5t#S256 from now on"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path((set, kid)): Path<(String, String)>,
    ApiJson(req): ApiJson<CertificateBody>,
) -> Result<Json<KeyEntry>, Problem> {
    caller.require(&[Role::Admin])?;
    state.service.key_set(&set)?;
    match state
        .service
        .attach_certificate(&set, &kid, &req.chain, caller.name())
        .await
    {
        Ok(entry) => Ok(Json(entry)),
        Err(e) => Err(refused(&state, &caller, "certificate", &set, e).await),
    }
}
