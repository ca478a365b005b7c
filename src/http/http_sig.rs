//! `POST /v1/key-sets/{set}/sign/http`: RFC 9421 signatures for the `http_message` profile.
//!
//! The body is read as JSON by the usual extractor (so malformed JSON, a wrong content type or
//! an oversized body get the usual problems); the service's `SignHttp` operation shapes it with
//! `signing::http_sig`, whose errors (a bad base64 body, a bad component...) keep their own codes.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::AppState;
use super::auth::Caller;
use super::openapi::ProblemDoc;
use super::problem::{ApiJson, Problem};
use crate::service::{HttpSigned, SignHttp};

#[utoipa::path(post, path = "/v1/key-sets/{set}/sign/http", tag = "signing", params(("set" = String, Path, description = "key set name")), request_body(content = Object, description = "message, request, covered, label, tag, created, expires, nonce, content_digest (see DESIGN.md)"), responses((status = 200, description = "Signature-Input and Signature members"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn sign_http(
    State(state): State<AppState>,
    caller: Caller,
    Path(set): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<HttpSigned>, Problem> {
    let signed = state
        .service
        .sign(caller.client(), &set, SignHttp::new(body))
        .await?;
    tracing::info!(client = caller.name(), key_set = %set, kid = %signed.kid,
        "signed HTTP message");
    Ok(Json(signed))
}
