//! The HTTP API v1 on axum: routes, caller authentication (tokens, mTLS), quotas, problem
//! responses, limits, and the listeners (TCP, TLS, Unix socket) with their connection limits and
//! graceful drain.
//!
//! Knows the service core and nothing of cryptoki; `router(state)` is what tests drive.

mod admin;
mod approvals;
mod auth;
mod certs;
mod codes;
mod compact;
mod conn;
mod http_sig;
mod listener;
pub(crate) mod observe;
mod openapi;
mod problem;
mod quota;
mod routes;
pub mod server;
pub mod tls;
mod transit;
mod transit_body;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use auth::Clients;
pub use codes::{CODES, ProblemCode};
pub(crate) use problem::Problem;

use crate::service::Service;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub(crate) service: Arc<Service>,
    pub(crate) clients: Arc<Clients>,
    /// The Prometheus recorder's handle, when this process installed one.
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Set when the drain after SIGTERM starts; `/readyz` then answers 503.
    pub(crate) drain: server::Drain,
}

impl AppState {
    pub fn new(service: Arc<Service>) -> Self {
        let clients = Arc::new(Clients::new(&service.config.clients));
        Self {
            service,
            clients,
            metrics: None,
            drain: server::Drain::default(),
        }
    }

    pub(crate) fn with_metrics(
        mut self,
        handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        self.metrics = handle;
        self
    }
}

/// The whole API, and its OpenAPI document built from the same registrations.
pub fn router(state: AppState) -> Router {
    let max_body = state.service.config.server.max_body;
    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::sign_jwt))
        .routes(routes!(routes::sign_jws))
        .routes(routes!(http_sig::sign_http))
        .routes(routes!(compact::sign_compact))
        .routes(routes!(compact::signing_key))
        .routes(routes!(transit::sign))
        .routes(routes!(transit::sign_hash))
        .routes(routes!(transit::verify))
        .routes(routes!(transit::verify_hash))
        .routes(routes!(transit::read_key))
        .routes(routes!(routes::jwks_all))
        .routes(routes!(routes::jwks_set))
        .routes(routes!(routes::key_sets))
        .routes(routes!(admin::list_keys))
        .routes(routes!(admin::rotate))
        .routes(routes!(admin::import))
        .routes(routes!(admin::revoke))
        .routes(routes!(admin::destroy))
        .routes(routes!(admin::cancel_destruction))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(certs::csr))
        .routes(routes!(certs::certificate))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::audit_verify))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .routes(routes!(observe::metrics))
        .split_for_parts();
    let doc = Arc::new(doc);
    api.route(
        "/openapi.json",
        get(move || async move { Json(doc.as_ref().clone()) }),
    )
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(max_body))
    .layer(middleware::from_fn_with_state(state.clone(), deadline))
    .route_layer(middleware::from_fn(observe::observe))
    .with_state(state)
}

/// Whether `uri` is under the Vault Transit mount, whose errors take Vault's shape.
fn transit_path(uri: &Uri) -> bool {
    uri.path().starts_with("/v1/transit/")
}

async fn not_found(uri: Uri) -> Response {
    if transit_path(&uri) {
        return transit::vault_route_error(StatusCode::NOT_FOUND);
    }
    Problem::new("not_found", "no such route").into_response()
}

async fn method_not_allowed(uri: Uri) -> Response {
    if transit_path(&uri) {
        return transit::vault_route_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    Problem::new("method_not_allowed", "method not allowed on this route").into_response()
}

/// Every request has a deadline; past it the caller gets 503 and may retry.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit: Duration = state.service.config.server.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            "request_timeout",
            format!(
                "the request did not complete within {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}
