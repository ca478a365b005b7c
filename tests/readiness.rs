//! `/readyz` (DESIGN.md "Operations"): without credentials the status and each component's
//! up/down only; with an admin credential the reasons and details; answered from the background
//! health check's state, so that probes never reach the HSM. In process (common/local.rs), with
//! the health check's interval set far off so that any PKCS#11 call during the probes would be
//! one a probe made. The only test of this binary: the PKCS#11 call count is process-wide.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::local::Local;
use common::*;
use serde_json::json;

fn quiet(c: String) -> String {
    c.replace(
        "key_refresh = \"1s\"",
        "key_refresh = \"1s\"\nhealth_interval = \"1h\"",
    )
}

fn probe(token: Option<&str>) -> Request<Body> {
    let mut req = Request::get("/readyz");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_shows_only_up_or_down_without_credentials_and_never_calls_the_hsm() {
    let up = Local::start(&[set("id", "id_token", "ES256")], quiet).await;
    let (status, _, body) = up.send(probe(None)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "store": "up", "backends": {"primary": "up"},
            "key_sets": {"id": "up"}})
    );
    let (status, _, details) = up.send(probe(Some(ADMIN_TOKEN))).await;
    assert_eq!(status, 200);
    assert_eq!(details["backends"]["primary"]["state"], "up", "{details}");
    assert!(
        details["key_sets"]["id"]["active_kid"].is_string(),
        "{details}"
    );
    assert_eq!(details["scheduler"]["leader"], true, "{details}");
    // A signer's credential is no admin's: the short answer.
    let (_, _, short) = up.send(probe(Some(SIGNER_TOKEN))).await;
    assert_eq!(short, body);

    // The HSM down (its token absent): which component, and nothing more.
    let down = up
        .replica(&[set("id", "id_token", "ES256")], |c| {
            quiet(c).replace("token_label = \"in-process\"", "token_label = \"absent\"")
        })
        .await;
    let (status, _, body) = down.send(probe(None)).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"status": "not_ready", "store": "up", "backends": {"primary": "down"},
            "key_sets": {"id": "down"}})
    );
    let text = body.to_string();
    for secret in ["CKR_", "softhsm", "absent", "signet/", "holder", "token"] {
        assert!(!text.contains(secret), "`{secret}` in {text}");
    }
    let (status, _, details) = down.send(probe(Some(ADMIN_TOKEN))).await;
    assert_eq!(status, 503);
    let reason = details["backends"]["primary"]["reason"].as_str().unwrap();
    assert!(reason.contains("absent"), "{details}");

    // A thousand probes a second, anonymous and with details, on both: no PKCS#11 call.
    let before = signet::hsm::session_uses();
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(1) || probes < 1000 {
        let mut batch = Vec::new();
        for i in 0..50 {
            let local = if i % 2 == 0 { &up } else { &down };
            let token = (i % 3 == 0).then_some(ADMIN_TOKEN);
            batch.push(local.send(probe(token)));
        }
        for (status, _, body) in futures_join(batch).await {
            assert!(status == 200 || status == 503, "{body}");
        }
        probes += 50;
    }
    let took = started.elapsed();
    assert_eq!(
        signet::hsm::session_uses(),
        before,
        "{probes} probes in {took:?} reached the HSM"
    );
    assert!(
        probes as f64 / took.as_secs_f64() >= 1000.0,
        "only {probes} probes in {took:?}"
    );
    // The count does see HSM work: one signature moves it.
    let now = up.service.now();
    let claims = json!({"iss": ISSUER, "sub": "a", "aud": "c", "iat": now, "exp": now + 60});
    let (status, out) = up
        .post(
            "/v1/key-sets/id/sign/jwt",
            Some(SIGNER_TOKEN),
            &json!({"claims": claims}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(signet::hsm::session_uses() > before);
}

/// Awaits every future of `futs` concurrently (in one task), in order.
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(out.drain(..).map(|v| v.unwrap()).collect())
        }
    })
    .await
}
