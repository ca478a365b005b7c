//! HSM outages: a remote HSM (a SoftHSM2 token exported by `p11-kit server` in a container, reached
//! through `p11-kit-client.so`) is killed under load and brought back, or frozen, through the
//! container API. Signet must fail fast while it is gone, say so in `/readyz`, and sign again
//! afterwards without being restarted.

mod common;

use std::time::{Duration, Instant};

use common::containers::{available, serve_remote};
use common::load::{self, Load};
use common::*;

const OP_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_remote_hsm_under_load_fails_fast_and_recovers() {
    if !available("killing_the_remote_hsm_under_load_fails_fast_and_recovers") {
        return;
    }
    let token = Token::new("remote-hsm");
    let dir = tempfile::tempdir().unwrap();
    // p11-kit 0.24 forwards neither CKM_EDDSA nor the hash-and-sign PSS mechanisms: ES256 and
    // PS256 (hashed here, raw CKM_RSA_PKCS_PSS there) are what a remote token of this kind signs.
    let sets = [
        set("at", "access_token", "ES256"),
        set("id", "id_token", "PS256"),
    ];
    let (hsm, mut signet) = serve_remote(&token, dir.path(), &sets, OP_TIMEOUT).await;
    let pid = signet.pid();
    let jwks = signet.get_json("/.well-known/jwks.json").await;

    // Load: four workers signing until told to stop, one request in three with `id`.
    let load = Load::start(
        &signet,
        4,
        |w, i| if (w + i) % 3 == 0 { "id" } else { "at" },
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    hsm.kill().await;

    // /readyz says why within a couple of seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let (status, body) = signet.readyz_details().await;
        if status == 503 && body["backends"]["primary"]["state"] == "down" {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not report the outage: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ready["backends"]["primary"]["reason"].is_string(),
        "{ready}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted_at = Instant::now();
    hsm.restart().await;

    // Signing resumes without a restart of Signet.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = signet.http.get(signet.url("/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the HSM came back:\n{}",
            signet.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcomes = load.stop().await;

    // The incident shows in the metrics.
    let metrics = signet.metrics().await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{metrics}"))
    };
    assert!(value("signet_hsm_recoveries_total{hsm=\"primary\"}") >= 1.0);
    assert!(value("signet_hsm_failures_total{hsm=\"primary\"}") >= 1.0);
    assert_eq!(value("signet_hsm_up{hsm=\"primary\"}"), 1.0);
    assert!(
        value("signet_signatures_total{key_set=\"at\",alg=\"ES256\",outcome=\"unavailable\"}")
            >= 1.0
    );
    assert!(value("signet_signatures_total{key_set=\"at\",alg=\"ES256\",outcome=\"ok\"}") >= 1.0);
    for series in [
        "signet_http_request_duration_seconds_bucket",
        "signet_http_requests_total",
        "signet_hsm_operation_duration_seconds_bucket",
        "signet_hsm_sessions{hsm=\"primary\",state=\"in_use\"}",
        "signet_hsm_sessions{hsm=\"primary\",state=\"idle\"}",
        "signet_hsm_queue_depth{hsm=\"primary\"}",
        "signet_key_set_next_rotation_seconds{key_set=\"at\"}",
    ] {
        value(series);
    }

    assert!(signet.is_running(), "Signet exited");
    assert_eq!(signet.pid(), pid, "Signet was not restarted");
    let limit = OP_TIMEOUT + Duration::from_secs(1);
    let (mut ok_before, mut failed_during, mut ok_after) = (0, 0, 0);
    for o in &outcomes {
        assert!(
            o.took <= limit,
            "a request waited {:?} (> op_timeout + 1 s): {}",
            o.took,
            o.body
        );
        match o.status {
            200 => {
                // Every signature returned verifies with the JWKS published before the outage.
                verify_jwt(o.body["jwt"].as_str().unwrap(), &jwks);
                if o.at < killed_at {
                    ok_before += 1;
                } else if o.at > recovered_at {
                    ok_after += 1;
                }
            }
            503 => {
                let code = o.body["code"].as_str().unwrap_or_default();
                assert!(
                    ["hsm_unavailable", "hsm_timeout", "hsm_busy"].contains(&code),
                    "unexpected 503: {}",
                    o.body
                );
                assert!(
                    o.at + o.took >= killed_at,
                    "a 503 before the outage: {}",
                    o.body
                );
                failed_during += 1;
            }
            other => panic!("unexpected status {other}: {}", o.body),
        }
    }
    assert!(
        ok_before > 0 && failed_during > 0 && ok_after > 0,
        "{ok_before} / {failed_during} / {ok_after}"
    );
    let outage = restarted_at - killed_at;
    eprintln!(
        "{} requests: {ok_before} signed before, {failed_during} failed fast during a {outage:?} outage, \
         {ok_after} signed after recovery ({:?} after the HSM came back)",
        outcomes.len(),
        recovered_at - restarted_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_remote_hsm_never_holds_a_request_past_its_deadline() {
    if !available("a_hung_remote_hsm_never_holds_a_request_past_its_deadline") {
        return;
    }
    let token = Token::new("hung-hsm");
    let dir = tempfile::tempdir().unwrap();
    let (hsm, mut signet) = serve_remote(
        &token,
        dir.path(),
        &[set("at", "access_token", "ES256")],
        OP_TIMEOUT,
    )
    .await;
    let jwks = signet.get_json("/.well-known/jwks.json").await;
    let sign = |http: reqwest::Client, base: String| async move {
        let o = load::sign(&http, &base, "at", "j".into()).await;
        (o.status, o.body, o.took)
    };

    hsm.pause().await;
    let limit = OP_TIMEOUT + Duration::from_secs(1);
    let frozen = Instant::now();
    while frozen.elapsed() < Duration::from_secs(3) {
        let (status, body, took) = sign(signet.http.clone(), signet.base.clone()).await;
        assert_eq!(status, 503, "{body}");
        assert!(took <= limit, "a request waited {took:?} on a hung HSM");
    }
    let (status, body) = signet.readyz_details().await;
    let took = frozen.elapsed();
    assert_eq!(status, 503);
    assert_eq!(
        body["backends"]["primary"]["state"], "down",
        "{body} after {took:?}"
    );

    hsm.unpause().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body, took) = sign(signet.http.clone(), signet.base.clone()).await;
        assert!(took <= limit, "a request waited {took:?}");
        if status == 200 {
            verify_jwt(body["jwt"].as_str().unwrap(), &jwks);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after the HSM thawed:\n{}",
            signet.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(signet.is_running());
}
