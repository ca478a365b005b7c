//! Observability at the HTTP edge: a request id on every request (taken from `X-Request-Id` when
//! sane, made up otherwise) carried by a tracing span and echoed in the response, request metrics,
//! and `GET /metrics` in Prometheus text format. Never logs a token, PIN or payload.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use super::AppState;
use crate::keys::lifecycle;
use crate::service::BackendState;

const REQUEST_ID: &str = "x-request-id";

/// Latency buckets (seconds) for request and HSM histograms.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once, at start-up).
pub fn install_recorder() -> Option<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .ok()?
        .install_recorder()
        .map_err(|e| tracing::error!(error = %e, "metrics recorder not installed"))
        .ok()
}

fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Request id, span, access log and request metrics.
pub async fn observe(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, ms = took.as_secs_f64() * 1e3, "request");
    });
    let labels = [
        ("route", route),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("signet_http_requests_total", &labels).increment(1);
    metrics::histogram!("signet_http_request_duration_seconds", &labels).record(took.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// `GET /metrics`: gauges of the current state are set at scrape time, then everything rendered.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
            .into_response();
    };
    let service = &state.service;
    for slot in &service.backends {
        let name = slot.name().to_string();
        // Counters that only move on incidents are shown from the start, at zero.
        metrics::counter!("signet_hsm_recoveries_total", "hsm" => name.clone()).increment(0);
        metrics::counter!("signet_hsm_failures_total", "hsm" => name.clone()).increment(0);
        let (waiting, running) = slot.load();
        let up = matches!(slot.state(), BackendState::Up(_));
        metrics::gauge!("signet_hsm_up", "hsm" => name.clone()).set(if up { 1.0 } else { 0.0 });
        metrics::gauge!("signet_hsm_sessions", "hsm" => name.clone(), "state" => "in_use")
            .set(running as f64);
        metrics::gauge!("signet_hsm_sessions", "hsm" => name.clone(), "state" => "idle")
            .set(slot.config.sessions.saturating_sub(running) as f64);
        metrics::gauge!("signet_hsm_queue_depth", "hsm" => name).set(waiting as f64);
    }
    let now = service.now();
    let view = service.view();
    for set in &service.config.key_sets {
        let records = view.records(&set.name);
        let next = lifecycle::next(records, now).map_or(0, |k| k.activate_at - now);
        metrics::gauge!("signet_key_set_next_rotation_seconds", "key_set" => set.name.clone())
            .set(next as f64);
        let published =
            lifecycle::published(records, set.policy.retain.as_secs() as i64, now).len();
        metrics::gauge!("signet_key_set_published_keys", "key_set" => set.name.clone())
            .set(published as f64);
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        handle.render(),
    )
        .into_response()
}
