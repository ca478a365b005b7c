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
use crate::service::{BackendGauge, KeySetGauge};

const REQUEST_ID: &str = "x-request-id";

/// Latency buckets (seconds) for request and HSM histograms.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once, at start-up).
pub(crate) fn install_recorder() -> Option<PrometheusHandle> {
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
pub(crate) async fn observe(req: Request, next: Next) -> Response {
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
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
            .into_response();
    };
    let gauges = state.service.gauges();
    backend_gauges(&gauges.backends);
    key_set_gauges(&gauges.key_sets);
    let ready = state.service.readiness();
    for (name, k) in &ready.key_sets {
        metrics::gauge!("signet_key_set_can_sign", "key_set" => name.clone())
            .set(flag(k.reason.is_none()));
    }
    metrics::gauge!("signet_ready").set(flag(ready.status == "ready"));
    metrics::gauge!("signet_store_up").set(flag(gauges.store_up));
    if let Some((up, written, lag)) = gauges.audit_sink {
        metrics::counter!("signet_audit_sink_failures_total").increment(0);
        metrics::gauge!("signet_audit_sink_up").set(flag(up));
        metrics::gauge!("signet_audit_sink_last_seq").set(written as f64);
        metrics::gauge!("signet_audit_sink_lag_events").set(lag as f64);
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

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn backend_gauges(backends: &[BackendGauge]) {
    for b in backends {
        let hsm = b.hsm.clone();
        // Counters that only move on incidents are shown from the start, at zero.
        metrics::counter!("signet_hsm_recoveries_total", "hsm" => hsm.clone()).increment(0);
        metrics::counter!("signet_hsm_failures_total", "hsm" => hsm.clone()).increment(0);
        metrics::counter!("signet_hsm_signatures_total", "hsm" => hsm.clone(), "outcome" => "ok")
            .increment(0);
        metrics::gauge!("signet_hsm_up", "hsm" => hsm.clone()).set(flag(b.up));
        metrics::gauge!("signet_hsm_contexts", "hsm" => hsm.clone()).set(b.contexts as f64);
        metrics::gauge!("signet_hsm_contexts_up", "hsm" => hsm.clone()).set(b.contexts_up as f64);
        metrics::gauge!("signet_hsm_sessions", "hsm" => hsm.clone(), "state" => "in_use")
            .set(b.sessions_in_use as f64);
        metrics::gauge!("signet_hsm_sessions", "hsm" => hsm.clone(), "state" => "idle")
            .set(b.sessions_idle as f64);
        metrics::gauge!("signet_hsm_queue_depth", "hsm" => hsm).set(b.queue_depth as f64);
    }
}

fn key_set_gauges(key_sets: &[KeySetGauge]) {
    for k in key_sets {
        let set = k.key_set.clone();
        // A self-check failure is an incident: its series exists from the start, at zero.
        metrics::counter!("signet_signatures_total", "key_set" => set.clone(), "alg" => k.alg,
            "outcome" => "self_check_failed")
        .increment(0);
        metrics::gauge!("signet_key_set_next_rotation_seconds", "key_set" => set.clone())
            .set(k.next_rotation_s as f64);
        metrics::gauge!("signet_key_set_next_key_published", "key_set" => set.clone())
            .set(flag(k.next_published));
        if let Some(age) = k.active_age_s {
            metrics::gauge!("signet_key_set_active_key_age_seconds", "key_set" => set.clone())
                .set(age as f64);
        }
        metrics::gauge!("signet_key_set_rotation_period_seconds", "key_set" => set.clone())
            .set(k.rotation_period_s as f64);
        metrics::gauge!("signet_key_set_published_keys", "key_set" => set.clone())
            .set(k.published_keys as f64);
        // 1 while the next key waits for its certificate (`require_certificate`).
        metrics::gauge!("signet_key_set_next_key_awaits_certificate", "key_set" => set.clone())
            .set(flag(k.next_awaits_certificate));
        for (kid, seconds) in &k.certificates {
            metrics::gauge!("signet_certificate_expiry_seconds",
                "key_set" => set.clone(), "kid" => kid.clone())
            .set(*seconds as f64);
        }
    }
}
