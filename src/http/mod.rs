//! The HTTP API v1 on axum: routes, caller authentication (tokens, mTLS), quotas, problem
//! responses, limits, and the TLS listener.
//!
//! Knows the service core and nothing of cryptoki; `router(state)` is what tests drive.

mod auth;
mod problem;
mod quota;
mod routes;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use auth::{Caller, Clients};
pub use problem::Problem;

use crate::service::Service;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub clients: Arc<Clients>,
}

impl AppState {
    pub fn new(service: Arc<Service>) -> Self {
        let clients = Arc::new(Clients::new(&service.config.clients));
        Self { service, clients }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let max_body = state.service.config.server.max_body;
    Router::new()
        .route("/v1/key-sets/{set}/sign/jwt", post(routes::sign_jwt))
        .route("/v1/key-sets/{set}/sign/jws", post(routes::sign_jws))
        .route("/.well-known/jwks.json", get(routes::jwks_all))
        .route("/v1/key-sets/{set}/jwks", get(routes::jwks_set))
        .route("/v1/key-sets", get(routes::key_sets))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Every request has a deadline; past it the caller gets 503 and may retry.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit: Duration = state.service.config.server.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request did not complete within {}",
                humantime::format_duration(limit)
            ),
        )
        .with_retry_after(1)
        .into_response(),
    }
}
