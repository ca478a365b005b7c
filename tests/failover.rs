//! Several HSMs per key set: one SoftHSM2 token reached two ways, natively (`direct`) and through
//! a `p11-kit server` in a container (`remote`, two module contexts), one key set naming both.
//! Under four signing clients the remote server is killed, brought back, frozen and thawed: no
//! request fails, none waits longer than `op_timeout` + 1 s, the load spreads back to the remote
//! backend each time it returns, `/readyz` says `degraded` meanwhile, and every signature returned
//! verifies with the JWKS.

mod common;

use std::time::{Duration, Instant};

use common::containers::{P11_KIT_CLIENT, P11Server, available};
use common::load::Load;
use common::*;
use serde_json::Value;

const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// The standard test config with a second backend, `remote` (the same token through
/// `p11-kit-client.so`, two contexts), and the key sets on both (`direct` first: keys are
/// generated there and found by `CKA_ID` through the server).
fn two_backend_config(token: &Token, dir: &std::path::Path, port: u16) -> String {
    let ms = OP_TIMEOUT.as_millis();
    let mut cfg = config(token, dir, port, &[set("at", "access_token", "ES256")])
        .replace("name = \"primary\"", "name = \"direct\"")
        .replace("hsm = \"primary\"", "hsm = [\"direct\", \"remote\"]")
        .replace("op_timeout = \"5s\"", &format!("op_timeout = \"{ms}ms\""));
    cfg.push_str(&format!(
        r#"
[[hsm]]
name = "remote"
module = "{P11_KIT_CLIENT}"
token_label = "{label}"
pin_env = "SIGNET_HSM_PIN"
sessions = 2
contexts = 2
op_timeout = "{ms}ms"
"#,
        label = token.label
    ));
    cfg
}

/// Signatures made on backend `hsm` so far.
async fn signed_on(signet: &Signet, hsm: &str) -> f64 {
    let text = signet.metrics().await;
    let series = format!("signet_hsm_signatures_total{{hsm=\"{hsm}\",outcome=\"ok\"}}");
    text.lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `/readyz` until `want(status code, body)`, or fails with the last answer.
async fn wait_ready(signet: &Signet, what: &str, want: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The details (per-backend reasons) need credentials.
        let (status, body) = signet.readyz_details().await;
        if want(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /readyz {status} {body}\n{}",
            signet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the remote backend has signed more than `since` (the load spread back to it).
async fn wait_spread_back(signet: &Signet, since: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while signed_on(signet, "remote").await <= since {
        assert!(
            Instant::now() < deadline,
            "{what}: no signature on the remote backend\n{}",
            signet.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn degraded(status: u16, body: &Value) -> bool {
    status == 200
        && body["status"] == "degraded"
        && body["backends"]["remote"]["state"] == "down"
        && body["backends"]["direct"]["state"] == "up"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_one_of_two_backends_costs_no_request() {
    if !available("losing_one_of_two_backends_costs_no_request") {
        return;
    }
    let token = Token::new("failover");
    let dir = tempfile::tempdir().unwrap();
    let hsm = P11Server::start(&token, "hsm").await;
    let port = free_port();
    let cfg = two_backend_config(&token, dir.path(), port);
    let signet = Signet::start_with_env(
        &token,
        dir.path(),
        port,
        &cfg,
        &[("P11_KIT_SERVER_ADDRESS", &hsm.address())],
    )
    .await;
    wait_ready(&signet, "start-up", |s, b| {
        s == 200 && b["status"] == "ready"
    })
    .await;
    let jwks = signet.get_json("/.well-known/jwks.json").await;

    // Four clients signing until told to stop.
    let load = Load::start(&signet, 4, |_, _| "at");

    // Both backends take part in the load.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(signed_on(&signet, "direct").await > 0.0);
    wait_spread_back(&signet, 0.0, "under load").await;

    // A dead HSM host: `/readyz` says degraded, still 200.
    hsm.kill().await;
    let body = wait_ready(&signet, "after the kill", degraded).await;
    assert!(body["key_sets"]["at"]["reason"].is_null(), "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = signed_on(&signet, "remote").await;
    hsm.restart().await;
    wait_spread_back(&signet, before, "after the restart").await;
    wait_ready(&signet, "after the restart", |s, b| {
        s == 200 && b["status"] == "ready"
    })
    .await;

    // A hung HSM host (every process frozen).
    hsm.pause().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    wait_ready(&signet, "while frozen", degraded).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = signed_on(&signet, "remote").await;
    hsm.unpause().await;
    wait_spread_back(&signet, before, "after the thaw").await;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = load.stop().await;
    let limit = OP_TIMEOUT + Duration::from_secs(1);
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap_or_default();
    for o in &outcomes {
        assert_eq!(o.status, 200, "a request failed: {}", o.body);
        assert!(o.took <= limit, "a request waited {:?}", o.took);
        verify_jwt(o.body["jwt"].as_str().unwrap(), &jwks);
    }
    let text = signet.metrics().await;
    let failures = text
        .lines()
        .find(|l| l.starts_with("signet_hsm_failures_total{hsm=\"remote\"}"))
        .unwrap_or_default();
    eprintln!(
        "{} requests, none failed, slowest {slowest:?}; direct {} / remote {} signatures; {failures}",
        outcomes.len(),
        signed_on(&signet, "direct").await,
        signed_on(&signet, "remote").await,
    );
}
