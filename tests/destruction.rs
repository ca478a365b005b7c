//! Delayed destruction (DESIGN.md "HTTP API v1", `DELETE .../keys/{kid}`) on a real SoftHSM2 token
//! and a real SQLite store, with a moved clock: the destruction waits for the key set's
//! `destroy_delay`, can be cancelled, is carried out by the scheduler on time (the private object
//! is really gone from the token), survives a restart (a second service on the same store carries
//! it out), and every step is in the audit trail.

mod common;

use std::time::Duration;

use axum::http::Method;
use common::local::{Local, cli};
use common::*;
use serde_json::{Value, json};

const DELAY: i64 = 3600;

fn sets() -> Vec<Set<'static>> {
    vec![Set {
        name: "id",
        profile: "id_token",
        alg: "ES256",
        extra: "destroy_delay = \"1h\"",
    }]
}

/// The listing entry of `kid` (`GET /v1/key-sets/id/keys`).
async fn entry(local: &Local, kid: &str) -> Value {
    let (status, list) = local.get("/v1/key-sets/id/keys", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{list}");
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap()
}

fn rfc3339(t: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(t as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn destruction_waits_can_be_cancelled_and_happens_on_time() {
    let main = Local::start(&sets(), |c| c).await;
    let a = Some(ADMIN_TOKEN);
    let now = main.service.now();
    let next = main.next_kid("id");
    let revoke = format!("/v1/key-sets/id/keys/{next}/revoke");
    let (status, out) = main.post(&revoke, a, &json!({"reason": "test"})).await;
    assert_eq!(status, 200, "{out}");

    // DELETE schedules: 202, the key shows its pending destruction, the object stays.
    let delete = format!("/v1/key-sets/id/keys/{next}");
    let (status, out) = main.call(Method::DELETE, &delete, a, None).await;
    assert_eq!(status, 202, "{out}");
    let due = now + DELAY;
    assert_eq!(out["pending_destruction"], rfc3339(due), "{out}");
    assert!(out["destroyed_at"].is_null(), "{out}");
    assert_eq!(
        entry(&main, &next).await["pending_destruction"],
        rfc3339(due)
    );
    // Asking again keeps the first time.
    main.clock.advance(10);
    let (status, out) = main.call(Method::DELETE, &delete, a, None).await;
    assert_eq!(
        (status, &out["pending_destruction"]),
        (202, &json!(rfc3339(due)))
    );

    // The scheduler waits for the delay.
    main.clock.set(due - 1);
    main.service.tick().await;
    assert!(main.in_token(&next).await, "destroyed before its time");
    assert!(entry(&main, &next).await["destroyed_at"].is_null());

    // Cancelled, it is not destroyed when the time comes; cancelling twice is refused.
    let cancel = format!("/v1/key-sets/id/keys/{next}/cancel-destruction");
    let (status, out) = main.call(Method::POST, &cancel, a, None).await;
    assert_eq!(status, 200, "{out}");
    assert!(out["pending_destruction"].is_null(), "{out}");
    let (status, out) = main.call(Method::POST, &cancel, a, None).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (409, Some("no_pending_destruction"))
    );
    main.clock.set(due + 1);
    main.service.tick().await;
    assert!(
        main.in_token(&next).await,
        "a cancelled destruction happened"
    );

    // Scheduled again: a second service on the same store (a restart, or the replica that takes
    // the scheduler lease) destroys it on time, from the schedule in the store.
    let (status, out) = main.call(Method::DELETE, &delete, a, None).await;
    assert_eq!(status, 202, "{out}");
    let due = due + 1 + DELAY;
    let restarted = main.replica(&sets(), |c| c).await;
    restarted.clock.set(due - 1);
    restarted.service.tick().await;
    assert!(restarted.in_token(&next).await, "destroyed before its time");
    restarted.clock.set(due);
    restarted.service.tick().await;
    assert!(
        !restarted.in_token(&next).await,
        "the private object is gone"
    );
    let gone = entry(&restarted, &next).await;
    assert_eq!(gone["destroyed_at"], rfc3339(due), "{gone}");
    assert!(gone["pending_destruction"].is_null(), "{gone}");
    assert_eq!(gone["jwk"]["kid"], next.as_str(), "the public JWK stays");
    let (status, out) = restarted.call(Method::POST, &cancel, a, None).await;
    assert_eq!(
        (status, out["code"].as_str()),
        (409, Some("already_destroyed"))
    );

    // Audited: scheduled twice (by the admin), cancelled once, destroyed by the scheduler.
    let events = restarted.service.audit_after(0, 1000).await.unwrap();
    let of = |action: &str| -> Vec<_> {
        events
            .iter()
            .filter(|e| e.action == action && e.kid.as_deref() == Some(next.as_str()))
            .collect()
    };
    assert_eq!(of("destruction_scheduled").len(), 2);
    assert!(
        of("destruction_scheduled")
            .iter()
            .all(|e| e.actor == "admin")
    );
    assert_eq!(of("destruction_cancelled").len(), 1);
    let destroyed = of("destroyed");
    assert_eq!(destroyed.len(), 1);
    assert_eq!(destroyed[0].actor, "signet");
    let detail: Value = serde_json::from_str(&destroyed[0].detail).unwrap();
    assert_eq!(detail["why"], "scheduled");
    assert_eq!(detail["destroy_at"], due);
    let verified = restarted.service.audit_verify().await.unwrap();
    assert_eq!(verified, Ok(events.len()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_schedules_shows_and_cancels_a_destruction() {
    let local = Local::start(&sets(), |c| c).await;
    let base = local.serve().await;
    let now = local.service.now();
    let next = local.next_kid("id");
    let (code, out, err) = cli(
        &base,
        ADMIN_TOKEN,
        &["keys", "revoke", "id", &next, "--reason", "t"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&base, ADMIN_TOKEN, &["keys", "destroy", "id", &next]).await;
    assert_eq!(code, 0, "{out}{err}");
    let pending = format!("destruction pending at {}", rfc3339(now + DELAY));
    assert!(out.contains(&pending), "{out}");
    let (code, out, _) = cli(&base, ADMIN_TOKEN, &["keys", "list", "id"]).await;
    assert!(code == 0 && out.contains(&pending), "{out}");
    let (code, out, err) = cli(
        &base,
        ADMIN_TOKEN,
        &["keys", "cancel-destruction", "id", &next],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("destruction pending"), "{out}");
    let (code, _, err) = cli(
        &base,
        ADMIN_TOKEN,
        &["keys", "cancel-destruction", "id", &next],
    )
    .await;
    assert!(code == 1 && err.contains("no_pending_destruction"), "{err}");
    assert!(local.in_token(&next).await);
}
