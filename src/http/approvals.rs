//! The two-person rule's routes: `GET /v1/approvals` (pending ones), `POST
//! /v1/approvals/{id}/approve` (a different admin client; answers as the held request's own route
//! would) and `.../reject`. See `service::approvals`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;
use super::admin::{destroyed, imported, refused, rotated};
use super::auth::Caller;
use super::openapi::ProblemDoc;
use super::problem::Problem;
use crate::config::Role;
use crate::service::Executed;

#[utoipa::path(get, path = "/v1/approvals", tag = "admin", responses((status = 200, description = "`{\"approvals\": [...]}`: the requests pending a second admin, oldest first"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require(&[crate::config::Role::Admin, Role::Auditor])?;
    let pending = state.service.pending_approvals().await?;
    Ok(Json(json!({ "approvals": pending })))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "admin", params(("id" = String, Path, description = "approval id")), responses((status = 200, description = "approved: the held request was carried out; its own route's answer"), (status = 201, description = "an approved import"), (status = 202, description = "an approved destruction, scheduled after the key set's destroy_delay"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(&[Role::Admin])?;
    match state.service.approve(&id, caller.name()).await {
        Ok(Executed::Destroyed(entry)) => Ok(destroyed(entry)),
        Ok(Executed::Imported(entry)) => Ok(imported(entry)),
        Ok(Executed::Rotated(k)) => rotated(&state, &k.key_set, &k),
        Err(e) => Err(refused(&state, &caller, "approve", "", e).await),
    }
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "admin", params(("id" = String, Path, description = "approval id")), responses((status = 200, description = "`{\"approval\": {...}}` with status `rejected`"), (status = "4XX", description = "problem (RFC 9457) with a stable `code`", body = ProblemDoc, content_type = "application/problem+json"), (status = "5XX", description = "problem; 503 carries Retry-After", body = ProblemDoc, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require(&[Role::Admin])?;
    match state.service.reject(&id, caller.name()).await {
        Ok(a) => Ok(Json(json!({ "approval": a }))),
        Err(e) => Err(refused(&state, &caller, "reject", "", e).await),
    }
}
